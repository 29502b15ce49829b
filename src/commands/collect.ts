// `dexrl collect`: scripted-expert demonstrations for SFT. The expert runs on all cores from training
// initial states (same distribution as the 500 fixed ones, never one of them), each successful
// episode is rendered at the policy's image size and written to a dataset directory as it finishes
// (format: src/sft/dataset.ts). Which episodes a run keeps depends only on --seed, not on timing:
// per task, the kept ones are the first N successes of the seed's stream.
import { existsSync, readdirSync, rmSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { defineCommand } from "citty";
import { debugArgs, intArg, taskListArg, type DexrlMeta } from "../cli/args.ts";
import { DexrlError, usageError } from "../errors.ts";
import { getGpu } from "../engine/device.ts";
import { Progress } from "../log/console.ts";
import { createLiberoRenderer, posesOfBatch } from "../render/libero.ts";
import type { BatchRenderer } from "../render/renderer.ts";
import { hashInts } from "../util/random.ts";
import type { ExpertRecording } from "../sim/protocol.ts";
import { NUM_TASKS, SUITE, TASKS, trainingInitState, type InitState } from "../sim/tasks.ts";
import { VecEnv } from "../sim/vec_env.ts";
import { CAMERA_VIEWS, DatasetWriter, EPISODES_DIR, INDEX_FILE, readIndex, type DatasetIndex } from "../sft/dataset.ts";

/** LIBERO-Spatial's evaluation horizon (220 steps): a demonstration must fit in it. */
const DEFAULT_MAX_STEPS = 220;
/** Frames drawn per render call. */
const RENDER_BATCH = 64;
/** Salt of the fixture-placement seeds, apart from the initial-state stream's. */
const FIXTURE_STREAM = 0x51f7c2d3;

interface Job {
  task: number;
  init: InitState;
  fixtureSeed: number;
}

/**
 * Hands out training initial states per task in stream order and decides which results are kept.
 * A task takes a new attempt only while its successes plus attempts in flight are below its target,
 * so at most the target succeed, and they are the first successes of the stream: the same episodes
 * whatever the number of workers or the order they finish in, and after a resume.
 */
class Scheduler {
  private readonly tried: Map<number, Set<number>>;
  private readonly next: Map<number, number>;
  private readonly successes: Map<number, number>;
  private readonly failures: Map<number, number>;
  private readonly inFlight = new Map<number, number>();
  private wake: (() => void)[] = [];
  private turn = 0;

  constructor(
    private readonly tasks: number[],
    private readonly target: number,
    private readonly seed: number,
    index: DatasetIndex,
    /** Failed attempts after which a task is given up. */
    readonly maxFailures: number,
  ) {
    const per = <T,>(f: (t: number) => T) => new Map(tasks.map((t) => [t, f(t)]));
    this.tried = per((t) => new Set([...index.episodes.filter((e) => e.task === t).map((e) => e.init_index), ...index.failed.filter((f) => f.task === t).map((f) => f.init_index)]));
    this.successes = per((t) => index.episodes.filter((e) => e.task === t).length);
    this.failures = per((t) => index.failed.filter((f) => f.task === t).length);
    this.next = per(() => 0);
  }

  /** Successful episodes still needed. */
  remaining(): number {
    return this.tasks.reduce((a, t) => a + Math.max(0, this.target - this.successes.get(t)!), 0);
  }

  /** A task that cannot reach its target: too many failures, and nothing in flight. */
  givenUp(): number[] {
    return this.tasks.filter((t) => this.successes.get(t)! < this.target && this.failures.get(t)! >= this.maxFailures && !this.inFlight.get(t));
  }

  /** The next attempt (tasks in turn), or undefined when none may start now. */
  take(): Job | undefined {
    for (let k = 0; k < this.tasks.length; k++) {
      const task = this.tasks[(this.turn + k) % this.tasks.length]!;
      const busy = this.inFlight.get(task) ?? 0;
      if (this.successes.get(task)! + busy >= this.target || this.failures.get(task)! >= this.maxFailures) continue;
      let i = this.next.get(task)!;
      while (this.tried.get(task)!.has(i)) i++;
      this.tried.get(task)!.add(i);
      this.next.set(task, i + 1);
      this.inFlight.set(task, busy + 1);
      this.turn = (this.turn + k + 1) % this.tasks.length;
      return { task, init: trainingInitState(task, this.seed, i), fixtureSeed: hashInts(FIXTURE_STREAM, this.seed, task, i) };
    }
    return undefined;
  }

  finish(job: Job, success: boolean): void {
    this.inFlight.set(job.task, this.inFlight.get(job.task)! - 1);
    const tally = success ? this.successes : this.failures;
    tally.set(job.task, tally.get(job.task)! + 1);
    const waiting = this.wake;
    this.wake = [];
    for (const w of waiting) w();
  }

  /** Resolves at the next finished attempt. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.wake.push(resolve));
  }

  idle(): boolean {
    return [...this.inFlight.values()].every((n) => n === 0);
  }
}

/** Renders a recording's T steps, both cameras: u8 [T, 2, S, S, 3], upright. */
async function renderEpisode(renderer: BatchRenderer, rec: ExpertRecording, vec: VecEnv): Promise<Uint8Array> {
  const T = rec.steps;
  const per = renderer.nCam * renderer.imageBytes;
  const images = new Uint8Array(T * per);
  const { ngeom, ncam } = vec;
  for (let t0 = 0; t0 < T; t0 += RENDER_BATCH) {
    const t1 = Math.min(T, t0 + RENDER_BATCH);
    const frames = posesOfBatch(
      {
        geomXpos: rec.geomXpos.subarray(t0 * ngeom * 3, t1 * ngeom * 3),
        geomXmat: rec.geomXmat.subarray(t0 * ngeom * 9, t1 * ngeom * 9),
        camXpos: rec.camXpos.subarray(t0 * ncam * 3, t1 * ncam * 3),
        camXmat: rec.camXmat.subarray(t0 * ncam * 9, t1 * ncam * 9),
      },
      t1 - t0,
    );
    images.set(await renderer.render(frames), t0 * per);
  }
  return images;
}

/** Where the dataset goes: a new one, the existing one continued, or the existing one replaced. */
function prepareOut(dir: string, resume: boolean, overwrite: boolean): "new" | "resume" {
  if (resume && overwrite) throw usageError("--resume and --overwrite exclude each other: --resume adds to the dataset, --overwrite replaces it.");
  const hasIndex = existsSync(join(dir, INDEX_FILE));
  if (!hasIndex && existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw usageError(`--out ${dir} is a file, not a directory.`);
    const foreign = readdirSync(dir).filter((f) => f !== EPISODES_DIR);
    if (foreign.length) throw usageError(`${dir} is not empty and holds no ${INDEX_FILE}, so it is not a dexrl dataset; choose a new or empty --out directory.`);
  }
  if (!hasIndex) return "new";
  if (resume) return "resume";
  if (!overwrite) {
    const ix = readIndex(dir);
    throw usageError(`${dir} already holds a dataset (${ix.episodes.length} episodes); pass --resume to add to it or --overwrite to replace it.`);
  }
  rmSync(join(dir, EPISODES_DIR), { recursive: true, force: true });
  unlinkSync(join(dir, INDEX_FILE));
  return "new";
}

/** Removes temporary files a killed run left behind (a shard or index that was never renamed). */
function removeStaleTemporaries(dir: string): void {
  for (const sub of [dir, join(dir, EPISODES_DIR)]) {
    if (!existsSync(sub)) continue;
    for (const f of readdirSync(sub)) if (/\.tmp-\d+$/.test(f)) unlinkSync(join(sub, f));
  }
}

export default defineCommand({
  meta: {
    name: "collect",
    description:
      "Record scripted-expert demonstrations on training initial states (never the 500 fixed evaluation states) into a dataset directory for `dexrl sft`: both camera views at the policy's image size, 8-D states, 7-D actions, instruction; successful episodes only, written one by one (a crash loses at most the episode in progress)",
    examples: [
      "dexrl collect --out data/spatial_s1 --seed 1",
      "dexrl collect --tasks 0,3 --episodes-per-task 5 --out data/small --image-size 64",
      "dexrl collect --out data/spatial_s1 --seed 1 --episodes-per-task 100 --resume",
      "dexrl collect --out data/spatial_s1 --overwrite",
    ],
  } satisfies DexrlMeta,
  args: {
    out: { type: "string", required: true, valueHint: "DIR", description: "Dataset directory (created; an existing dataset needs --resume or --overwrite)" },
    tasks: { type: "string", valueHint: "IDS", description: `Task ids separated by commas, or "all"`, default: "all" },
    "episodes-per-task": { type: "string", valueHint: "N", description: "Successful episodes to keep per task (counting those already in a resumed dataset)", default: "50" },
    seed: { type: "string", valueHint: "S", description: "Seed of the training initial-state stream and fixture placement (default 0, or the resumed dataset's)" },
    "image-size": { type: "string", valueHint: "PX", description: "Width and height of the images (the policy's image size; a multiple of 4; default 64, or the resumed dataset's)" },
    "max-steps": { type: "string", valueHint: "T", description: `Control steps (20 Hz) before an attempt counts as failed (default ${DEFAULT_MAX_STEPS}, LIBERO-Spatial's horizon, or the resumed dataset's)` },
    workers: { type: "string", valueHint: "W", description: "Simulation worker threads (default: one per core)" },
    resume: { type: "boolean", description: "Add to the dataset in --out: continue its seed stream, skipping attempts already made", default: false },
    overwrite: { type: "boolean", description: "Replace the dataset in --out", default: false },
    ...debugArgs,
  },
  async run({ args }) {
    const dir = args.out;
    const tasks = taskListArg(args.tasks, NUM_TASKS);
    const target = intArg("episodes-per-task", args["episodes-per-task"], 1, 100_000);
    const cores = navigator.hardwareConcurrency || 1;
    const workers = args.workers === undefined ? cores : intArg("workers", args.workers, 1, 256);
    const seedArg = args.seed === undefined ? undefined : intArg("seed", args.seed, 0, 2 ** 31 - 1);
    const sizeArg = args["image-size"] === undefined ? undefined : intArg("image-size", args["image-size"], 16, 1024);
    if (sizeArg !== undefined && sizeArg % 4 !== 0) throw usageError(`--image-size must be a multiple of 4, not ${sizeArg}.`);
    const stepsArg = args["max-steps"] === undefined ? undefined : intArg("max-steps", args["max-steps"], 1, 10_000);

    const mode = prepareOut(dir, args.resume, args.overwrite);
    let writer: DatasetWriter;
    if (mode === "resume") {
      writer = DatasetWriter.resume(dir);
      const ix = writer.index;
      const clash = (flag: string, given: number | undefined, has: number) => {
        if (given !== undefined && given !== has) throw usageError(`${dir} was collected with ${flag} ${has}; resume it with the same value (or leave ${flag} out), not ${given}.`);
      };
      clash("--seed", seedArg, ix.seed);
      clash("--image-size", sizeArg, ix.image_size);
      clash("--max-steps", stepsArg, ix.max_steps);
    } else {
      writer = DatasetWriter.create(dir, {
        suite: SUITE,
        image_size: sizeArg ?? 64,
        num_views: CAMERA_VIEWS.length,
        views: [...CAMERA_VIEWS],
        state_dim: 8,
        action_dim: 7,
        control_hz: 20,
        seed: seedArg ?? 0,
        max_steps: stepsArg ?? DEFAULT_MAX_STEPS,
      });
    }
    removeStaleTemporaries(dir);
    const ix = writer.index;
    const sched = new Scheduler(tasks, target, ix.seed, ix, Math.max(20, 2 * target));
    const needed = sched.remaining();
    const already = ix.episodes.filter((e) => tasks.includes(e.task)).length;
    if (needed === 0) {
      console.log(`${dir}: already ${already} episodes of tasks ${tasks.join(",")} (${target} per task); nothing to collect.`);
      return;
    }

    const t0 = performance.now();
    const gpu = await getGpu();
    const vec = await VecEnv.create({ numEnvs: workers, numWorkers: workers, seed: ix.seed });
    const renderer = await createLiberoRenderer(gpu, ix.image_size, RENDER_BATCH);
    console.error(
      `dexrl collect: ${needed} episodes (${tasks.length} task(s) × ${target}${already ? `, ${already} already in ${dir}` : ""}) from seed ${ix.seed}, ${ix.image_size}×${ix.image_size} images, ${vec.numWorkers} sim workers, rendering on ${gpu.summary.device || gpu.summary.description}`,
    );
    const progress = new Progress("collect", needed);
    let written = 0;
    let steps = 0;
    let attempts = 0;
    let failed = 0;
    // Writes happen one at a time, in the order episodes finish; a lane waits while two are queued.
    let writes: Promise<void> = Promise.resolve();
    let queued = 0;
    let writeError: unknown;
    const write = async (job: Job, rec: ExpertRecording) => {
      if (!rec.success) {
        writer.addFailure({ task: job.task, init_index: job.init.index, steps: rec.steps });
        return;
      }
      const images = await renderEpisode(renderer, rec, vec);
      const instruction = TASKS[job.task]!.language;
      writer.addEpisode(
        { task: job.task, instruction, length: rec.steps, images, states: rec.states, actions: rec.actions },
        { seed: ix.seed, index: job.init.index, fixtureSeed: job.fixtureSeed },
      );
      written++;
      steps += rec.steps;
      progress.tick(1, `${attempts - failed}/${attempts} attempts succeeded`);
    };
    const lane = async () => {
      for (;;) {
        if (writeError) return;
        const job = sched.take();
        if (!job) {
          if (sched.idle()) return;
          await sched.changed();
          continue;
        }
        const rec = await vec.recordExpert(job.init, ix.max_steps, job.fixtureSeed);
        attempts++;
        failed += rec.success ? 0 : 1;
        sched.finish(job, rec.success);
        queued++;
        writes = writes.then(() => write(job, rec)).catch((e) => void (writeError ??= e)).finally(() => void queued--);
        while (queued > 2 && !writeError) await writes;
      }
    };
    try {
      await Promise.all(Array.from({ length: vec.numWorkers }, lane));
    } finally {
      await writes; // never rejects: a write's error is kept in writeError
      renderer.destroy();
      await vec.close();
    }
    if (writeError) throw writeError;
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `${dir}: wrote ${written} episodes (${steps} steps) in ${seconds.toFixed(0)} s, ${(written / seconds).toFixed(2)} episodes/s; ${failed} of ${attempts} attempts failed and were not kept; the dataset now holds ${ix.episodes.length} episodes, ${ix.total_steps} steps`,
    );
    const short = sched.givenUp();
    if (short.length)
      throw new DexrlError(
        `the scripted expert failed ${sched.maxFailures} times on task(s) ${short.join(", ")} before reaching ${target} episodes each; the ${ix.episodes.length} episodes collected are kept in ${dir}.`,
      );
  },
});
