// Real (tiny) train and eval runs through the CLI: a run folder never mixes with an earlier run,
// continuing a run cleans up after an interrupted checkpoint write, Ctrl-C ends a run with a
// checkpoint and a sentence, and eval takes the seed's eval-script spellings with pure JSON on stdout.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { dexrl, repoRoot } from "../helpers/cli.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";

// Simulation, rendering and updates on SwiftShader / ONNX Runtime, in child processes.
setDefaultTimeout(240_000);

const root = mkdtempSync(join(tmpdir(), "dexrl-runs-"));
const ckpt = join(root, "ckpt");
beforeAll(() => writeTinyCheckpoint(ckpt));

/** Two envs, one rollout epoch of two policy calls, a checkpoint at the end only, unless overridden. */
const tiny = (runDir: string, ...more: string[]) => [
  "train", "--run-dir", runDir, `actor.model.model_path=${ckpt}`,
  "env.train.total_num_envs=2", "env.train.rollout_epoch=1", "env.train.max_steps_per_rollout_epoch=10", "env.train.max_episode_steps=10",
  "runner.save_interval=-1", "actor.global_batch_size=4", "actor.micro_batch_size=2", "algorithm.update_epoch=1", "actor.model.action_horizon=10",
  ...more,
];

/** Name → size and modification time of every file under `dir`, to show nothing was touched. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out[p.slice(dir.length)] = `${s.size}@${s.mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

describe("run folders", () => {
  test("a new run never goes into a folder holding a run; continuing one cleans up an interrupted write", () => {
    const run = join(root, "run");
    const first = dexrl(...tiny(run, "runner.max_steps=2", "runner.save_interval=1"));
    expect(first.stderr).not.toContain("internal error");
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`new run folder ${run}`);
    expect(readdirSync(join(run, "checkpoints")).sort()).toEqual(["global_step_1", "global_step_2"]);

    const before = snapshot(run);
    const again = dexrl(...tiny(run, "runner.max_steps=2"));
    expect(again.code).toBe(2);
    expect(again.errLines.at(-1)).toBe(
      `dexrl: The run folder ${run} already holds a run (config.yaml, 2 checkpoints up to global step 2, 1 TensorBoard event file), and a new run there would mix with it; nothing was written. ` +
        `Choose another folder (runner.logger.experiment_name=NAME or --run-dir DIR), move that one away, or continue it with runner.resume_dir=${join(run, "checkpoints", "global_step_2")}.`,
    );
    expect(snapshot(run)).toEqual(before);

    // Continuing from step 1 would overwrite step 2: refused, untouched.
    const back = dexrl(...tiny(run, "runner.max_steps=3", `runner.resume_dir=${join(run, "checkpoints", "global_step_1")}`));
    expect(back.code).toBe(2);
    expect(back.errLines.at(-1)).toContain("would overwrite its later checkpoint (global_step_2)");
    expect(snapshot(run)).toEqual(before);

    // A process killed while writing step 3 left a hidden partial folder: continuing removes it and goes on.
    const dead = Bun.spawnSync(["true"]).pid;
    const stale = join(run, "checkpoints", `.global_step_3.partial-${dead}`);
    mkdirSync(stale);
    const next = dexrl(...tiny(run, "runner.max_steps=3", `runner.resume_dir=${join(run, "checkpoints", "global_step_2")}`));
    expect(next.stderr).not.toContain("internal error");
    expect(next.code).toBe(0);
    expect(next.stderr).toContain(`dexrl: removed ${stale} left by an interrupted save.`);
    expect(next.stderr).toContain(`dexrl: continuing the run in ${run} from global step 2`);
    expect(next.stdout).toMatch(/^step 3 /m);
    expect(readdirSync(join(run, "checkpoints")).sort()).toEqual(["global_step_1", "global_step_2", "global_step_3"]);
  });

  test("Ctrl-C finishes the global step, writes its checkpoint, names it and exits 130", async () => {
    const run = join(root, "stopped");
    const p = Bun.spawn([process.execPath, join(repoRoot, "src/cli.ts"), ...tiny(run, "runner.max_steps=1000")], { cwd: root, stdout: "pipe", stderr: "pipe" });
    let out = "";
    const reader = p.stdout.getReader();
    while (!/^step 2 /m.test(out)) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    p.kill("SIGINT");
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    expect(code).toBe(130);
    const last = stderr.trim().split("\n").at(-1)!;
    const m = /^dexrl: Stopped by SIGINT after global step (\d+); its checkpoint is (\S+); continue with --run-dir (\S+) runner\.resume_dir=(\S+)\.$/.exec(last);
    expect(m, last).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(2);
    expect(m![2]).toBe(join(run, "checkpoints", `global_step_${m![1]}`));
    expect(loadPolicyCheckpoint(m![2]!).config.horizon).toBe(10);
    expect(JSON.parse(readFileSync(join(m![2]!, "trainer_state.json"), "utf8")).global_step).toBe(Number(m![1]));
    expect(readdirSync(join(run, "checkpoints"))).toEqual([`global_step_${m![1]}`]);

    // What the sentence says continues the run in its folder.
    expect([m![3], m![4]]).toEqual([run, m![2]]);
    const next = Number(m![1]) + 1;
    const more = dexrl(...tiny(m![3]!, `runner.max_steps=${next}`, `runner.resume_dir=${m![4]}`));
    expect(more.code, more.stderr).toBe(0);
    expect(more.stderr).toContain(`dexrl: continuing the run in ${run} from global step ${m![1]}`);
    expect(readdirSync(join(run, "checkpoints")).sort()).toEqual([`global_step_${m![1]}`, `global_step_${next}`]);
  });
});

describe("dexrl eval", () => {
  test("the seed's eval-script spellings; --json stdout is the report alone, also in --out", () => {
    const out = join(root, "report.json");
    const r = dexrl(
      "eval", "--ckpt_path", ckpt, "--action_chunk_size", "5", "--num_diffusion_steps", "2", "--tasks", "3", "--trials-per-task", "1", "--json", "--out", out,
      "actor.model.action_horizon=10", "env.eval.total_num_envs=1", "env.eval.max_episode_steps=10",
    );
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("2 ODE steps, 5 actions per call");
    const report = JSON.parse(r.stdout);
    expect(report.overall.episodes).toBe(1);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(report);
  });

  test("an unwritable --out is refused before any episode runs", () => {
    const r = dexrl("eval", "--ckpt", ckpt, "--out", join(root, "no", "such", "r.json"), "actor.model.action_horizon=10");
    expect(r.code).toBe(2);
    expect(r.errLines.at(-1)).toBe(`dexrl: --out ${join(root, "no", "such", "r.json")} cannot be written: the folder ${join(root, "no", "such")} does not exist.`);
    expect(r.stderr).not.toContain("evaluating");
    expect(existsSync(join(root, "no"))).toBe(false);
  });
});
