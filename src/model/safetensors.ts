// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data. Only F32 tensors are written;
// reading validates every offset so a truncated or corrupt file is refused, never half-loaded.
import { DexrlError } from "../errors.ts";

export type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

/** Header entries must be at most this big; real headers are a few KiB (guards against garbage). */
const MAX_HEADER_BYTES = 100 * 2 ** 20;

/** Serializes tensors (sorted by name, 8-byte aligned data start) with optional string metadata. */
export function encodeSafetensors(tensors: Tensors, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const { shape, data } = tensors.get(name)!;
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`tensor ${name}: ${data.length} values for shape [${shape}]`);
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + json.length) % 8)) % 8); // pad so the data starts 8-byte aligned
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

/** Parses a safetensors file; `label` names it in errors. Data is copied into aligned arrays. */
export function decodeSafetensors(bytes: Uint8Array, label: string): { tensors: Tensors; metadata: Record<string, string> } {
  const bad = (why: string) => new DexrlError(`${label} is not a valid safetensors file: ${why}.`);
  if (bytes.length < 8) throw bad(`it is ${bytes.length} bytes long, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > bytes.length)
    throw bad(`the header claims ${headerLen} bytes but the file has ${bytes.length - 8} after the length (truncated or not safetensors)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch {
    throw bad("its header is not valid JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw bad("its header is not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors: Tensors = new Map();
  const ranges: [number, number, string][] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e.dtype !== "F32") throw bad(`tensor ${name} has dtype ${JSON.stringify(e.dtype)}; dexrl reads F32 only`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor ${name} has an invalid shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1])
      throw bad(`tensor ${name} has invalid data_offsets`);
    const [begin, end] = offs as [number, number];
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4) throw bad(`tensor ${name} has ${end - begin} bytes for shape [${e.shape}] (expected ${count * 4})`);
    if (end > dataLen) throw bad(`tensor ${name} ends at byte ${end} but the data section has ${dataLen} bytes (truncated)`);
    ranges.push([begin, end, name]);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: e.shape as number[], data });
  }
  // The format requires the byte ranges to tile the data section exactly, without gaps or overlaps.
  ranges.sort((a, b) => a[0] - b[0]);
  let expect = 0;
  for (const [begin, end, name] of ranges) {
    if (begin !== expect) throw bad(`tensor ${name} starts at byte ${begin}, expected ${expect} (gap or overlap)`);
    expect = end;
  }
  if (expect !== dataLen) throw bad(`the data section has ${dataLen} bytes but the tensors cover ${expect}`);
  return { tensors, metadata };
}
