// `dexrl eval` end to end: a real checkpoint (tiny, random) acting in real simulated envs through the
// renderer, episodes counted per task; and its refusals of bad input.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { taskListArg } from "../../src/cli/args.ts";
import { dexrl } from "../helpers/cli.ts";
import { writeTinyCheckpoint } from "../helpers/make_checkpoint.ts";

// Simulation, rendering and the policy on SwiftShader, in a child process.
setDefaultTimeout(180_000);


function checkpoint(): string {
  const dir = join(mkdtempSync(join(tmpdir(), "dexrl-eval-")), "ckpt");
  writeTinyCheckpoint(dir);
  return dir;
}

describe("dexrl eval", () => {
  test("runs every requested episode to its end and reports per task", () => {
    const ckpt = checkpoint();
    const out = join(ckpt, "..", "report.json");
    const videos = join(ckpt, "..", "videos");
    const r = dexrl("eval", "--ckpt", ckpt, "--tasks", "0,4", "--num-trials-per-task", "2", "--out", out, "--json", "--videos", "3",
      "env.eval.total_num_envs=3", "env.eval.max_episode_steps=10", "env.eval.max_steps_per_rollout_epoch=10", "actor.model.action_horizon=10",
      `env.eval.video_cfg.video_base_dir=${videos}`);
    expect(r.stderr).not.toContain("internal error");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(report);
    expect(report.tasks.map((t: { task: number; episodes: number }) => [t.task, t.episodes])).toEqual([[0, 2], [4, 2]]);
    expect(report.overall.episodes).toBe(4);
    // A random policy does not solve the task in 10 steps; with ignore_terminations every episode runs to the limit.
    expect(report.overall.successOnce).toBe(0);
    expect(report.overall.meanEpisodeLen).toBe(10);
    expect(r.stderr).toContain("eval ");
    // The first three episodes as GIFs, named by task, initial state and outcome.
    expect(readdirSync(videos).sort()).toEqual(["task0_init0_failure.gif", "task0_init1_failure.gif", "task4_init0_failure.gif"]);
    expect(readFileSync(join(videos, "task4_init0_failure.gif")).subarray(0, 6).toString("latin1")).toBe("GIF89a");
  });

  test("bad input: a mismatched horizon, unknown tasks, trials out of range", () => {
    const ckpt = checkpoint();
    const h = dexrl("eval", "--ckpt", ckpt, "actor.model.action_horizon=50");
    expect(h.code).toBe(2);
    expect(h.stderr).toContain("has action horizon 10 but actor.model.action_horizon is 50; set actor.model.action_horizon=10.");
    expect(() => taskListArg("3,11", 10)).toThrow('--tasks takes task ids from 0 to 9 separated by commas (or "all"), not "3,11".');
    expect(taskListArg("all", 10)).toHaveLength(10);
    expect(taskListArg("4, 4,0", 10)).toEqual([4, 0]);
    const t = dexrl("eval", "--ckpt", ckpt, "--num-trials-per-task", "51", "actor.model.action_horizon=10");
    expect(t.code).toBe(2);
    expect(t.stderr).toContain('--num-trials-per-task must be an integer from 1 to 50, not "51".');
  });
});
