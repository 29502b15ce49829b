// Exact resume: `dexrl train` killed with SIGKILL during a rollout, during an update and in the middle
// of a checkpoint write, and resumed each time from its last checkpoint, ends with the same bytes in
// every checkpoint (weights, AdamW's moments, trainer state) and the same TensorBoard scalars as the
// uninterrupted run; no step is logged twice, and config.yaml plus config.resume_<step>.yaml record
// what ran. The kills come from DEXRL_TEST_KILL_AT=<point>:<global step> (src/rl/trainer_state.ts),
// with which the process SIGKILLs itself at exactly that point, so each kill lands where it should on
// any machine, however fast.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot } from "../helpers/cli.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";
import { eventFiles, readEvents } from "../log/events.ts";

// Simulation, rendering, rollouts and updates on SwiftShader / ONNX Runtime, in child processes.
setDefaultTimeout(240_000);

const root = mkdtempSync(join(tmpdir(), "dexrl-resume-"));
const ckpt = join(root, "ckpt");
beforeAll(() => writeTinyCheckpoint(ckpt));

/** Three global steps of two envs (two policy calls each), four optimizer steps per global step, a checkpoint after each. */
const args = (runDir: string, ...more: string[]) => [
  "train", "--run-dir", runDir, `actor.model.model_path=${ckpt}`,
  "env.train.total_num_envs=2", "env.train.rollout_epoch=1", "env.train.max_steps_per_rollout_epoch=10", "env.train.max_episode_steps=10",
  "runner.max_steps=3", "runner.save_interval=1", "actor.global_batch_size=2", "actor.micro_batch_size=2", "algorithm.update_epoch=2",
  "actor.model.action_horizon=10", "actor.optim.lr=1e-3",
  ...more,
];

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

async function train(killAt: string | undefined, runDir: string, ...more: string[]): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", DEXRL_TEST_KILL_AT: killAt };
  const p = Bun.spawn([process.execPath, join(repoRoot, "src/cli.ts"), ...args(runDir, ...more)], { cwd: repoRoot, env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  return { code: p.exitCode, signal: p.signalCode === null ? null : String(p.signalCode), stdout, stderr };
}

const ckptDir = (run: string, step: number) => join(run, "checkpoints", `global_step_${step}`);
const entries = (dir: string) => readdirSync(dir).sort();
const loggedSteps = (run: string) => [...new Set(eventFiles(run).flatMap((f) => readEvents(f).scalars.map((s) => s.step)))].sort((x, y) => x - y);

/** Every scalar of a run folder read in TensorBoard's order, as "step tag" → value; wall-clock timings left out. */
function scalars(run: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of eventFiles(run))
    for (const s of readEvents(f).scalars) {
      if (s.tag.startsWith("time/")) continue;
      const key = `${s.step} ${s.tag}`;
      expect(out.has(key), `${key} logged twice`).toBe(false);
      out.set(key, s.value);
    }
  return out;
}

