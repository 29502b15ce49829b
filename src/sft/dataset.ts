// Demonstration datasets (what `dexrl collect` writes and `dexrl sft` reads): one safetensors shard
// per episode plus a JSON index, written so that a crash loses at most the episode being written.
//
// A dataset is a directory:
//   dataset.json                   the index (below); it lists only complete, checked shards
//   episodes/task<I>_init<K>.safetensors
//                                  one successful episode of task I from training initial state K
//                                  of the dataset's seed stream, T control steps long:
//     images   U8  [T, V, S, S, 3] both cameras (V = 2: agentview, robot0_eye_in_hand) at S×S,
//                                  upright (row 0 = top, LIBERO's 180° flip not applied), RGB: the
//                                  layout `policyImages` hands the policy; image t is what was seen
//                                  before action t
//     states   F32 [T, 8]          eef position (3), axis-angle of the hand (3), finger joints (2)
//     actions  F32 [T, 7]          the normalized actions executed ([Δpos 3, Δaxis-angle 3, gripper],
//                                  gripper −1 open, +1 closed); the last one completed the task
//   and string metadata: task, instruction, init_seed, init_index, fixture_seed.
//
// dataset.json: { format: "dexrl-demonstrations", version: 1, suite, image_size, num_views, views,
// state_dim, action_dim, control_hz, seed (of the training initial-state stream), max_steps,
// total_steps, episodes: [{ file, task, instruction, length, init_seed, init_index, fixture_seed,
// success, bytes, crc32 }], failed: [{ task, init_index, steps }] } with episodes in the order they
// were written. Only successful episodes are kept (LIBERO's demonstrations are successful ones);
// failed attempts are listed so that a resumed collection skips them. Shards and the index are
// written to a temporary name, fsynced and renamed, shard first: an index never lists a missing or
// partial shard. `openDataset` checks the index and every shard's size and header, `load` its
// CRC-32, and a damaged file is refused with a sentence that names it.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync } from "node:fs";
import { isAbsolute, join, normalize } from "node:path";
import { DexrlError, usageError } from "../errors.ts";
import { decodeSafetensorsAny, encodeSafetensors, HEADER_PREFIX_BYTES, headerLength, parseSafetensorsHeader, type AnyTensors } from "../model/safetensors.ts";

export const DATASET_FORMAT = "dexrl-demonstrations";
export const DATASET_VERSION = 1;
export const INDEX_FILE = "dataset.json";
export const EPISODES_DIR = "episodes";
export const CAMERA_VIEWS = ["agentview", "robot0_eye_in_hand"] as const;
const STATE_DIM = 8;
const ACTION_DIM = 7;

/** One episode as the index lists it. */
export interface IndexEpisode {
  /** Shard path relative to the dataset directory. */
  file: string;
  task: number;
  instruction: string;
  length: number;
  /** The training initial state: index `init_index` of the stream `init_seed` (see `trainingInitState`). */
  init_seed: number;
  init_index: number;
  /** Seed of the cabinet and stove placement at the episode's reset. */
  fixture_seed: number;
  success: boolean;
  bytes: number;
  crc32: number;
}

export interface IndexFailure {
  task: number;
  init_index: number;
  steps: number;
}

export interface DatasetIndex {
  format: string;
  version: number;
  suite: string;
  image_size: number;
  num_views: number;
  views: string[];
  state_dim: number;
  action_dim: number;
  control_hz: number;
  seed: number;
  max_steps: number;
  total_steps: number;
  episodes: IndexEpisode[];
  failed: IndexFailure[];
}

export interface DatasetEpisode {
  task: number;
  instruction: string;
  length: number;
  images: Uint8Array /* [length, 2, S, S, 3] */;
  states: Float32Array /* [length, 8] */;
  actions: Float32Array /* [length, 7] */;
}

export interface Dataset {
  dir: string;
  imageSize: number;
  numViews: number;
  episodes: { task: number; instruction: string; length: number }[];
  totalSteps: number;
  load(i: number): DatasetEpisode;
}

