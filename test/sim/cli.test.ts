// `dexrl tasks` and `dexrl expert` run as the user runs them, in a child process.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { dexrl } from "../helpers/cli.ts";

setDefaultTimeout(120_000);


describe("dexrl tasks", () => {
  test("lists the 10 instructions; --help teaches with examples", () => {
    const r = dexrl("tasks");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(" 4  pick up the black bowl in the top drawer of the wooden cabinet and place it on the plate");
    expect(r.stdout.match(/^\s*\d+ {2}pick up the black bowl/gm)?.length).toBe(10);
    const help = dexrl("tasks", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--suite");
    expect(help.stdout).toContain("dexrl tasks --json");
  });

  test("--json gives every task's 50 initial states with object poses and the 8-D state", () => {
    const r = dexrl("tasks", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tasks.length).toBe(10);
    const eef = [0, 0, 0];
    for (const t of j.tasks) {
      expect(t.init_states.length).toBe(50);
      for (const s of t.init_states) {
        expect(s.state.length).toBe(8);
        expect(Object.keys(s.objects)).toEqual(["akita_black_bowl_1", "akita_black_bowl_2", "cookies_1", "glazed_rim_porcelain_ramekin_1", "plate_1"]);
        expect(s.state.slice(6)).toEqual([0.020833, -0.020833]);
        for (let i = 0; i < 3; i++) eef[i]! += s.state[i] / 500;
      }
    }
    // Joint noise averages out: the mean eef is the start posture's grip site (−0.2085, 0, 1.1733).
    expect(Math.abs(eef[0]! + 0.2085)).toBeLessThan(0.005);
    expect(Math.abs(eef[1]!)).toBeLessThan(0.005);
    expect(Math.abs(eef[2]! - 1.1733)).toBeLessThan(0.005);
    expect(j.tasks[4].init_states[0].drawers.top).toBeLessThan(-0.14);
  });

  test("an unknown suite is one sentence and exit code 2", () => {
    const r = dexrl("tasks", "--suite", "libero_goal");
    expect(r.code).toBe(2);
    expect(r.errLines).toEqual(['dexrl: unknown suite "libero_goal": only libero_spatial is available.']);
  });
});

describe("dexrl expert", () => {
  test("runs the expert on the chosen tasks and reports success as JSON", () => {
    const r = dexrl("expert", "--tasks", "2,9", "--trials-per-task", "1", "--workers", "2", "--json");
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.tasks.map((t: { task: number; successes: number; trials: number }) => [t.task, t.successes, t.trials])).toEqual([
      [2, 1, 1],
      [9, 1, 1],
    ]);
    expect(j.overall).toEqual({ successes: 2, trials: 2, success_rate: 1 });
    expect(r.stderr).toContain("2/2 100%");
  });

  test("bad arguments are one sentence and exit code 2", () => {
    const r = dexrl("expert", "--tasks", "3,12");
    expect(r.code).toBe(2);
    expect(r.errLines).toEqual(['dexrl: --tasks takes task ids from 0 to 9 separated by commas (or "all"), not "3,12".']);
    const t = dexrl("expert", "--trials-per-task", "51");
    expect(t.code).toBe(2);
    expect(t.errLines).toEqual(['dexrl: --trials-per-task must be an integer from 1 to 50, not "51".']);
  });
});