describe("exact resume after kill -9", () => {
  test("killed in a rollout, in an update and in a checkpoint write, resumed each time: checkpoints and scalars equal the uninterrupted run's", async () => {
    const straight = join(root, "straight");
    const run = join(root, "killed");
    // The uninterrupted run goes alongside the killed one.
    const whole = train(undefined, straight);

    // 1. Killed after the first policy call of global step 2's rollout: step 1 is all there is.
    const a = await train("rollout:2", run);
    expect(a.stderr).not.toContain("internal error");
    expect(a.signal).toBe("SIGKILL");
    expect(a.stderr).toMatch(/rollout[^\n]*1\/2/);
    expect(a.stdout).not.toMatch(/^step 2 /m);
    expect(entries(join(run, "checkpoints"))).toEqual(["global_step_1"]);
    expect(loggedSteps(run)).toEqual([1]);

    // 2. Resumed from step 1, killed after the first optimizer step of global step 3's update.
    const b = await train("update:3", run, `runner.resume_dir=${ckptDir(run, 1)}`);
    expect(b.signal).toBe("SIGKILL");
    expect(b.stderr).toContain(`continuing the run in ${run} from global step 1`);
    expect(b.stderr).toMatch(/update[^\n]*1\/4/);
    expect(b.stdout).toMatch(/^step 2 /m);
    expect(b.stdout).not.toMatch(/^step 3 /m);
    expect(entries(join(run, "checkpoints"))).toEqual(["global_step_1", "global_step_2"]);

    // 3. Resumed from step 2, killed while writing global step 3's checkpoint: its scalars are logged,
    //    its checkpoint is a hidden partial folder that never got its trainer state nor its name.
    const c = await train("checkpoint:3", run, `runner.resume_dir=${ckptDir(run, 2)}`);
    expect(c.signal).toBe("SIGKILL");
    expect(c.stdout).toMatch(/^step 3 /m);
    const partial = readdirSync(join(run, "checkpoints")).filter((n) => n.startsWith("."));
    expect(partial).toEqual([`.global_step_3.partial-${/^\.global_step_3\.partial-(\d+)$/.exec(partial[0] ?? "")?.[1]}`]);
    expect(existsSync(join(run, "checkpoints", partial[0]!, "model.safetensors"))).toBe(true);
    expect(existsSync(join(run, "checkpoints", partial[0]!, "trainer_state.json"))).toBe(false);
    expect(loggedSteps(run)).toEqual([1, 2, 3]);

    // 4. Resumed from step 2 again: the partial folder and step 3's logged scalars go, step 3 runs again.
    const d = await train(undefined, run, `runner.resume_dir=${ckptDir(run, 2)}`);
    expect(d.stderr).not.toContain("internal error");
    expect(d.code).toBe(0);
    expect(d.stderr).toContain(`dexrl: removed ${join(run, "checkpoints", partial[0]!)} left by an interrupted save.`);
    expect(d.stderr).toMatch(/dexrl: removed the records of step 3 \(logged after the checkpoint this run resumes from; they are logged again\) from \S+events\.out\.tfevents\.\S+\./);

    const s = await whole;
    expect(s.stderr).not.toContain("internal error");
    expect(s.code).toBe(0);

    // Every checkpoint, byte for byte.
    expect(entries(join(run, "checkpoints"))).toEqual(["global_step_1", "global_step_2", "global_step_3"]);
    for (const step of [1, 2, 3])
      for (const file of ["model.safetensors", "optimizer.safetensors", "trainer_state.json"]) {
        const same = readFileSync(join(ckptDir(run, step), file)).equals(readFileSync(join(ckptDir(straight, step), file)));
        expect([step, file, same]).toEqual([step, file, true]);
      }

    // The same scalars (each step once) as the uninterrupted run. Each resumed file starts with TensorBoard's
    // purge marker; the third one's (step 3) went with the step 3 it logged when the fourth resumed at step 2.
    const want = scalars(straight);
    expect(want.size).toBeGreaterThan(3 * 20);
    const notFinite = [...want].filter(([, v]) => !Number.isFinite(v)).map(([k]) => k);
    expect(notFinite).toEqual([]); // every metric is a number (rollout/*_max once was NaN)
    expect(scalars(run)).toEqual(want);
    expect(eventFiles(run).map((f) => readEvents(f).starts)).toEqual([[], [2], [], [3]]);

    // What ran: the first invocation's config.yaml, and one record per resume point (the last one from step 2).
    expect(readdirSync(run).filter((f) => f.endsWith(".yaml")).sort()).toEqual(["config.resume_1.yaml", "config.resume_2.yaml", "config.yaml"]);
    const cfg = (name: string) => parse(readFileSync(join(run, name), "utf8"));
    expect(cfg("config.yaml").runner.resume_dir).toBeNull();
    expect(cfg("config.resume_1.yaml").runner.resume_dir).toBe(ckptDir(run, 1));
    expect(cfg("config.resume_2.yaml").runner.resume_dir).toBe(ckptDir(run, 2));
    expect(readdirSync(join(run, "checkpoints")).filter((n) => n.startsWith("."))).toEqual([]);
  });
});