/** CRC-32 (IEEE) of a file's bytes, as an unsigned integer. */
const crc32 = (bytes: Uint8Array) => Bun.hash.crc32(bytes) >>> 0;

/** Shard path (relative) of task `task`'s episode from training initial state `initIndex`. */
export const shardName = (task: number, initIndex: number) => `${EPISODES_DIR}/task${task}_init${String(initIndex).padStart(6, "0")}.safetensors`;

/** The tensors of one episode, with their shapes checked against the dataset's image size. */
export function episodeTensors(ep: DatasetEpisode, imageSize: number, numViews: number): AnyTensors {
  const T = ep.length;
  const shapes = { images: [T, numViews, imageSize, imageSize, 3], states: [T, STATE_DIM], actions: [T, ACTION_DIM] };
  const data = { images: ep.images, states: ep.states, actions: ep.actions };
  const tensors: AnyTensors = new Map();
  for (const name of ["images", "states", "actions"] as const) {
    const count = shapes[name].reduce((a, b) => a * b, 1);
    if (data[name].length !== count) throw new Error(`episode ${name}: ${data[name].length} values for shape [${shapes[name]}]`);
    tensors.set(name, { shape: shapes[name], data: data[name] });
  }
  return tensors;
}

/**
 * Writes `bytes` to `path` so that `path` is either its old content or all of the new: a temporary
 * file in the same directory, fsynced, renamed over it, and the directory fsynced.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const fd = openSync(tmp, "w");
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  syncDir(join(path, ".."));
}

/** Makes a rename in `dir` durable (a no-op where directories cannot be opened, e.g. Windows). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Directory fsync is unsupported here; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The index as JSON text (episodes one per line, so a large index stays readable). */
export function indexJson(index: DatasetIndex): string {
  const { episodes, failed, ...head } = index;
  const rows = (xs: unknown[]) => (xs.length ? `[\n${xs.map((x) => `  ${JSON.stringify(x)}`).join(",\n")}\n ]` : "[]");
  const top = JSON.stringify(head, null, 1).slice(0, -2);
  return `${top},\n "episodes": ${rows(episodes)},\n "failed": ${rows(failed)}\n}\n`;
}

/** Reads and checks `dir/dataset.json`; every problem is one sentence naming the file (exit code 2). */
export function readIndex(dir: string): DatasetIndex {
  const path = join(dir, INDEX_FILE);
  if (!existsSync(dir)) throw usageError(`There is no dataset at ${dir}: the directory does not exist (make one with \`dexrl collect --out ${dir}\`).`);
  if (!existsSync(path)) throw usageError(`${path} is missing: ${dir} is not a dexrl dataset (make one with \`dexrl collect --out ${dir}\`).`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    throw usageError(`${path} is truncated or corrupt: it is not valid JSON.`);
  }
  const bad = (why: string) => usageError(`${path} is corrupt: ${why}.`);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw bad("it is not a JSON object");
  const ix = raw as DatasetIndex;
  if (ix.format !== DATASET_FORMAT) throw bad(`its format is ${JSON.stringify(ix.format)}, not "${DATASET_FORMAT}"`);
  if (ix.version !== DATASET_VERSION) throw bad(`it is version ${JSON.stringify(ix.version)}; this dexrl reads version ${DATASET_VERSION}`);
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  const natural = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  for (const key of ["image_size", "num_views", "max_steps"] as const) if (!posInt(ix[key])) throw bad(`"${key}" is ${JSON.stringify(ix[key])}, not a positive integer`);
  if (ix.state_dim !== STATE_DIM || ix.action_dim !== ACTION_DIM) throw bad(`its state and action sizes are ${ix.state_dim} and ${ix.action_dim}, not ${STATE_DIM} and ${ACTION_DIM}`);
  if (!natural(ix.seed)) throw bad(`"seed" is ${JSON.stringify(ix.seed)}, not an integer ≥ 0`);
  if (!Array.isArray(ix.episodes) || !Array.isArray(ix.failed)) throw bad(`"episodes" and "failed" must be lists`);
  const seen = new Set<string>();
  ix.episodes.forEach((e, i) => {
    const what = `episode ${i}`;
    if (typeof e !== "object" || e === null) throw bad(`${what} is not an object`);
    if (typeof e.file !== "string" || isAbsolute(e.file) || normalize(e.file).startsWith("..")) throw bad(`${what} has an invalid file ${JSON.stringify(e.file)}`);
    if (seen.has(e.file)) throw bad(`${what} repeats the file ${e.file}`);
    seen.add(e.file);
    if (!natural(e.task) || typeof e.instruction !== "string" || !posInt(e.length) || !natural(e.init_index) || !natural(e.init_seed) || !natural(e.fixture_seed))
      throw bad(`${what} (${e.file}) lacks a valid task, instruction, length, init_seed, init_index or fixture_seed`);
    if (!posInt(e.bytes) || !natural(e.crc32)) throw bad(`${what} (${e.file}) lacks a valid byte count or crc32`);
  });
  ix.failed.forEach((f, i) => {
    if (typeof f !== "object" || f === null || !natural(f.task) || !natural(f.init_index)) throw bad(`failed attempt ${i} lacks a valid task or init_index`);
  });
  const total = ix.episodes.reduce((a, e) => a + e.length, 0);
  if (ix.total_steps !== total) throw bad(`"total_steps" is ${ix.total_steps} but its episodes hold ${total} steps`);
  return ix;
}

