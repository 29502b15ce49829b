// The tensor engine's public surface: `import { op, nn, Tensor, ... } from "../gpu/index.ts"`.
export * as op from "./ops.ts";
export * as nn from "./nn.ts";
export { AdamW, type AdamWOptions, type AdamWState, type ParamGroup } from "./optim.ts";
export { Rng, type RngState } from "./random.ts";
export { backward, detach, noGrad, isGradEnabled } from "./autograd.ts";
export { initEngine, flush, sync, poolStats, dispatchStats } from "./runtime.ts";
export { Tensor, keep, scope, scopeAsync, type Shape } from "./tensor.ts";
