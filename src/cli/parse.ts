// Strict parsing of a command's arguments against its citty definition: only the options it declares
// (under the spellings its --help shows), values where they are due, positionals only where it takes
// them. Each mistake is one sentence with a "did you mean"; nothing is silently ignored.
import type { ArgDef, ArgsDef } from "citty";
import { distance } from "fastest-levenshtein";
import { usageError } from "../errors.ts";

/** The positional argument that takes every remaining word (configArgs' `key=value` overrides). */
export const VARIADIC_POSITIONAL = "overrides";

export interface OptionSpec {
  name: string;
  def: ArgDef;
  /** How it is written on the command line: `--name`, then its aliases (`-c` for one letter, `--alias` otherwise). */
  spellings: string[];
}

/** What parsing gives a command: each option under its name and its aliases, `_` the positionals. */
export type Parsed = Record<string, string | boolean | string[] | undefined> & { _: string[] };

const aliasesOf = (def: ArgDef): string[] => {
  const a = (def as { alias?: string | string[] }).alias;
  return a === undefined ? [] : Array.isArray(a) ? a : [a];
};

/** The options of a command (positionals excluded), with their spellings. */
export function optionSpecs(argsDef: ArgsDef): OptionSpec[] {
  return Object.entries(argsDef)
    .filter(([, def]) => def.type !== "positional")
    .map(([name, def]) => ({ name, def, spellings: [`--${name}`, ...aliasesOf(def).map((a) => (a.length === 1 ? `-${a}` : `--${a}`))] }));
}

/**
 * " (did you mean X?)" when a candidate is close to `word` (a few edits away, or the only one it
 * abbreviates), else "". Dashes are not counted, and one-letter spellings (-c) are never suggested:
 * too many words are "close" to them.
 */
export function didYouMean(word: string, candidates: string[]): string {
  const bare = (s: string) => s.replace(/^-+/, "");
  const w = bare(word);
  const pool = candidates.filter((c) => bare(c).length >= 2);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of pool) {
    const d = distance(w, bare(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(w.length / 3))) return ` (did you mean ${best}?)`;
  const extending = pool.filter((c) => w.length >= 3 && bare(c).startsWith(w));
  return extending.length === 1 ? ` (did you mean ${extending[0]}?)` : "";
}

/** A token that is a value, not an option: "-", or a negative number such as -1 or -0.5. */
const isValueLike = (tok: string) => tok === "-" || /^-\d|^-\.\d/.test(tok);

/**
 * Parses `argv` (the words after the command name) for the command `command` (e.g. "dexrl eval").
 * Every error is a usage error (exit code 2) naming the word and pointing to `command --help`.
 */
