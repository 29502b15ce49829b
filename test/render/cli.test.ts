// `dexrl render` as a user runs it: the real CLI in a child process writes the two camera PNGs.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode } from "fast-png";
import { dexrl as cli } from "../helpers/cli.ts";

const dexrl = (...args: string[]) => cli("render", ...args);

const out = mkdtempSync(join(tmpdir(), "dexrl-render-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));


test("dexrl render --task 4 --video writes the agentview and wrist images and the expert's episode", () => {
  const r = dexrl("--task", "4", "--init", "1", "--size", "64", "--video", "--out", out);
  expect(r.code, r.stderr).toBe(0);
  const files = r.stdout.trim().split("\n");
  expect(files).toEqual([
    ...["agentview", "robot0_eye_in_hand", "captioned"].map((s) => join(out, `task4_init1_${s}.png`)),
    join(out, "task4_init1_expert.gif"),
  ]);
  const gif = readFileSync(files[3]!);
  expect(new TextDecoder().decode(gif.subarray(0, 6))).toBe("GIF89a");
  expect([gif.readUInt16LE(6), gif[gif.length - 1]]).toEqual([256, 0x3b]); // two 64-px cameras side by side, enlarged to 128 px each; trailer
  for (const f of files.slice(0, 2)) {
    const png = decode(readFileSync(f));
    expect([png.width, png.height, png.channels]).toEqual([64, 64, 3]);
    // A real view of the scene has many distinct colours; an empty or failed render has one or two.
    const colours = new Set<number>();
    for (let p = 0; p < 64 * 64; p++) colours.add((png.data[3 * p]! << 16) | (png.data[3 * p + 1]! << 8) | png.data[3 * p + 2]!);
    expect(colours.size, f).toBeGreaterThan(50);
  }
}, 60_000);

test("bad arguments get one sentence and exit code 2", () => {
  for (const args of [["--task", "10"], ["--size", "66"], ["--init", "x"]]) {
    const r = dexrl(...args, "--out", out);
    expect(r.code, args.join(" ")).toBe(2);
    expect(r.stderr.trim().split("\n").filter((l) => l.startsWith("dexrl:"))).toHaveLength(1);
    expect(r.stderr).not.toContain("    at ");
  }
}, 60_000);
