// Output paths checked before work without changing anything, files written whole or not at all
// (also on Ctrl-C), and checkpoint writes that a killed process left unfinished settled.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkOutputFile, ensureOutputDir, PartialFile } from "../../src/cli/outputs.ts";
import { DexrlError } from "../../src/errors.ts";
import { recoverInterruptedSaves } from "../../src/model/checkpoint.ts";
import { repoRoot } from "../helpers/cli.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "dexrl-outputs-"));

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DexrlError);
    expect((e as DexrlError).exitCode).toBe(2);
    return (e as Error).message;
  }
  throw new Error("expected a refusal");
}

/** The pid of a process that has exited (for leftovers of a killed process). */
function deadPid(): number {
  const p = Bun.spawnSync(["true"]);
  expect(p.exitCode).toBe(0);
  return p.pid;
}

describe("output paths", () => {
  test("checkOutputFile leaves an existing file as it was and creates nothing", () => {
    const dir = tmp();
    const existing = join(dir, "report.json");
    writeFileSync(existing, "old results\n");
    const before = statSync(existing).mtimeMs;
    checkOutputFile(existing, "--out");
    expect(readFileSync(existing, "utf8")).toBe("old results\n");
    expect(statSync(existing).mtimeMs).toBe(before);
    checkOutputFile(join(dir, "new.json"), "--out");
    expect(readdirSync(dir)).toEqual(["report.json"]);
  });

  test("checkOutputFile refuses folders, missing folders and files used as folders", () => {
    const dir = tmp();
    writeFileSync(join(dir, "f"), "");
    expect(refusal(() => checkOutputFile(dir, "--out"))).toBe(`--out ${dir} is a folder; give a file name (e.g. ${join(dir, "out.json")}).`);
    expect(refusal(() => checkOutputFile(join(dir, "no", "r.json"), "--out"))).toBe(`--out ${join(dir, "no", "r.json")} cannot be written: the folder ${join(dir, "no")} does not exist.`);
    expect(refusal(() => checkOutputFile(join(dir, "f", "r.json"), "--out"))).toContain("is a file, not a folder");
    expect(refusal(() => checkOutputFile("", "--out"))).toContain("needs a file name");
  });

  test("ensureOutputDir creates the folder with its parents and leaves no probe behind", () => {
    const dir = tmp();
    ensureOutputDir(join(dir, "a", "b"), "--out");
    expect(readdirSync(join(dir, "a", "b"))).toEqual([]);
    writeFileSync(join(dir, "f"), "");
    expect(refusal(() => ensureOutputDir(join(dir, "f"), "--out"))).toBe(`--out ${join(dir, "f")} is a file, not a folder.`);
    expect(refusal(() => ensureOutputDir(join(dir, "f", "sub"), "--out"))).toBe(`--out ${join(dir, "f", "sub")} cannot be written: a part of the path is a file, not a folder.`);
  });
});

describe("PartialFile", () => {
  test("commit moves the checked file into place; without a commit nothing is left", () => {
    const dir = tmp();
    const out = join(dir, "policy.onnx");
    {
      using partial = new PartialFile(out);
      writeFileSync(partial.path, "bytes");
      expect(partial.path).toBe(join(dir, `policy.onnx.partial-${process.pid}`));
      partial.commit();
    }
    expect(readdirSync(dir)).toEqual(["policy.onnx"]);
    const failing = () => {
      using partial = new PartialFile(out);
      writeFileSync(partial.path, "broken");
      throw new Error("verification failed");
    };
    expect(failing).toThrow("verification failed");
    expect(readdirSync(dir)).toEqual(["policy.onnx"]);
    expect(readFileSync(out, "utf8")).toBe("bytes");
  });

  test("partial files of processes that no longer run are removed, a running one's kept", () => {
    const dir = tmp();
    const out = join(dir, "p.onnx");
    const dead = `p.onnx.partial-${deadPid()}`;
    const alive = `p.onnx.partial-${process.ppid}`;
    writeFileSync(join(dir, dead), "stale");
    writeFileSync(join(dir, alive), "someone else's, in progress");
    using partial = new PartialFile(out);
    expect(readdirSync(dir).sort()).toEqual([alive]);
    expect(partial.out).toBe(out);
  });

  test("Ctrl-C while the file is being written removes it and exits 130", () => {
    const dir = tmp();
    const out = join(dir, "p.onnx");
    const script = `
      import { PartialFile } from ${JSON.stringify(join(repoRoot, "src/cli/outputs.ts"))};
      import { writeFileSync } from "node:fs";
      using partial = new PartialFile(${JSON.stringify(out)});
      writeFileSync(partial.path, "half");
      process.kill(process.pid, "SIGINT");
      await Bun.sleep(10_000);`;
    const file = join(dir, "script.ts");
    writeFileSync(file, script);
    const p = Bun.spawnSync([process.execPath, file], { cwd: dir });
    expect(p.exitCode).toBe(130);
    expect(p.stderr.toString()).toBe(`dexrl: stopped by SIGINT; ${out} was not written.\n`);
    expect(readdirSync(dir)).toEqual(["script.ts"]);
  });
});

describe("interrupted checkpoint writes", () => {
  test("a dead writer's partial is removed and its set-aside checkpoint restored; a live writer's are left", () => {
    const dir = tmp();
    const dead = deadPid();
    mkdirSync(join(dir, `.global_step_3.partial-${dead}`));
    mkdirSync(join(dir, `.global_step_2.old-${dead}`)); // killed between moving step 2 aside and moving its new copy in
    writeFileSync(join(dir, `.global_step_2.old-${dead}`, "model.safetensors"), "weights");
    mkdirSync(join(dir, "global_step_1"));
    mkdirSync(join(dir, `.global_step_1.old-${dead}`)); // killed after the new step 1 was in place
    mkdirSync(join(dir, `.global_step_4.partial-${process.pid}`)); // this process is writing it
    const done = recoverInterruptedSaves(dir);
    expect(done.sort()).toEqual(
      [
        `removed ${join(dir, `.global_step_3.partial-${dead}`)} left by an interrupted save`,
        `restored ${join(dir, "global_step_2")} from an interrupted save`,
        `removed ${join(dir, `.global_step_1.old-${dead}`)} left by an interrupted save`,
      ].sort(),
    );
    expect(readdirSync(dir).sort()).toEqual([`.global_step_4.partial-${process.pid}`, "global_step_1", "global_step_2"]);
    expect(readFileSync(join(dir, "global_step_2", "model.safetensors"), "utf8")).toBe("weights");
    expect(recoverInterruptedSaves(join(dir, "nope"))).toEqual([]);
    expect(existsSync(join(dir, "nope"))).toBe(false);
  });
});
