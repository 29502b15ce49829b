// Demonstration datasets: episodes written one by one come back exactly, and a missing, truncated or
// corrupt index or shard is refused with one sentence naming the file (exit code 2).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DexrlError } from "../../src/errors.ts";
import { decodeSafetensors, decodeSafetensorsAny, encodeSafetensors } from "../../src/model/safetensors.ts";
import { DatasetWriter, openDataset, type DatasetEpisode } from "../../src/sft/dataset.ts";

const root = mkdtempSync(join(tmpdir(), "dexrl-dataset-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `ds${n++}`);

const S = 12; // image size
function episode(task: number, T: number, salt: number): DatasetEpisode {
  const images = Uint8Array.from({ length: T * 2 * S * S * 3 }, (_, i) => (i * 31 + salt * 7) & 255);
  const states = Float32Array.from({ length: T * 8 }, (_, i) => Math.sin(i + salt));
  const actions = Float32Array.from({ length: T * 7 }, (_, i) => Math.cos(i * 0.3 + salt));
  return { task, instruction: `instruction of task ${task}`, length: T, images, states, actions };
}

const HEAD = { suite: "libero_spatial", image_size: S, num_views: 2, views: ["agentview", "robot0_eye_in_hand"], state_dim: 8, action_dim: 7, control_hz: 20, seed: 3, max_steps: 220 };

/** A dataset of three episodes (lengths 5, 9, 1) and one failed attempt. */
function writeDataset(dir = fresh()): { dir: string; eps: DatasetEpisode[] } {
  const w = DatasetWriter.create(dir, HEAD);
  const eps = [episode(0, 5, 1), episode(4, 9, 2), episode(0, 1, 3)];
  eps.forEach((e, k) => w.addEpisode(e, { seed: 3, index: k, fixtureSeed: 100 + k }));
  w.addFailure({ task: 4, init_index: 7, steps: 220 });
  return { dir, eps };
}

function refusal(fn: () => unknown): { message: string; exitCode: number } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DexrlError);
    return { message: (e as DexrlError).message, exitCode: (e as DexrlError).exitCode };
  }
  throw new Error("expected a refusal");
}

describe("dataset round trip", () => {
  test("what is written is read back exactly, with the index's summary", () => {
    const { dir, eps } = writeDataset();
    const ds = openDataset(dir);
    expect(ds.dir).toBe(dir);
    expect(ds.imageSize).toBe(S);
    expect(ds.numViews).toBe(2);
    expect(ds.totalSteps).toBe(15);
    expect(ds.episodes).toEqual(eps.map((e) => ({ task: e.task, instruction: e.instruction, length: e.length })));
    eps.forEach((e, i) => {
      const got = ds.load(i);
      expect(got.length).toBe(e.length);
      expect(got.images.length).toBe(e.length * 2 * S * S * 3);
      expect(Buffer.from(got.images).equals(Buffer.from(e.images))).toBe(true);
      expect(Array.from(got.states)).toEqual(Array.from(e.states));
      expect(Array.from(got.actions)).toEqual(Array.from(e.actions));
      expect([got.task, got.instruction]).toEqual([e.task, e.instruction]);
    });
    const index = JSON.parse(readFileSync(join(dir, "dataset.json"), "utf8"));
    expect(index.episodes.map((e: { file: string; init_index: number; fixture_seed: number }) => [e.file, e.init_index, e.fixture_seed])).toEqual([
      ["episodes/task0_init000000.safetensors", 0, 100],
      ["episodes/task4_init000001.safetensors", 1, 101],
      ["episodes/task0_init000002.safetensors", 2, 102],
    ]);
    expect(index.failed).toEqual([{ task: 4, init_index: 7, steps: 220 }]);
    // Every write went through a temporary file that was renamed: none is left.
    expect([...readdirSync(dir), ...readdirSync(join(dir, "episodes"))].filter((f) => f.includes(".tmp"))).toEqual([]);
    expect(() => ds.load(3)).toThrow(RangeError);
  });

  test("a resumed writer appends after what is there", () => {
    const { dir } = writeDataset();
    const w = DatasetWriter.resume(dir);
    w.addEpisode(episode(9, 4, 5), { seed: 3, index: 0, fixtureSeed: 9 });
    const ds = openDataset(dir);
    expect(ds.episodes.map((e) => e.task)).toEqual([0, 4, 0, 9]);
    expect(ds.totalSteps).toBe(19);
    expect(Array.from(ds.load(3).states)).toEqual(Array.from(episode(9, 4, 5).states));
  });

  test("safetensors: U8 tensors round trip; the F32 reader of checkpoints still refuses them", () => {
    const images = Uint8Array.from([0, 1, 254, 255, 7, 9]);
    const bytes = encodeSafetensors(new Map<string, { shape: number[]; data: Float32Array | Uint8Array }>([["images", { shape: [2, 3], data: images }], ["x", { shape: [1], data: Float32Array.of(1.5) }]]));
    const back = decodeSafetensorsAny(bytes, "f");
    expect(Array.from(back.tensors.get("images")!.data)).toEqual(Array.from(images));
    expect(back.tensors.get("images")!.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(back.tensors.get("x")!.data)).toEqual([1.5]);
    expect(refusal(() => decodeSafetensors(bytes, "model.safetensors")).message).toContain('tensor images has dtype "U8"; dexrl reads F32 only');
  });
});

