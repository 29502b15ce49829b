// An independent reader of TensorBoard event files for the tests: its own CRC-32C (bitwise) and its
// own protobuf decoding, so neither the writer's checksum library nor protobufjs vouches for itself.
import { expect } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** CRC-32C, reflected Castagnoli polynomial 0x82F63B78, one bit at a time. */
export function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

export interface Scalar {
  step: number;
  wallTime: number;
  tag: string;
  value: number;
}

/** Minimal protobuf field walker: yields [fieldNumber, wireType, value or bytes]. */
function* fields(buf: Uint8Array): Generator<[number, number, number | bigint | Uint8Array]> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let i = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield [field, wire, varint()];
    else if (wire === 1) {
      yield [field, wire, view.getFloat64(i, true)];
      i += 8;
    } else if (wire === 5) {
      yield [field, wire, view.getFloat32(i, true)];
      i += 4;
    } else if (wire === 2) {
      const len = Number(varint());
      yield [field, wire, buf.subarray(i, i + len)];
      i += len;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
}

export interface EventFile {
  /** The last file_version header's value. */
  fileVersion?: string;
  scalars: Scalar[];
  /** Steps of the SessionLog START records (TensorBoard's purge markers). */
  starts: number[];
  records: number;
}

/** Every record of an event file, each CRC checked; the file must end at a record boundary. */
export function readEvents(path: string): EventFile {
  const bytes = new Uint8Array(readFileSync(path));
  const view = new DataView(bytes.buffer);
  const scalars: Scalar[] = [];
  const starts: number[] = [];
  let fileVersion: string | undefined;
  let off = 0;
  let records = 0;
  while (off < bytes.length) {
    const len = Number(view.getBigUint64(off, true));
    expect(view.getUint32(off + 8, true)).toBe(mask(crc32cBitwise(bytes.subarray(off, off + 8))));
    const payload = bytes.subarray(off + 12, off + 12 + len);
    expect(view.getUint32(off + 12 + len, true)).toBe(mask(crc32cBitwise(payload)));
    off += 12 + len + 4;
    records++;
    let wallTime = 0;
    let step = 0;
    let start = false;
    const pending: { tag: string; value: number }[] = [];
    for (const [f, , v] of fields(payload)) {
      if (f === 1) wallTime = v as number;
      else if (f === 2) step = Number(v);
      else if (f === 3) fileVersion = new TextDecoder().decode(v as Uint8Array);
      else if (f === 7) for (const [lf, , lv] of fields(v as Uint8Array)) start ||= lf === 1 && Number(lv) === 1;
      else if (f === 5)
        for (const [sf, , sv] of fields(v as Uint8Array)) {
          if (sf !== 1) continue;
          let tag = "";
          let value = NaN;
          for (const [vf, , vv] of fields(sv as Uint8Array)) {
            if (vf === 1) tag = new TextDecoder().decode(vv as Uint8Array);
            if (vf === 2) value = vv as number;
          }
          pending.push({ tag, value });
        }
    }
    if (start) starts.push(step);
    for (const p of pending) scalars.push({ step, wallTime, ...p });
  }
  expect(off).toBe(bytes.length);
  return { fileVersion, scalars, starts, records };
}

/** The event files of a run folder in the order TensorBoard reads them (by name). */
export function eventFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.includes("tfevents"))
    .sort()
    .map((f) => join(dir, f));
}