/** A damaged dataset file is bad input (exit code 2), as the CLI reports a damaged config. */
function asBadInput<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DexrlError) throw usageError(e.message);
    throw e;
  }
}

/** Reads the first bytes of a shard: enough for its header. */
function readHead(path: string, fileBytes: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const prefix = new Uint8Array(Math.min(HEADER_PREFIX_BYTES, fileBytes));
    readSync(fd, prefix, 0, prefix.length, 0);
    const want = prefix.length < HEADER_PREFIX_BYTES ? prefix.length : Math.min(fileBytes, HEADER_PREFIX_BYTES + Math.min(headerLength(prefix), 2 ** 24));
    const head = new Uint8Array(want);
    readSync(fd, head, 0, want, 0);
    return head;
  } finally {
    closeSync(fd);
  }
}

/** Checks that a shard's header holds exactly images/states/actions of the episode's shapes. */
function checkShardHeader(path: string, head: Uint8Array, fileBytes: number, e: IndexEpisode, ix: DatasetIndex): void {
  const { tensors } = asBadInput(() => parseSafetensorsHeader(head, fileBytes, path));
  const S = ix.image_size;
  const want: Record<string, [string, number[]]> = {
    images: ["U8", [e.length, ix.num_views, S, S, 3]],
    states: ["F32", [e.length, STATE_DIM]],
    actions: ["F32", [e.length, ACTION_DIM]],
  };
  const names = [...tensors.keys()].sort();
  if (names.join() !== "actions,images,states") throw usageError(`${path} is corrupt: it holds tensors ${names.join(", ") || "none"}, not actions, images and states.`);
  for (const [name, [dtype, shape]] of Object.entries(want)) {
    const t = tensors.get(name)!;
    if (t.dtype !== dtype || t.shape.join() !== shape.join())
      throw usageError(`${path} is corrupt: its ${name} are ${t.dtype} [${t.shape}], the index says ${dtype} [${shape}].`);
  }
}

