// `--help` text: what a command does, its usage line, options (every spelling the parser accepts),
// positionals, subcommands and examples, wrapped to the terminal (80 columns when piped) and in
// colour only when stdout is a terminal that wants colour.
import type { ArgsDef, CommandDef, CommandMeta } from "citty";
import { optionSpecs } from "./parse.ts";

export interface HelpStyle {
  width: number;
  color: boolean;
}

/** The style for stdout: a terminal gets its width (at most 100) and colour unless NO_COLOR or TERM=dumb. */
export function stdoutStyle(): HelpStyle {
  const tty = Boolean(process.stdout.isTTY);
  const color = tty && !process.env.NO_COLOR && process.env.TERM !== "dumb";
  const columns = tty ? process.stdout.columns || 80 : 80;
  return { width: Math.max(40, Math.min(columns, 100)), color };
}

/** Greedy word wrap of `text` to `width` columns, every line after the first indented by `indent`. */
export function wrap(text: string, width: number, indent = 0, firstIndent = indent): string {
  const lines: string[] = [];
  let line = " ".repeat(firstIndent);
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(indent);
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  lines.push(line);
  return lines.join("\n");
}

export interface HelpInput {
  /** "dexrl" or "dexrl eval". */
  name: string;
  meta: CommandMeta & { examples?: string[] };
  args: ArgsDef;
  /** Subcommand names and descriptions, for the top level. */
  commands?: [string, string][];
  /** Options every command accepts (shown at the top level). */
  global?: ArgsDef;
}

export function renderHelp(h: HelpInput, style: HelpStyle): string {
  const paint = (code: string) => (s: string) => (style.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const bold = paint("1");
  const cyan = paint("36");
  const W = style.width;
  const out: string[] = [];

  const title = `${h.name}${h.meta.version ? ` ${h.meta.version}` : ""}`;
  out.push(wrap(`${title}: ${h.meta.description ?? ""}`, W), "");

  const specs = optionSpecs(h.args);
  const positionals = Object.entries(h.args).filter(([, d]) => d.type === "positional");
  const required = specs.filter((s) => (s.def as { required?: boolean }).required).map((s) => `${s.spellings[0]} ${s.def.valueHint ?? "VALUE"}`);
  const usage = [h.name, ...(h.commands ? ["<command>"] : []), ...required, ...(specs.length > required.length ? ["[OPTIONS]"] : []), ...positionals.map(([n, d]) => `[${d.valueHint ?? n.toUpperCase()}]`)];
  out.push(`${bold("USAGE")}  ${usage.join(" ")}`, "");

  /** Two columns: the left padded to a width that fits most entries, long ones on a line of their own. */
  const table = (rows: [string, string][]) => {
    const leftWidth = Math.min(Math.max(...rows.map(([l]) => l.length)), 28);
    const descIndent = 2 + leftWidth + 2;
    for (const [left, desc] of rows) {
      if (left.length > leftWidth) {
        out.push(`  ${cyan(left)}`);
        out.push(wrap(desc, W, descIndent));
      } else {
        const text = wrap(desc, W, descIndent, descIndent).slice(descIndent);
        out.push(`  ${cyan(left.padEnd(leftWidth))}  ${text}`);
      }
    }
  };

  if (h.commands?.length) {
    out.push(bold("COMMANDS"), "");
    table(h.commands);
    out.push("");
  }
  if (positionals.length) {
    out.push(bold("ARGUMENTS"), "");
    table(positionals.map(([n, d]) => [d.valueHint ?? n.toUpperCase(), d.description ?? ""]));
    out.push("");
  }
  const optionRows = (args: ArgsDef): [string, string][] =>
    optionSpecs(args).map((s) => {
      const d = s.def as { required?: boolean; default?: string | boolean; options?: string[] };
      const value = s.def.type === "boolean" ? "" : ` ${s.def.valueHint ?? (d.options ? d.options.join("|") : "VALUE")}`;
      const notes = [
        d.required ? "Required." : "",
        d.default !== undefined && d.default !== false ? `Default: ${d.default}.` : "",
        s.spellings.length > 1 ? `Also ${s.spellings.slice(1).join(", ")}.` : "",
      ].filter(Boolean);
      const desc = s.def.description ?? "";
      return [`${s.spellings[0]}${value}`, [desc + (desc && !desc.endsWith(".") ? "." : ""), ...notes].filter(Boolean).join(" ")];
    });
  if (specs.length || h.global) {
    out.push(bold("OPTIONS"), "");
    table([...optionRows(h.args), ...(h.global ? optionRows(h.global) : [])]);
    out.push("");
  }
  if (h.meta.examples?.length) {
    out.push(bold("EXAMPLES"), "");
    // A long example continues on the next line after a backslash, so that it still pastes into a shell.
    for (const e of h.meta.examples) out.push(wrap(e, W - 2, 6, 2).split("\n").join(" \\\n"));
    out.push("");
  }
  if (h.commands) out.push(wrap(`Run \`${h.name} <command> --help\` for a command's options. Bad input exits with code 2, a failed run or check with 1.`, W), "");
  return out.join("\n").trimEnd() + "\n";
}

/** The inputs of renderHelp for one citty command. */
export async function helpInputOf(name: string, cmd: CommandDef): Promise<HelpInput> {
  const meta = (typeof cmd.meta === "function" ? await cmd.meta() : await cmd.meta) ?? {};
  const args = (typeof cmd.args === "function" ? await cmd.args() : await cmd.args) ?? {};
  return { name, meta, args };
}
