// PPO's actor-critic loss (RLinf losses.py), written against the tensor engine so it runs on both
// backends: the clipped ratio objective on chunk-level log-probs, the clipped value loss with a
// Huber penalty, an optional entropy bonus, each aggregated with RLinf's masked_mean_ratio.
import * as op from "../engine/ops.ts";
import type { Tensor } from "../engine/tensor.ts";

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
  /**
   * RLinf's masked_mean_ratio weight of each slot: mask · max_episode_steps / episode_len, so every
   * episode counts alike however long it ran; 0 for slots after an episode ended (they stay in the batch).
   */
  weight: Tensor;
}

export interface PpoLoss {
  /** Scalar to differentiate: policy_loss + value_loss − entropy_bonus·entropy. */
  loss: Tensor;
  policyLoss: Tensor;
  valueLoss: Tensor;
  entropy: Tensor;
  /** Per-sample ratio [B] (no gradient): clip fraction, approx KL and ratio statistics are taken from it on the CPU. */
  ratio: Tensor;
}

/** mean over every slot of x·weight ((values / loss_mask_ratio · mask).mean() in RLinf). */
export const maskedMeanRatio = (x: Tensor, weight: Tensor) => op.mean(op.mul(x, weight));

export function ppoLoss(b: PpoBatch, s: PpoSettings): PpoLoss {
  const agg = (x: Tensor) => maskedMeanRatio(x, b.weight);
  const ratio = op.exp(op.sub(b.logProb, b.oldLogProb));
  const clipped = op.clamp(ratio, 1 - s.clipRatioLow, 1 + s.clipRatioHigh);
  const policyLoss = agg(op.maximum(op.neg(op.mul(b.advantages, ratio)), op.neg(op.mul(b.advantages, clipped))));
  const vClipped = op.add(b.oldValue, op.clamp(op.sub(b.value, b.oldValue), -s.valueClip, s.valueClip));
  const valueLoss = agg(op.maximum(op.huber(op.sub(b.returns, b.value), s.huberDelta), op.huber(op.sub(b.returns, vClipped), s.huberDelta)));
  const entropy = agg(b.entropy);
  let loss = op.add(policyLoss, valueLoss);
  if (s.entropyBonus > 0) loss = op.sub(loss, op.scale(entropy, s.entropyBonus));
  return { loss, policyLoss, valueLoss, entropy, ratio: op.detach(ratio) };
}

/**
 * Statistics of the masked samples: the fraction whose clipped branch is the active one (the
 * clipped objective is larger, RLinf's clip_fraction), the mean ratio, the mean clipped ratio and |ratio − 1|, and approx KL
 * mean(logp_old − logp).
 */
export function ratioStats(ratio: Float32Array, advantages: Float32Array, mask: ArrayLike<number>, low: number, high: number) {
  let n = 0;
  let clipped = 0;
  let clippedSum = 0;
  let sum = 0;
  let abs = 0;
  let kl = 0;
  ratio.forEach((r, i) => {
    if (!mask[i]) return;
    n++;
    sum += r;
    abs += Math.abs(r - 1);
    kl += -Math.log(r);
    const a = advantages[i]!;
    const c = Math.min(Math.max(r, 1 - low), 1 + high);
    clippedSum += c;
    if (-a * c > -a * r) clipped++;
  });
  return { clipFraction: n ? clipped / n : 0, meanRatio: n ? sum / n : 1, clippedRatio: n ? clippedSum / n : 1, ratioAbs: n ? abs / n : 0, approxKl: n ? kl / n : 0 };
}
