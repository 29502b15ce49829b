// Builds ONNX models (ModelProto, IR version 8, default-domain opset 17) from code: typed inputs and
// outputs, float32/int64 initializers stored as raw data, and nodes with attributes. Policies are
// exported through this writer; `dexrl doctor` runs a small graph built with it.
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
export const OPSET = 17;
export const IR_VERSION = 8;

type Dim = number | string; // a string is a symbolic dimension such as "batch"
/** Attribute values are tagged, since a JS number cannot say whether 1 is an INT or a FLOAT. */
export type Attr = { i: number } | { f: number } | { ints: number[] } | { floats: number[] } | { s: string };
export type ElemType = "float32" | "int64" | "int32" | "uint8";

const ELEM_TYPES: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
};
const elemTypeOf = (t: ElemType) => ELEM_TYPES[t];
/** The ONNX element type number (e.g. for Cast's `to`). */
export const onnxElemType = elemTypeOf;

function valueInfo(name: string, type: ElemType, dims: Dim[]) {
  return {
    name,
    type: {
      tensorType: {
        elemType: elemTypeOf(type),
        shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: Attr) {
  const A = onnx.AttributeProto.AttributeType;
  if ("s" in v) return { name, type: A.STRING, s: new TextEncoder().encode(v.s) };
  if ("floats" in v) return { name, type: A.FLOATS, floats: v.floats };
  if ("ints" in v) return { name, type: A.INTS, ints: v.ints };
  if ("f" in v) return { name, type: A.FLOAT, f: v.f };
  if (!Number.isInteger(v.i)) throw new Error(`attribute ${name}: ${v.i} is not an integer`);
  return { name, type: A.INT, i: v.i };
}

export class OnnxGraph {
  private readonly nodes: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly initializers: object[] = [];
  private counter = 0;

  constructor(readonly name: string) {}

  /** A number no other generated name in this graph uses. */
  nextId(): number {
    return this.counter++;
  }

  input(name: string, dims: Dim[], type: ElemType = "float32"): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, dims: Dim[], type: ElemType = "float32"): string {
    this.outputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** A constant tensor stored in the model (weights); raw little-endian bytes. */
  initializer(name: string, data: Float32Array | BigInt64Array | Int32Array | Uint8Array, dims: number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims}]`);
    const type: ElemType = data instanceof Float32Array ? "float32" : data instanceof BigInt64Array ? "int64" : data instanceof Int32Array ? "int32" : "uint8";
    this.initializers.push({
      name,
      dims,
      dataType: elemTypeOf(type),
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** A float32 scalar or vector constant, named after its value. */
  constant(values: number[], dims: number[] = values.length === 1 ? [] : [values.length]): string {
    const name = `const_${this.counter++}`;
    return this.initializer(name, Float32Array.from(values), dims);
  }

  /** An int64 vector constant (shapes, axes). */
  ints(values: number[]): string {
    const name = `ints_${this.counter++}`;
    return this.initializer(name, BigInt64Array.from(values.map(BigInt)), [values.length]);
  }

  /** Adds a node; returns its output names (fresh names unless given). */
  node(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, outputs?: string[] | number): string[] {
    const outs = Array.isArray(outputs) ? outputs : Array.from({ length: outputs ?? 1 }, () => `${opType.toLowerCase()}_${this.counter++}`);
    this.nodes.push({
      opType,
      name: `${opType}_${this.counter++}`,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Serializes the model as ONNX protobuf bytes (initializers no node reads are left out). */
  toBytes(producer = "dexrl"): Uint8Array {
    const used = new Set<string>();
    for (const n of this.nodes as { input: string[] }[]) for (const i of n.input) used.add(i);
    for (const o of this.outputs as { name: string }[]) used.add(o.name);
    const initializers = (this.initializers as { name: string }[]).filter((i) => used.has(i.name));
    const model = onnx.ModelProto.fromObject({
      irVersion: IR_VERSION,
      producerName: producer,
      opsetImport: [{ domain: "", version: OPSET }],
      graph: { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: initializers },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