export function parseArgv(argsDef: ArgsDef, argv: string[], command: string): Parsed {
  const specs = optionSpecs(argsDef);
  const bySpelling = new Map(specs.flatMap((s) => s.spellings.map((sp) => [sp, s] as const)));
  const allSpellings = [...bySpelling.keys()];
  const positionalDefs = Object.entries(argsDef).filter(([, d]) => d.type === "positional");
  const variadic = positionalDefs.some(([name]) => name === VARIADIC_POSITIONAL);
  const seeHelp = `see \`${command} --help\``;

  const values = new Map<string, string | boolean>();
  const given = new Map<string, string>(); // option name → the spelling used
  const positionals: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith("-") || isValueLike(tok)) {
      positionals.push(tok);
      continue;
    }
    const eq = tok.indexOf("=");
    const flag = eq > 0 ? tok.slice(0, eq) : tok;
    const inline = eq > 0 ? tok.slice(eq + 1) : undefined;
    const spec = bySpelling.get(flag);
    if (!spec) throw unknownOption(flag, inline, allSpellings, variadic, command, seeHelp);
    if (given.has(spec.name)) {
      const first = given.get(spec.name)!;
      throw usageError(`${first === flag ? flag : `${flag} (the same as ${first})`} is given twice; give it once (${seeHelp}).`);
    }
    given.set(spec.name, flag);
    if (spec.def.type === "boolean") {
      if (inline === undefined) values.set(spec.name, true);
      else if (inline === "true" || inline === "false") values.set(spec.name, inline === "true");
      else throw usageError(`${flag} is a switch and takes no value, not "${inline}" (write ${flag} alone, or leave it out).`);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      const hint = spec.def.valueHint ? ` (${spec.def.valueHint})` : "";
      if (next === undefined) throw usageError(`${flag} needs a value${hint}; ${seeHelp}.`);
      if (next.startsWith("--") || bySpelling.has(next)) throw usageError(`${flag} needs a value${hint}, but is followed by the option ${next}; ${seeHelp}.`);
      value = next;
      i++;
    }
    const options = (spec.def as { options?: string[] }).options;
    if (spec.def.type === "enum" && options?.length && !options.includes(value))
      throw usageError(`${flag} must be one of ${options.join(", ")}, not "${value}"${didYouMean(value, options)}.`);
    values.set(spec.name, value);
  }

  for (const s of specs) {
    const d = s.def as { required?: boolean; default?: string | boolean };
    if (!values.has(s.name) && d.required && d.default === undefined)
      throw usageError(`Missing required argument: ${s.spellings[0]}${s.def.valueHint ? ` ${s.def.valueHint}` : ""} (${s.def.description ?? seeHelp}; ${seeHelp}).`);
  }

  const out: Parsed = { _: positionals };
  positionalDefs.forEach(([name, def], k) => {
    const d = def as { required?: boolean; default?: string };
    if (positionals[k] !== undefined) out[name] = positionals[k];
    else if (d.required !== false && d.default === undefined) throw usageError(`Missing required argument ${name.toUpperCase()} (${seeHelp}).`);
    else out[name] = d.default;
  });
  if (!variadic && positionals.length > positionalDefs.length) {
    const stray = positionals[positionalDefs.length]!;
    const takes = positionalDefs.length === 0 ? "takes no positional arguments" : `takes ${positionalDefs.length} positional argument${positionalDefs.length > 1 ? "s" : ""}`;
    throw usageError(`Unexpected argument "${stray}": ${command} ${takes}${didYouMean(`--${stray}`, allSpellings) || ` (${seeHelp})`}.`);
  }
  if (variadic)
    for (const word of positionals)
      if (!word.includes("=") && !word.startsWith("-")) {
        // A word meant as an option but written without dashes ("json"); anything else is left to the config loader.
        const hint = didYouMean(`--${word}`, allSpellings);
        if (hint && !word.includes(".")) throw usageError(`Unexpected argument "${word}": ${command} takes options with dashes and overrides as dotted.key=value${hint}.`);
      }

  for (const s of specs) {
    const d = s.def as { default?: string | boolean };
    const v = values.has(s.name) ? values.get(s.name) : d.default;
    out[s.name] = v;
    for (const a of aliasesOf(s.def)) out[a] = v;
  }
  return out;
}

function unknownOption(flag: string, inline: string | undefined, spellings: string[], variadic: boolean, command: string, seeHelp: string) {
  const bare = flag.replace(/^-+/, "");
  // A config key written as an option (Hydra or argparse habits): say how overrides are written.
  if (variadic && bare.includes("."))
    return usageError(`Unknown option ${flag}: config keys are set without dashes, as ${bare}=${inline ?? "VALUE"} (${seeHelp}).`);
  // A long option written with one dash (-trials-per-task): suggest the two-dash spelling first.
  const hint = !flag.startsWith("--") && bare.length > 1 && spellings.includes(`--${bare}`) ? ` (did you mean --${bare}?)` : didYouMean(flag, spellings);
  return usageError(`Unknown option ${flag} for ${command}${hint || ` (${seeHelp})`}.`);
}
