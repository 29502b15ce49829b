// The two LIBERO cameras and the one place where env observations become renderer input, so that
// training, evaluation and exported videos see identical images (upright, LIBERO's flip not applied).
import type { MainModule, MjModel } from "mujoco-js";
import type { Gpu } from "../engine/device.ts";
import { loadModel, mujoco } from "../sim/mujoco.ts";
import { buildSceneXml } from "../sim/scene.ts";
import { extractRenderModel } from "./model.ts";
import { BatchRenderer, type FramePoses } from "./renderer.ts";

/** Camera order of the image axis N_cam: LIBERO's `agentview_image`, then `robot0_eye_in_hand_image`. */
export const LIBERO_CAMERAS = ["agentview", "robot0_eye_in_hand"] as const;

/** The pose arrays an env observation carries. */
export interface PoseObservation {
  geomXpos: Float32Array; // [ngeom, 3]
  geomXmat: Float32Array; // [ngeom, 9]
  camXpos: Float32Array; // [ncam, 3]
  camXmat: Float32Array; // [ncam, 9]
}

export const posesOf = (obs: PoseObservation): FramePoses => ({
  geom_xpos: obs.geomXpos,
  geom_xmat: obs.geomXmat,
  cam_xpos: obs.camXpos,
  cam_xmat: obs.camXmat,
});

/**
 * Per-env views (no copies) into stacked observations of N envs, as the vectorized env returns
 * them: geomXpos [N, ngeom, 3], geomXmat [N, ngeom, 9], camXpos [N, ncam, 3], camXmat [N, ncam, 9].
 */
export function posesOfBatch(obs: PoseObservation, n: number): FramePoses[] {
  const view = (a: Float32Array, i: number) => a.subarray((i * a.length) / n, ((i + 1) * a.length) / n);
  return Array.from({ length: n }, (_, i) => ({
    geom_xpos: view(obs.geomXpos, i),
    geom_xmat: view(obs.geomXmat, i),
    cam_xpos: view(obs.camXpos, i),
    cam_xmat: view(obs.camXmat, i),
  }));
}

/**
 * One sample per pixel everywhere (training, evaluation, videos): 4× multisampling, MuJoCo's
 * default, costs 1.5-2× the time on SwiftShader, and the policy is trained on these images anyway.
 */
export const LIBERO_SAMPLES = 1;

/** A renderer of both LIBERO cameras at size×size for up to `maxEnvs` envs of the scene `model`. */
export function liberoRenderer(gpu: Gpu, scene: { mj: MainModule; model: MjModel }, size: number, maxEnvs: number): BatchRenderer {
  const model = extractRenderModel(scene.mj, scene.model, { cameras: [...LIBERO_CAMERAS] });
  return new BatchRenderer(gpu, model, { maxEnvs, width: size, height: size, samples: LIBERO_SAMPLES });
}

/**
 * The same renderer built from the scene's MJCF alone, for processes whose envs live in workers
 * (the vectorized env): the geoms, cameras and lights are those of every env's model.
 */
export async function createLiberoRenderer(gpu: Gpu, size: number, maxEnvs: number): Promise<BatchRenderer> {
  const mj = await mujoco();
  const model = loadModel(mj, buildSceneXml());
  try {
    return liberoRenderer(gpu, { mj, model }, size, maxEnvs);
  } finally {
    model.delete();
  }
}

/**
 * The latest images [N, N_cam, S, S, 3] of N envs, rendering again only the envs that moved. An env
 * whose episode ended (no auto-reset) ignores its actions and stands still, so its last images stay
 * exact; once most rollout episodes have succeeded this skips about a third of the renders.
 */
export class EnvViews {
  readonly images: Uint8Array;
  private readonly per: number;

  constructor(private readonly renderer: BatchRenderer, readonly numEnvs: number) {
    this.per = renderer.nCam * renderer.height * renderer.width * 3;
    this.images = new Uint8Array(numEnvs * this.per);
  }

  /** Renders every env (after a reset), or those that executed an action in the last step (`executed[i] > 0`). */
  async update(obs: PoseObservation, executed?: ArrayLike<number>): Promise<Uint8Array> {
    const all = posesOfBatch(obs, this.numEnvs);
    const moved = all.flatMap((_, i) => (!executed || executed[i]! > 0 ? [i] : []));
    if (moved.length === 0) return this.images;
    const out = await this.renderer.render(moved.map((i) => all[i]!));
    moved.forEach((i, k) => this.images.set(out.subarray(k * this.per, (k + 1) * this.per), i * this.per));
    return this.images;
  }
}
