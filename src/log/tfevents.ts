// TensorBoard event files: TFRecord framing (length, masked CRC-32C, payload, masked CRC-32C) around
// `tensorflow.Event` protos; scalars as Summary.Value.simple_value. Written synchronously per call,
// so a crash loses nothing already logged.
import { crc32c } from "@aws-crypto/crc32c";
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
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
      },
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

export class EventWriter {
  readonly path: string;
  private fd: number | undefined;

  constructor(logDir: string) {
    mkdirSync(logDir, { recursive: true });
    const now = Date.now() / 1000;
    this.path = join(logDir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}`);
    this.fd = openSync(this.path, "a");
    this.write([{ wall_time: now, file_version: "brain.Event:2" }]);
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
