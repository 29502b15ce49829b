// Advantages for PPO over chunk-level macro steps (RLinf reward_type/logprob_type chunk_level):
// each policy call is one step whose reward is the sum over its executed actions and whose done is
// their max. Arrays are time-major [T, N] (T macro steps, N envs).

/** 1 where a step is part of its env's episode: up to and including the first done (no auto-reset). */
export function lossMask(dones: Uint8Array, T: number, N: number): Float32Array {
  const mask = new Float32Array(T * N);
  for (let n = 0; n < N; n++) {
    let alive = true;
    for (let t = 0; t < T; t++) {
      mask[t * N + n] = alive ? 1 : 0;
      if (dones[t * N + n]) alive = false;
    }
  }
  return mask;
}

/**
 * Generalised advantage estimation: δ_t = r_t + γ(1 − d_t)V_{t+1} − V_t,
 * A_t = δ_t + γλ(1 − d_t)A_{t+1}; returns R_t = A_t + V_t. `values` is [T + 1, N], the last row the
 * bootstrap value after the final step.
 */
export function gae(rewards: Float32Array, dones: Uint8Array, values: Float32Array, T: number, N: number, gamma: number, lambda: number): { advantages: Float32Array; returns: Float32Array } {
  if (rewards.length !== T * N || dones.length !== T * N || values.length !== (T + 1) * N)
    throw new Error(`gae: expected rewards and dones of ${T}×${N} and values of ${T + 1}×${N}`);
  const advantages = new Float32Array(T * N);
  const returns = new Float32Array(T * N);
  for (let n = 0; n < N; n++) {
    let next = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = t * N + n;
      const live = dones[i] ? 0 : 1;
      const delta = rewards[i]! + gamma * live * values[i + N]! - values[i]!;
      next = delta + gamma * lambda * live * next;
      advantages[i] = next;
      returns[i] = next + values[i]!;
    }
  }
  return { advantages, returns };
}

/**
 * (A − mean)/(std + 1e-5) over the masked entries of every rollout epoch of a global step, with the
 * unbiased std (RLinf's normalize_advantages); masked-out entries become 0.
 */
export function normalizeAdvantages(adv: Float32Array, mask: Float32Array): Float32Array {
  let n = 0;
  let sum = 0;
  for (let i = 0; i < adv.length; i++) if (mask[i]) (sum += adv[i]!), n++;
  if (n === 0) return new Float32Array(adv.length);
  const mean = sum / n;
  let sq = 0;
  for (let i = 0; i < adv.length; i++) if (mask[i]) sq += (adv[i]! - mean) ** 2;
  const std = n > 1 ? Math.sqrt(sq / (n - 1)) : 0;
  return adv.map((a, i) => (mask[i] ? (a - mean) / (std + 1e-5) : 0));
}
