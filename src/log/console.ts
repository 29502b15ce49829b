// Console output for long work: a progress line on stderr (redrawn in a terminal, periodic lines in
// logs such as CI's) and one-line metric summaries; native libraries' log lines, shown with --debug.
// Small enough that a dependency would not pay.
import { setNativeEnv } from "../native.ts";

const fmtDuration = (s: number) =>
  !Number.isFinite(s) ? "?" : s < 60 ? `${s.toFixed(0)}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, "0")}m`;

/** Where progress goes: stderr by default. */
export interface Sink {
  write(s: string): unknown;
  isTTY?: boolean;
}

export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private lastDraw = -Infinity;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    /** Seconds between lines when the sink is not a terminal. */
    private readonly logEvery = 10,
    private readonly out: Sink = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  /** Advances by `n` and redraws if due; `note` is shown after the counts (e.g. "success 0.92"). */
  tick(n = 1, note = ""): void {
    this.done += n;
    const now = performance.now();
    const due = this.tty ? now - this.lastDraw > 100 : now - this.lastDraw > this.logEvery * 1000;
    if (due || this.done >= this.total) this.draw(note, now);
  }

  private draw(note: string, now: number): void {
    this.lastDraw = now;
    const el = (now - this.t0) / 1000;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const eta = frac > 0 ? (el / frac) * (1 - frac) : Infinity;
    const width = 24;
    const bar = "█".repeat(Math.round(frac * width)).padEnd(width, "░");
    const line = `${this.label} ${bar} ${this.done}/${this.total} ${(frac * 100).toFixed(0)}% ${fmtDuration(el)} elapsed, eta ${fmtDuration(eta)}${note ? `  ${note}` : ""}`;
    if (this.tty) this.out.write(`\r\x1b[2K${line}${this.done >= this.total ? "\n" : ""}`);
    else this.out.write(`${line}\n`);
  }
}

/** Formats metrics as `step 12 | train/actor/policy_loss -0.0123 | ...` with 4 significant digits. */
export function formatMetrics(step: number, metrics: Record<string, number>): string {
  const parts = Object.entries(metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toPrecision(4)}`);
  return [`step ${step}`, ...parts].join(" | ");
}

/** The environment variable that carries --debug to every thread (Workers read the C environment). */
const DEBUG_ENV = "DEXRL_DEBUG";

/** Turns on --debug for this process and the Workers it starts later. */
export function enableDebug(): void {
  setNativeEnv(DEBUG_ENV, "1");
}

export const debugEnabled = (): boolean => process.env[DEBUG_ENV] === "1";

/** The last lines each native library wrote, kept for an error message when one fails. */
const recent = new Map<string, string[]>();
const KEEP = 20;

/**
 * A native library's log text (Dawn, the Vulkan loader, MuJoCo): on stderr, tagged, with --debug;
 * otherwise kept (the last few lines) for the sentence of an error it causes, and not shown.
 */
export function nativeLog(source: string, text: string): void {
  const lines = text.split("\n").filter((l) => l.trim());
  if (lines.length === 0) return;
  if (debugEnabled()) process.stderr.write(lines.map((l) => `[${source}] ${l}\n`).join(""));
  const kept = recent.get(source) ?? [];
  kept.push(...lines);
  recent.set(source, kept.slice(-KEEP));
}

/** The last lines `source` logged (most recent last). */
export function recentNativeLog(source: string): string[] {
  return recent.get(source) ?? [];
}
