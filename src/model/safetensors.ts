// safetensors files: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data. F32 tensors (weights, optimizer
// state) and U8 tensors (dataset images) are written; reading validates every offset so a truncated
// or corrupt file is refused, never half-loaded.
import { DexrlError } from "../errors.ts";

export type Tensors = Map<string, { shape: number[]; data: Float32Array }>;
/** Tensors of either dtype this module reads and writes. */
export type AnyTensors = Map<string, { shape: number[]; data: Float32Array | Uint8Array }>;
export type DType = "F32" | "U8";
const BYTES: Record<DType, number> = { F32: 4, U8: 1 };

/** One header entry, validated: dtype, shape, and its byte range within the data section. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

/** Header entries must be at most this big; real headers are a few KiB (guards against garbage). */
const MAX_HEADER_BYTES = 100 * 2 ** 20;

/** Serializes tensors (sorted by name, 8-byte aligned data start) with optional string metadata. */
export function encodeSafetensors(tensors: AnyTensors, metadata: Record<string, string> = {}): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const { shape, data } = tensors.get(name)!;
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`tensor ${name}: ${data.length} values for shape [${shape}]`);
    header[name] = { dtype: data instanceof Uint8Array ? "U8" : "F32", shape, data_offsets: [offset, offset + data.byteLength] };
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

/** Bytes before the header JSON: its little-endian u64 length (`headerLength`). */
export const HEADER_PREFIX_BYTES = 8;

/** The header's byte count from the file's first 8 bytes. */
export function headerLength(prefix: Uint8Array): number {
  return Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
}

/**
 * Parses and validates a header against the file's total size without reading the data: `head`
 * holds at least the first 8 + header-length bytes. Throws a DexrlError naming `label`.
 */
export function parseSafetensorsHeader(
  head: Uint8Array,
  fileBytes: number,
  label: string,
  dtypes: readonly DType[] = ["F32", "U8"],
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string>; dataStart: number } {
  const bad = (why: string) => new DexrlError(`${label} is not a valid safetensors file: ${why}.`);
  if (fileBytes < 8 || head.length < 8) throw bad(`it is ${fileBytes} bytes long, shorter than the 8-byte header length`);
  const headerLen = headerLength(head);
  if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileBytes || 8 + headerLen > head.length)
    throw bad(`the header claims ${headerLen} bytes but the file has ${fileBytes - 8} after the length (truncated or not safetensors)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(8, 8 + headerLen)));
  } catch {
    throw bad("its header is not valid JSON");
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw bad("its header is not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLen = fileBytes - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!dtypes.includes(e.dtype as DType)) throw bad(`tensor ${name} has dtype ${JSON.stringify(e.dtype)}; dexrl reads ${dtypes.join(" and ")} only here`);
    const dtype = e.dtype as DType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`tensor ${name} has an invalid shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1])
      throw bad(`tensor ${name} has invalid data_offsets`);
    const [begin, end] = offs as [number, number];
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype]) throw bad(`tensor ${name} has ${end - begin} bytes for shape [${e.shape}] (expected ${count * BYTES[dtype]})`);
    if (end > dataLen) throw bad(`tensor ${name} ends at byte ${end} but the data section has ${dataLen} bytes (truncated)`);
    tensors.set(name, { dtype, shape: e.shape as number[], begin, end });
  }
  // The format requires the byte ranges to tile the data section exactly, without gaps or overlaps.
  const ranges = [...tensors].sort((a, b) => a[1].begin - b[1].begin);
  let expect = 0;
  for (const [name, { begin, end }] of ranges) {
    if (begin !== expect) throw bad(`tensor ${name} starts at byte ${begin}, expected ${expect} (gap or overlap)`);
    expect = end;
  }
  if (expect !== dataLen) throw bad(`the data section has ${dataLen} bytes but the tensors cover ${expect}`);
  return { tensors, metadata, dataStart };
}

/** Parses a safetensors file of F32 and U8 tensors; `label` names it in errors. Data is copied into aligned arrays. */
export function decodeSafetensorsAny(bytes: Uint8Array, label: string, dtypes: readonly DType[] = ["F32", "U8"]): { tensors: AnyTensors; metadata: Record<string, string> } {
  const head = parseSafetensorsHeader(bytes, bytes.length, label, dtypes);
  const tensors: AnyTensors = new Map();
  for (const [name, { dtype, shape, begin, end }] of head.tensors) {
    const src = bytes.subarray(head.dataStart + begin, head.dataStart + end);
    const data = dtype === "U8" ? new Uint8Array(src) : new Float32Array(src.length / 4);
    if (data instanceof Float32Array) new Uint8Array(data.buffer).set(src);
    tensors.set(name, { shape, data });
  }
  return { tensors, metadata: head.metadata };
}

/** Parses a safetensors file of F32 tensors (weights, optimizer state); `label` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, label: string): { tensors: Tensors; metadata: Record<string, string> } {
  return decodeSafetensorsAny(bytes, label, ["F32"]) as { tensors: Tensors; metadata: Record<string, string> };
}
