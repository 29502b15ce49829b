// Between the envs and the policy: the rendered cameras the model takes, and its actions padded to
// the env's 7 dims. Training and evaluation both go through here so they see the same inputs.

/** The model's views of [N, 2, S, S, 3] renders: both cameras, or agentview alone when num_images is 1. */
export function policyImages(images: Uint8Array, N: number, views: number, S: number): Uint8Array {
  if (views === 2) return images;
  const per = S * S * 3;
  const out = new Uint8Array(N * per);
  for (let i = 0; i < N; i++) out.set(images.subarray(i * 2 * per, i * 2 * per + per), i * per);
  return out;
}

/** [N, C, envDim] policy actions → [N, C, 7] env actions; dims past action_env_dim are 0. */
export function envActions(actions: Float32Array, N: number, chunk: number, envDim: number): Float32Array {
  if (envDim === 7) return actions;
  const out = new Float32Array(N * chunk * 7);
  for (let r = 0; r < N * chunk; r++) out.set(actions.subarray(r * envDim, (r + 1) * envDim), r * 7);
  return out;
}