/** Opens a dataset: validates the index and every shard's size and header (not yet its data). */
export function openDataset(dir: string): Dataset {
  const ix = readIndex(dir);
  const indexPath = join(dir, INDEX_FILE);
  for (const e of ix.episodes) {
    const path = join(dir, e.file);
    if (!existsSync(path)) throw usageError(`${path} is missing (it is listed in ${indexPath}).`);
    const size = statSync(path).size;
    if (size !== e.bytes) throw usageError(`${path} is ${size < e.bytes ? "truncated" : "damaged"}: it has ${size} bytes, ${indexPath} says ${e.bytes}.`);
    checkShardHeader(path, readHead(path, size), size, e, ix);
  }
  return {
    dir,
    imageSize: ix.image_size,
    numViews: ix.num_views,
    episodes: ix.episodes.map((e) => ({ task: e.task, instruction: e.instruction, length: e.length })),
    totalSteps: ix.total_steps,
    load(i: number): DatasetEpisode {
      const e = ix.episodes[i];
      if (!e) throw new RangeError(`episode ${i} is not in 0..${ix.episodes.length - 1}`);
      const path = join(dir, e.file);
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(path);
      } catch {
        throw usageError(`${path} is missing (it is listed in ${indexPath}).`);
      }
      if (bytes.length !== e.bytes) throw usageError(`${path} is ${bytes.length < e.bytes ? "truncated" : "damaged"}: it has ${bytes.length} bytes, ${indexPath} says ${e.bytes}.`);
      if (crc32(bytes) !== e.crc32) throw usageError(`${path} is corrupt: its CRC-32 does not match the one in ${indexPath}.`);
      checkShardHeader(path, bytes, bytes.length, e, ix);
      const { tensors } = asBadInput(() => decodeSafetensorsAny(bytes, path));
      return {
        task: e.task,
        instruction: e.instruction,
        length: e.length,
        images: tensors.get("images")!.data as Uint8Array,
        states: tensors.get("states")!.data as Float32Array,
        actions: tensors.get("actions")!.data as Float32Array,
      };
    },
  };
}

/** Appends episodes to a dataset directory, each shard and then the index written atomically. */
export class DatasetWriter {
  private constructor(
    readonly dir: string,
    readonly index: DatasetIndex,
  ) {}

  /** Starts a new, empty dataset in `dir` (which must not hold one) and writes its index. */
  static create(dir: string, head: Omit<DatasetIndex, "format" | "version" | "total_steps" | "episodes" | "failed">): DatasetWriter {
    mkdirSync(join(dir, EPISODES_DIR), { recursive: true });
    const w = new DatasetWriter(dir, { format: DATASET_FORMAT, version: DATASET_VERSION, ...head, total_steps: 0, episodes: [], failed: [] });
    w.writeIndex();
    return w;
  }

  /** Continues an existing dataset: its index and every shard are checked first. */
  static resume(dir: string): DatasetWriter {
    openDataset(dir);
    mkdirSync(join(dir, EPISODES_DIR), { recursive: true });
    return new DatasetWriter(dir, readIndex(dir));
  }

  /** Writes one successful episode's shard, then the index that lists it. */
  addEpisode(ep: DatasetEpisode, init: { seed: number; index: number; fixtureSeed: number }): IndexEpisode {
    const ix = this.index;
    const file = shardName(ep.task, init.index);
    const metadata = { task: String(ep.task), instruction: ep.instruction, init_seed: String(init.seed), init_index: String(init.index), fixture_seed: String(init.fixtureSeed) };
    const bytes = encodeSafetensors(episodeTensors(ep, ix.image_size, ix.num_views), metadata);
    writeFileAtomic(join(this.dir, file), bytes);
    const entry: IndexEpisode = {
      file,
      task: ep.task,
      instruction: ep.instruction,
      length: ep.length,
      init_seed: init.seed,
      init_index: init.index,
      fixture_seed: init.fixtureSeed,
      success: true,
      bytes: bytes.length,
      crc32: crc32(bytes),
    };
    ix.episodes.push(entry);
    ix.total_steps += ep.length;
    this.writeIndex();
    return entry;
  }

  /** Records a failed attempt (no shard), so that a resumed collection does not try it again. */
  addFailure(f: IndexFailure): void {
    this.index.failed.push(f);
    this.writeIndex();
  }

  private writeIndex(): void {
    writeFileAtomic(join(this.dir, INDEX_FILE), indexJson(this.index));
  }
}
