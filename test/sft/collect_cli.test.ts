// `dexrl collect` as a user runs it: a short collection, the refusal to overwrite, resume, replace,
// and episodes that start from training initial states (never a fixed evaluation state).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDataset } from "../../src/sft/dataset.ts";
import { LiberoEnv } from "../../src/sim/env.ts";
import { isFixedInitState, trainingInitState } from "../../src/sim/tasks.ts";
import { dexrl } from "../helpers/cli.ts";

setDefaultTimeout(180_000);
const root = mkdtempSync(join(tmpdir(), "dexrl-collect-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const index = (dir: string) => JSON.parse(readFileSync(join(dir, "dataset.json"), "utf8"));

describe("dexrl collect", () => {
  test("--help teaches with examples", () => {
    const r = dexrl("collect", "--help");
    expect(r.code).toBe(0);
    for (const opt of ["--out", "--tasks", "--episodes-per-task", "--seed", "--image-size", "--resume", "--overwrite"]) expect(r.stdout).toContain(opt);
    expect(r.stdout).toContain("dexrl collect --out data/spatial_s1 --seed 1");
  });

  test("records expert episodes from training initial states; refuses to overwrite; resumes; replaces", async () => {
    const dir = join(root, "ds");
    const first = dexrl("collect", "--tasks", "2", "--episodes-per-task", "1", "--seed", "7", "--image-size", "16", "--out", dir);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("wrote 1 episodes");
    expect(first.stderr).toContain("eta");
    const ds = openDataset(dir);
    expect([ds.imageSize, ds.numViews, ds.episodes.length]).toEqual([16, 2, 1]);
    const ep = ds.load(0);
    expect(ep.instruction).toBe("pick up the black bowl from table center and place it on the plate");
    expect(ep.images.length).toBe(ep.length * 2 * 16 * 16 * 3);
    // Real renders: the two views differ and neither is blank.
    const view = (v: number) => ep.images.subarray(v * 16 * 16 * 3, (v + 1) * 16 * 16 * 3);
    expect(new Set(view(0)).size).toBeGreaterThan(10);
    expect(Buffer.from(view(0)).equals(Buffer.from(view(1)))).toBe(false);
    // The last action completes the task: the gripper opens over the plate.
    expect(ep.actions[(ep.length - 1) * 7 + 6]).toBe(-1);

    // It started from the seed's training initial state, which is not a fixed one, placed as recorded.
    const e = index(dir).episodes[0];
    expect([e.task, e.init_seed, e.init_index]).toEqual([2, 7, 0]);
    const init = trainingInitState(2, 7, e.init_index);
    expect(isFixedInitState(init)).toBe(false);
    const env = await LiberoEnv.create();
    try {
      env.seed(e.fixture_seed);
      expect(Array.from(env.resetTo(init).state)).toEqual(Array.from(ep.states.subarray(0, 8)));
    } finally {
      env.delete();
    }

    // An existing dataset is not overwritten without a flag.
    const again = dexrl("collect", "--tasks", "2", "--episodes-per-task", "1", "--out", dir);
    expect(again.code).toBe(2);
    expect(again.errLines).toEqual([`dexrl: ${dir} already holds a dataset (1 episodes); pass --resume to add to it or --overwrite to replace it.`]);
    const clash = dexrl("collect", "--tasks", "2", "--seed", "8", "--resume", "--out", dir);
    expect(clash.code).toBe(2);
    expect(clash.errLines).toEqual([`dexrl: ${dir} was collected with --seed 7; resume it with the same value (or leave --seed out), not 8.`]);

    // --resume continues the same stream: the next initial state, the first episode untouched.
    const resumed = dexrl("collect", "--tasks", "2", "--episodes-per-task", "2", "--resume", "--workers", "1", "--out", dir);
    expect(resumed.code).toBe(0);
    const after = index(dir);
    expect(after.episodes.length).toBe(2);
    expect(after.episodes[0]).toEqual(e);
    expect([after.episodes[1].task, after.episodes[1].init_seed, after.episodes[1].init_index]).toEqual([2, 7, 1]);
    expect(openDataset(dir).totalSteps).toBe(e.length + after.episodes[1].length);
    const done = dexrl("collect", "--tasks", "2", "--episodes-per-task", "2", "--resume", "--out", dir);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain("nothing to collect");

    // The same seed gives the same episode, whatever the number of workers.
    const other = join(root, "same");
    expect(dexrl("collect", "--tasks", "2", "--episodes-per-task", "1", "--seed", "7", "--image-size", "16", "--workers", "1", "--out", other).code).toBe(0);
    expect(index(other).episodes[0].crc32).toBe(e.crc32);

    // --overwrite replaces it.
    const replaced = dexrl("collect", "--tasks", "7", "--episodes-per-task", "1", "--image-size", "16", "--overwrite", "--out", dir);
    expect(replaced.code).toBe(0);
    expect(index(dir).episodes.map((x: { task: number }) => x.task)).toEqual([7]);
  });

  test("bad arguments and a directory that is not a dataset are one sentence and exit code 2", () => {
    const foreign = join(root, "foreign");
    mkdirSync(foreign);
    writeFileSync(join(foreign, "notes.txt"), "mine");
    const r = dexrl("collect", "--out", foreign, "--overwrite");
    expect(r.code).toBe(2);
    expect(r.errLines).toEqual([`dexrl: ${foreign} is not empty and holds no dataset.json, so it is not a dexrl dataset; choose a new or empty --out directory.`]);
    expect(readFileSync(join(foreign, "notes.txt"), "utf8")).toBe("mine");
    const size = dexrl("collect", "--out", join(root, "x"), "--image-size", "30");
    expect(size.code).toBe(2);
    expect(size.errLines).toEqual(["dexrl: --image-size must be a multiple of 4, not 30."]);
    const both = dexrl("collect", "--out", join(root, "y"), "--resume", "--overwrite");
    expect(both.errLines).toEqual(["dexrl: --resume and --overwrite exclude each other: --resume adds to the dataset, --overwrite replaces it."]);
  });
});
