// Plots a training run's success curves as a PNG: rollout success (env/success_once, or at the even
// task mix, env/success_once_task_mean, where task_sampling by_failure logged it) and evaluation
// success (eval/success_once) against the global step and against wall time, read from the run's
// TensorBoard event files (steps up to --max-step when given).
// bun scripts/plot_run.ts RUN_DIR OUT.png [--baseline 0.55] [--title TEXT] [--max-step N]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EventProto, readRecords } from "../src/log/tfevents.ts";
import { drawText, lineHeight, type RgbImage, textWidth } from "../src/render/font.ts";
import { writePng } from "../src/render/png.ts";

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: { baseline: { type: "string" }, title: { type: "string" }, "max-step": { type: "string" } } });
const [runDir, out] = positionals;
if (!runDir || !out) throw new Error("usage: bun scripts/plot_run.ts RUN_DIR OUT.png [--baseline FRACTION] [--title TEXT] [--max-step N]");
const maxStep = opt["max-step"] === undefined ? Infinity : Number(opt["max-step"]);

/**
 * tag → points (step, minutes of training, value), later records of a step winning. Each process
 * (a resumed run adds an event file) counts from its file's first record, so the time between a
 * stop and its resume is left out.
 */
function scalars(dir: string): Map<string, { step: number; t: number; v: number }[]> {
  const raw: { tag: string; step: number; t: number; v: number }[] = [];
  let before = 0; // seconds of training in the earlier event files
  for (const f of readdirSync(dir).filter((n) => n.includes("tfevents")).sort()) {
    const bytes = new Uint8Array(readFileSync(join(dir, f)));
    let first = NaN;
    let last = NaN;
    for (const r of readRecords(bytes).records) {
      const e = EventProto.toObject(EventProto.decode(bytes.subarray(r.offset + 12, r.offset + r.length - 4)), { longs: Number }) as {
        step?: number;
        wall_time?: number;
        summary?: { value?: { tag: string; simple_value?: number }[] };
      };
      const wall = e.wall_time ?? 0;
      if (Number.isNaN(first)) first = wall;
      last = wall;
      if ((e.step ?? 0) > maxStep) continue;
      for (const v of e.summary?.value ?? []) raw.push({ tag: v.tag, step: e.step ?? 0, t: before + wall - first, v: v.simple_value ?? NaN });
    }
    if (!Number.isNaN(first)) before += last - first;
  }
  const out = new Map<string, Map<number, { step: number; t: number; v: number }>>();
  for (const r of raw) {
    if (!out.has(r.tag)) out.set(r.tag, new Map());
    out.get(r.tag)!.set(r.step, { step: r.step, t: r.t / 60, v: r.v });
  }
  return new Map([...out].map(([k, m]) => [k, [...m.values()].sort((a, b) => a.step - b.step)]));
}

const W = 560;
const H = 300;
const M = { left: 44, right: 12, top: 30, bottom: 34 };
const img: RgbImage = { width: 2 * W, height: H, data: new Uint8Array(2 * W * H * 3).fill(255) };
const px = (x: number, y: number, c: readonly number[]) => {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  img.data.set(c, (Math.round(y) * img.width + Math.round(x)) * 3);
};
const line = (x0: number, y0: number, x1: number, y1: number, c: readonly number[], thick = 1) => {
  const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
  for (let i = 0; i <= n; i++)
    for (let d = 0; d < thick; d++) px(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n + d, c);
};
const GREY = [200, 200, 200];
const BLACK = [30, 30, 30];
const BLUE = [40, 90, 200];
const ORANGE = [230, 120, 20];
const GREEN = [40, 160, 60];

const s = scalars(runDir);
// by_failure gives the failing tasks more envs, so its plain rollout success reads low against eval's even mix.
const taskMean = s.get("env/success_once_task_mean") ?? [];
const rollout = taskMean.length ? taskMean : (s.get("env/success_once") ?? []);
const evals = s.get("eval/success_once") ?? [];
if (!rollout.length && !evals.length) throw new Error(`${runDir} has no env/success_once or eval/success_once scalars`);

function panel(ox: number, xOf: (p: { step: number; t: number }) => number, xLabel: string): void {
  const all = [...rollout, ...evals];
  const xMax = Math.max(...all.map(xOf), 1e-9);
  const X = (x: number) => ox + M.left + ((W - M.left - M.right) * x) / xMax;
  const Y = (v: number) => H - M.bottom - (H - M.top - M.bottom) * v;
  for (let k = 0; k <= 4; k++) {
    line(X(0), Y(k / 4), X(xMax), Y(k / 4), GREY);
    drawText(img, ox + 4, Y(k / 4) - 3, `${25 * k}%`, 1, BLACK);
  }
  line(X(0), Y(0), X(0), Y(1), BLACK);
  drawText(img, X(xMax) - textWidth(xLabel, 1), H - lineHeight(1) - 4, xLabel, 1, BLACK);
  drawText(img, X(0), H - lineHeight(1) - 4, "0", 1, BLACK);
  drawText(img, X(xMax) - textWidth(xMax.toFixed(0), 1), H - M.bottom + 4, xMax.toFixed(0), 1, BLACK);
  if (opt.baseline) line(X(0), Y(Number(opt.baseline)), X(xMax), Y(Number(opt.baseline)), GREEN);
  const series = (pts: { step: number; t: number; v: number }[], c: readonly number[]) =>
    pts.forEach((p, i) => i && line(X(xOf(pts[i - 1]!)), Y(pts[i - 1]!.v), X(xOf(p)), Y(p.v), c, 2));
  series(rollout, BLUE);
  series(evals, ORANGE);
  for (const p of evals) for (let d = -2; d <= 2; d++) line(X(xOf(p)) - 2, Y(p.v) + d, X(xOf(p)) + 2, Y(p.v) + d, ORANGE);
}
panel(0, (p) => p.step, "GLOBAL STEP");
panel(W, (p) => p.t, "WALL TIME (MIN)");
const legend = `${opt.title ?? "PPO"}:  ROLLOUT SUCCESS${taskMean.length ? " AT THE EVEN TASK MIX" : ""} (BLUE), EVAL SUCCESS ON FIXED STATES (ORANGE)${opt.baseline ? ", SFT START (GREEN)" : ""}`;
drawText(img, M.left, 8, legend, 1, BLACK);
writePng(out, img.data, img.width, img.height);
console.log(`wrote ${out}: ${rollout.length} rollout points, ${evals.length} eval points`);
