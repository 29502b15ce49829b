// TensorBoard event files: TFRecord framing (length, masked CRC-32C, payload, masked CRC-32C) around
// `tensorflow.Event` protos; scalars as Summary.Value.simple_value. Written synchronously per call,
// so a crash loses nothing already logged. A resumed run purges what the interrupted one logged after
// its checkpoint (as TensorBoard's purge_step does), so no step appears twice.
import { crc32c } from "@aws-crypto/crc32c";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import protobuf from "protobufjs";

/** The subset of tensorflow/core/util/event.proto and summary.proto that scalars need. */
const root = protobuf.Root.fromJSON({
  nested: {
    Event: {
      fields: {
        wall_time: { type: "double", id: 1 },
        step: { type: "int64", id: 2 },
        file_version: { type: "string", id: 3 },
        summary: { type: "Summary", id: 5 },
        session_log: { type: "SessionLog", id: 7 },
      },
    },
    SessionLog: {
      fields: { status: { type: "SessionStatus", id: 1 }, checkpoint_path: { type: "string", id: 2 }, msg: { type: "string", id: 3 } },
      nested: { SessionStatus: { values: { STATUS_UNSPECIFIED: 0, START: 1, STOP: 2, CHECKPOINT: 3 } } },
    },
    Summary: {
      fields: { value: { rule: "repeated", type: "Value", id: 1 } },
      nested: {
        Value: { fields: { tag: { type: "string", id: 1 }, simple_value: { type: "float", id: 2 } } },
      },
    },
  },
});
export const EventProto = root.lookupType("Event");

/** TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant, as uint32. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes) >>> 0;
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: u64 length, u32 masked crc(length), payload, u32 masked crc(payload); little endian. */
export function frameRecord(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + payload.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(payload.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(payload, 12);
  view.setUint32(12 + payload.length, maskedCrc32c(payload), true);
  return out;
}

/** One framed record of an event file: where it lies, its event's step (undefined when it does not decode), whether it is a file_version header. */
export interface EventRecord {
  offset: number;
  length: number;
  step: number | undefined;
  header: boolean;
}

/**
 * The records of an event file's bytes, up to the first damaged one (a write cut short by a kill or
 * a power loss): `end` is where the intact records end, `bytes.length` when all are intact.
 */
export function readRecords(bytes: Uint8Array): { records: EventRecord[]; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: EventRecord[] = [];
  let off = 0;
  while (off + 12 <= bytes.length) {
    if (view.getUint32(off + 8, true) !== maskedCrc32c(bytes.subarray(off, off + 8))) break;
    const len = Number(view.getBigUint64(off, true));
    if (off + 16 + len > bytes.length) break;
    const payload = bytes.subarray(off + 12, off + 12 + len);
    if (view.getUint32(off + 12 + len, true) !== maskedCrc32c(payload)) break;
    let step: number | undefined;
    let header = false;
    try {
      const e = EventProto.toObject(EventProto.decode(payload), { longs: Number }) as { step?: number; file_version?: string };
      step = e.step ?? 0;
      header = e.file_version !== undefined;
    } catch {
      step = undefined;
    }
    records.push({ offset: off, length: 16 + len, step, header });
    off += 16 + len;
  }
  return { records, end: off };
}

/** What purgeEvents dropped from one file. */
export interface Purged {
  path: string;
  /** The distinct steps whose records were dropped, ascending. */
  steps: number[];
  /** Bytes of a damaged tail dropped with them (a write cut short). */
  damagedBytes: number;
}

const REWRITE = /^\.tb-rewrite-(\d+)-\d+\.partial$/;

/**
 * Drops every record at step ≥ `fromStep` from the event files in `logDir` (and any damaged tail),
 * as TensorBoard's purge_step does when it reads them, but for every reader: each changed file is
 * rewritten beside itself with the records it keeps (byte for byte), fsynced and renamed over the
 * original, so a kill leaves either file whole. File headers (file_version) and records whose step
 * cannot be read are kept.
 */
export function purgeEvents(logDir: string, fromStep: number): Purged[] {
  const out: Purged[] = [];
  let entries: string[];
  try {
    entries = readdirSync(logDir).sort();
  } catch {
    return out;
  }
  // Temporary files of a rewrite that a killed process left (their names hold no "tfevents", so TensorBoard never read them).
  for (const name of entries) {
    const m = REWRITE.exec(name);
    if (m && !isAlive(Number(m[1]))) rmSync(join(logDir, name), { force: true });
  }
  entries.forEach((name, i) => {
    if (!name.startsWith("events.out.tfevents.")) return;
    const path = join(logDir, name);
    const bytes = new Uint8Array(readFileSync(path));
    const { records, end } = readRecords(bytes);
    const dropped = records.filter((r) => r.step !== undefined && r.step >= fromStep && !r.header);
    if (!dropped.length && end === bytes.length) return;
    const gone = new Set(dropped);
    const keep = records.filter((r) => !gone.has(r));
    const tmp = join(logDir, `.tb-rewrite-${process.pid}-${i}.partial`);
    const fd = openSync(tmp, "w");
    try {
      for (const r of keep) for (let at = 0; at < r.length; ) at += writeSync(fd, bytes, r.offset + at, r.length - at);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const steps = [...new Set(dropped.map((r) => r.step!))].sort((a, b) => a - b);
    out.push({ path, steps, damagedBytes: bytes.length - end });
  });
  if (out.length) {
    const fd = openSync(logDir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** A sentence (no "dexrl: " prefix) on what purgeEvents dropped from one file. */
export function purgeNotice(p: Purged): string {
  const what = [
    p.steps.length ? `the records of ${p.steps.length === 1 ? "step" : "steps"} ${p.steps.join(", ")} (logged after the checkpoint this run resumes from; they are logged again)` : "",
    p.damagedBytes ? `a damaged tail of ${p.damagedBytes} bytes (a write cut short)` : "",
  ].filter(Boolean);
  return `removed ${what.join(" and ")} from ${p.path}`;
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

export interface EventWriterOptions {
  /**
   * A resumed run's first step: the event files already in the folder lose their records at this
   * step and later (purgeEvents), and the new file starts with TensorBoard's purge marker (a
   * SessionLog START at this step, as PyTorch's SummaryWriter(purge_step) writes it).
   */
  purgeStep?: number;
}

export class EventWriter {
  readonly path: string;
  /** What purgeStep dropped from earlier event files. */
  readonly purged: Purged[] = [];
  private fd: number | undefined;

  constructor(logDir: string, options: EventWriterOptions = {}) {
    mkdirSync(logDir, { recursive: true });
    const { purgeStep } = options;
    if (purgeStep !== undefined) this.purged = purgeEvents(logDir, purgeStep);
    const now = Date.now() / 1000;
    // A second writer of this process within the same second gets its own file, sorted after the first.
    const base = join(logDir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}`);
    let path = base;
    for (let k = 1; existsSync(path); k++) path = `${base}.${k}`;
    this.path = path;
    this.fd = openSync(this.path, "a");
    if (purgeStep === undefined) this.write([{ wall_time: now, file_version: "brain.Event:2" }]);
    else this.write([{ wall_time: now, step: purgeStep, file_version: "brain.Event:2" }, { wall_time: now, step: purgeStep, session_log: { status: "START" } }]);
  }

  /** Logs scalars at one step, e.g. {"train/actor/policy_loss": 0.1}; one write for all of them. */
  addScalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    // NaN and infinities are written as they are: TensorBoard shows them, and a diverged loss must be visible.
    const value = Object.entries(scalars).map(([tag, v]) => ({ tag, simple_value: v }));
    if (value.length) this.write([{ wall_time: wallTime, step, summary: { value } }]);
  }

  private write(events: object[]): void {
    if (this.fd === undefined) throw new Error(`event file ${this.path} is closed`);
    const frames = events.map((e) => frameRecord(EventProto.encode(EventProto.fromObject(e)).finish()));
    const all = Buffer.concat(frames);
    let off = 0;
    while (off < all.length) off += writeSync(this.fd, all, off, all.length - off);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
