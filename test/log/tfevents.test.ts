// TensorBoard event files read back by an independent reader (events.ts: its own CRC-32C and protobuf
// decoding); a resumed run's purge drops the steps logged after its checkpoint from earlier files.
import { describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventWriter, purgeEvents } from "../../src/log/tfevents.ts";
import { crc32cBitwise, eventFiles, readEvents, type Scalar } from "./events.ts";

describe("TensorBoard event writer", () => {
  test("the bitwise CRC-32C matches the standard check value", () => {
    expect(crc32cBitwise(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
  });

  test("round trip: file version, scalars, steps and wall times come back with valid CRCs", () => {
    const dir = mkdtempSync(join(tmpdir(), "dexrl-tb-"));
    const w = new EventWriter(dir);
    expect(w.path).toMatch(/events\.out\.tfevents\.\d+\./);
    const logged: Scalar[] = [];
    for (let step = 0; step < 50; step++) {
      const metrics = { "train/actor/policy_loss": Math.sin(step) * 0.1, "train/critic/value_loss": 1 / (step + 1), "env/success_once": step / 50 };
      const wall = 1_800_000_000 + step * 1.5;
      w.addScalars(step * 1000 + 7, metrics, wall);
      for (const [tag, value] of Object.entries(metrics)) logged.push({ step: step * 1000 + 7, wallTime: wall, tag, value: Math.fround(value) });
    }
    // Written synchronously: readable before close (a crash would lose nothing already logged).
    const before = readEvents(w.path);
    w.close();
    expect(before.fileVersion).toBe("brain.Event:2");
    expect(before.records).toBe(51);
    expect(before.scalars).toEqual(logged);
  });

  test("non-finite values are written as they are, so a diverged loss shows", () => {
    const dir = mkdtempSync(join(tmpdir(), "dexrl-tb-"));
    const w = new EventWriter(dir);
    w.addScalars(3, { a: NaN, b: 2, c: -Infinity });
    w.close();
    expect(readEvents(w.path).scalars.map((s) => [s.tag, s.value])).toEqual([["a", NaN], ["b", 2], ["c", -Infinity]]);
  });
});

describe("purging the steps a resumed run logs again", () => {
  /** A run folder whose first writer logged steps 1…5 at known wall times. */
  function firstRun(): { dir: string; path: string; bytes: Buffer; logged: Scalar[] } {
    const dir = mkdtempSync(join(tmpdir(), "dexrl-tb-purge-"));
    const w = new EventWriter(dir);
    const logged: Scalar[] = [];
    for (let step = 1; step <= 5; step++) {
      const metrics = { "train/loss": 1 / step, "env/reward": step * 0.25 };
      w.addScalars(step, metrics, 1_800_000_000 + step);
      for (const [tag, value] of Object.entries(metrics)) logged.push({ step, wallTime: 1_800_000_000 + step, tag, value: Math.fround(value) });
    }
    w.close();
    return { dir, path: w.path, bytes: readFileSync(w.path), logged };
  }

  test("a writer resuming at step 4 drops steps ≥ 4 from the earlier file, keeps the rest byte for byte, and starts with TensorBoard's purge marker", () => {
    const { dir, path, bytes, logged } = firstRun();
    const w = new EventWriter(dir, { purgeStep: 4 });
    expect(w.path).not.toBe(path);
    expect(w.purged).toEqual([{ path, steps: [4, 5], damagedBytes: 0 }]);
    for (let step = 4; step <= 6; step++) w.addScalars(step, { "train/loss": -step }, 1_900_000_000 + step);
    w.close();

    expect(eventFiles(dir)).toEqual([path, w.path]);
    const kept = readFileSync(path);
    expect(bytes.subarray(0, kept.length).equals(kept)).toBe(true);
    const first = readEvents(path);
    expect(first.fileVersion).toBe("brain.Event:2");
    expect(first.scalars).toEqual(logged.filter((s) => s.step < 4));
    const second = readEvents(w.path);
    expect(second.fileVersion).toBe("brain.Event:2");
    expect(second.starts).toEqual([4]);
    expect(second.scalars.map((s) => [s.step, s.value])).toEqual([[4, -4], [5, -5], [6, -6]]);
    // Read in TensorBoard's order, every (step, tag) appears once.
    const all = eventFiles(dir).flatMap((f) => readEvents(f).scalars.map((s) => `${s.step} ${s.tag}`));
    expect(new Set(all).size).toBe(all.length);
    // No temporary file is left, and none would have been read by TensorBoard ("tfevents" in the name).
    expect(readdirSync(dir).filter((f) => !f.startsWith("events.out.tfevents."))).toEqual([]);

    // Resuming earlier again: the second file keeps its header, loses its purge marker and steps ≥ 2.
    expect(purgeEvents(dir, 2)).toEqual([
      { path, steps: [2, 3], damagedBytes: 0 },
      { path: w.path, steps: [4, 5, 6], damagedBytes: 0 },
    ]);
    expect(readEvents(path).scalars).toEqual(logged.filter((s) => s.step < 2));
    expect(readEvents(w.path)).toEqual({ fileVersion: "brain.Event:2", scalars: [], starts: [], records: 1 });
  });

  test("files with nothing to drop are left alone; a damaged tail (a write cut short) is dropped; a killed rewrite's temporary file is removed", () => {
    const { dir, path, bytes, logged } = firstRun();
    expect(purgeEvents(dir, 6)).toEqual([]);
    expect(readFileSync(path).equals(bytes)).toBe(true);

    appendFileSync(path, bytes.subarray(bytes.length - 30, bytes.length - 10)); // the start of a record only
    const dead = Bun.spawnSync(["true"]).pid;
    writeFileSync(join(dir, `.tb-rewrite-${dead}-0.partial`), "left by a killed rewrite");
    expect(purgeEvents(dir, 6)).toEqual([{ path, steps: [], damagedBytes: 20 }]);
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(readEvents(path).scalars).toEqual(logged);
    expect(readdirSync(dir)).toEqual([path.slice(dir.length + 1)]);
  });

  test("a folder without event files, or no folder at all, purges nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "dexrl-tb-purge-"));
    expect(purgeEvents(dir, 1)).toEqual([]);
    expect(purgeEvents(join(dir, "missing"), 1)).toEqual([]);
  });
});
