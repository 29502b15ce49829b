// The float64 reference of nn.TransformerBlock, composed from reference.ts ops (pre-LN, GELU-tanh).
import * as ref from "../../src/gpu/reference.ts";
import type { R } from "../../src/gpu/reference.ts";

export interface BlockDims {
  B: number;
  T: number;
  C: number;
  heads: number;
}

const linear = (p: Record<string, R>, name: string, x: R) =>
  ref.binary("add", ref.matmul(x, p[`${name}.weight`]!, false, true), p[`${name}.bias`]!);

/** y = block(x) for x [B, T, C] and an additive mask [B, 1, T, T]. */
export function refBlock(p: Record<string, R>, x: R, mask: R, { B, T, C, heads: H }: BlockDims): R {
  const D = C / H;
  const split = (t: R) => ref.permute({ shape: [B, T, H, D], data: t.data }, [0, 2, 1, 3]);
  const h = ref.norm(x, p["blk.ln1.weight"]!, p["blk.ln1.bias"]!, 1e-5);
  const [q, k, v] = ["q", "k", "v"].map((n) => split(linear(p, `blk.attn.${n}`, h))) as [R, R, R];
  const scores = ref.binary("add", ref.matmul(q, k, false, true, 1 / Math.sqrt(D)), mask);
  const att = ref.matmul(ref.softmax(scores), v);
  const merged = ref.permute(att, [0, 2, 1, 3]);
  const x1 = ref.binary("add", x, linear(p, "blk.attn.o", { shape: [B, T, C], data: merged.data }));
  const h2 = ref.norm(x1, p["blk.ln2.weight"]!, p["blk.ln2.bias"]!, 1e-5);
  return ref.binary("add", x1, linear(p, "blk.mlp.fc2", ref.unary("gelu", linear(p, "blk.mlp.fc1", h2))));
}