describe("damaged datasets are refused, naming the file", () => {
  const shard = (dir: string) => join(dir, "episodes/task4_init000001.safetensors");

  test("no directory, or no index", () => {
    const missing = join(root, "nowhere");
    expect(refusal(() => openDataset(missing))).toEqual({ message: `There is no dataset at ${missing}: the directory does not exist (make one with \`dexrl collect --out ${missing}\`).`, exitCode: 2 });
    const { dir } = writeDataset();
    unlinkSync(join(dir, "dataset.json"));
    expect(refusal(() => openDataset(dir)).message).toBe(`${join(dir, "dataset.json")} is missing: ${dir} is not a dexrl dataset (make one with \`dexrl collect --out ${dir}\`).`);
  });

  test("a truncated or corrupt index", () => {
    const { dir } = writeDataset();
    const path = join(dir, "dataset.json");
    const text = readFileSync(path, "utf8");
    writeFileSync(path, text.slice(0, text.length / 2));
    expect(refusal(() => openDataset(dir))).toEqual({ message: `${path} is truncated or corrupt: it is not valid JSON.`, exitCode: 2 });
    writeFileSync(path, text.replace('"total_steps": 15', '"total_steps": 16'));
    expect(refusal(() => openDataset(dir)).message).toBe(`${path} is corrupt: "total_steps" is 16 but its episodes hold 15 steps.`);
    writeFileSync(path, text.replace('"file":"episodes/task0_init000000.safetensors"', '"file":"../../etc/passwd"'));
    expect(refusal(() => openDataset(dir)).message).toBe(`${path} is corrupt: episode 0 has an invalid file "../../etc/passwd".`);
    writeFileSync(path, text.replace('"format": "dexrl-demonstrations"', '"format": "lerobot"'));
    expect(refusal(() => openDataset(dir)).message).toBe(`${path} is corrupt: its format is "lerobot", not "dexrl-demonstrations".`);
  });

  test("a missing or truncated shard", () => {
    const a = writeDataset();
    unlinkSync(shard(a.dir));
    expect(refusal(() => openDataset(a.dir))).toEqual({ message: `${shard(a.dir)} is missing (it is listed in ${join(a.dir, "dataset.json")}).`, exitCode: 2 });
    const b = writeDataset();
    const size = readFileSync(shard(b.dir)).length;
    truncateSync(shard(b.dir), size - 100);
    expect(refusal(() => openDataset(b.dir)).message).toBe(`${shard(b.dir)} is truncated: it has ${size - 100} bytes, ${join(b.dir, "dataset.json")} says ${size}.`);
  });

  test("a corrupt shard: a damaged header when opened, damaged data when loaded", () => {
    const a = writeDataset();
    const bytes = readFileSync(shard(a.dir));
    const header = Buffer.from(bytes);
    header[12] = "#".charCodeAt(0); // inside the JSON header
    writeFileSync(shard(a.dir), header);
    const r = refusal(() => openDataset(a.dir));
    expect(r.exitCode).toBe(2);
    expect(r.message).toStartWith(`${shard(a.dir)} is not a valid safetensors file`);

    const b = writeDataset();
    const data = Buffer.from(readFileSync(shard(b.dir)));
    data[data.length - 3]! ^= 0x40; // inside the actions
    writeFileSync(shard(b.dir), data);
    const ds = openDataset(b.dir); // size and header are intact
    expect(ds.load(0).length).toBe(5); // other episodes still load
    expect(refusal(() => ds.load(1))).toEqual({ message: `${shard(b.dir)} is corrupt: its CRC-32 does not match the one in ${join(b.dir, "dataset.json")}.`, exitCode: 2 });
  });

  test("a shard whose tensors do not match the index", () => {
    const { dir } = writeDataset();
    const ep = episode(4, 9, 2);
    const shardOf = (names: [string, string, string], T: number) =>
      encodeSafetensors(
        new Map<string, { shape: number[]; data: Float32Array | Uint8Array }>([
          [names[0], { shape: [T, 2, S, S, 3], data: ep.images.subarray(0, T * 2 * S * S * 3) }],
          [names[1], { shape: [T, 8], data: ep.states.subarray(0, T * 8) }],
          [names[2], { shape: [T, 7], data: ep.actions.subarray(0, T * 7) }],
        ]),
      );
    const path = shard(dir);
    const indexPath = join(dir, "dataset.json");
    const index = readFileSync(indexPath, "utf8");
    // A valid safetensors file of the size the index says, but not the episode's tensors.
    const put = (bytes: Uint8Array) => {
      writeFileSync(path, bytes);
      writeFileSync(indexPath, index.replace(/("file":"episodes\/task4_init000001.safetensors".*?"bytes":)\d+/, `$1${bytes.length}`));
    };
    put(shardOf(["images", "states", "velocities"], 9));
    expect(refusal(() => openDataset(dir))).toEqual({ message: `${path} is corrupt: it holds tensors images, states, velocities, not actions, images and states.`, exitCode: 2 });
    put(shardOf(["images", "states", "actions"], 8));
    expect(refusal(() => openDataset(dir)).message).toBe(`${path} is corrupt: its images are U8 [8,2,12,12,3], the index says U8 [9,2,12,12,3].`);
  });
});
