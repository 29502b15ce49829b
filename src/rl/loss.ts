// PPO's actor-critic loss on the device (RLinf losses.py): clipped ratio objective on chunk-level
// log-probs, clipped value loss with a Huber penalty, optional entropy bonus, masked means; plus
// the statistics TensorBoard shows (approx_kl, clip fraction).
import * as op from "../gpu/ops.ts";
import type { Tensor } from "../gpu/tensor.ts";

export interface PpoSettings {
  clipRatioLow: number;
  clipRatioHigh: number;
  valueClip: number;
  huberDelta: number;
  entropyBonus: number;
}

/** Minibatch data [B] (no gradients) next to the new log-prob, value and entropy [B] (with gradients). */
export interface PpoBatch {
  logProb: Tensor;
  value: Tensor;
  entropy: Tensor;
  oldLogProb: Tensor;
  oldValue: Tensor;
  advantages: Tensor;
  returns: Tensor;
  /** 1 for steps inside their episode, 0 after it ended. */
  mask: Tensor;
}

export interface PpoLoss {
  /** Scalar to differentiate: policy_loss + value_loss − entropy_bonus·entropy. */
  loss: Tensor;
  policyLoss: Tensor;
  valueLoss: Tensor;
  entropy: Tensor;
  /** mean(logp_old − logp): the k1 estimator over the masked samples. */
  approxKl: Tensor;
  /** Per-sample ratio [B] (no gradient), for the clip fraction and mean ratio on the CPU. */
  ratio: Tensor;
}

export function ppoLoss(b: PpoBatch, s: PpoSettings): PpoLoss {
  const count = op.sum(b.mask);
  const masked = (x: Tensor) => op.div(op.sum(op.mul(x, b.mask)), count);
  const logRatio = op.sub(b.logProb, b.oldLogProb);
  const ratio = op.exp(logRatio);
  const clipped = op.clamp(ratio, 1 - s.clipRatioLow, 1 + s.clipRatioHigh);
  const policyLoss = masked(op.maximum(op.neg(op.mul(b.advantages, ratio)), op.neg(op.mul(b.advantages, clipped))));
  const vClipped = op.add(b.oldValue, op.clamp(op.sub(b.value, b.oldValue), -s.valueClip, s.valueClip));
  const valueLoss = masked(op.maximum(op.huber(op.sub(b.returns, b.value), s.huberDelta), op.huber(op.sub(b.returns, vClipped), s.huberDelta)));
  const entropy = masked(b.entropy);
  let loss = op.add(policyLoss, valueLoss);
  if (s.entropyBonus > 0) loss = op.sub(loss, op.scale(entropy, s.entropyBonus));
  const stats = op.noGrad(() => ({ approxKl: masked(op.neg(logRatio)), ratio: op.detach(ratio) }));
  return { loss, policyLoss, valueLoss, entropy, ...stats };
}

/** Fraction of the masked samples whose ratio lies outside [1 − low, 1 + high], and their mean ratio. */
export function ratioStats(ratio: Float32Array, mask: Float32Array, low: number, high: number): { clipFraction: number; meanRatio: number } {
  let n = 0;
  let clipped = 0;
  let sum = 0;
  ratio.forEach((r, i) => {
    if (!mask[i]) return;
    n++;
    sum += r;
    if (r < 1 - low || r > 1 + high) clipped++;
  });
  return { clipFraction: n ? clipped / n : 0, meanRatio: n ? sum / n : 1 };
}
