// Messages between the vectorized env (main thread) and its sim workers, and the per-env results.
import type { InitState } from "./tasks.ts";

/** Options every env of a vector shares. */
export interface EpisodeOptions {
  /** Truncate an episode after this many control steps. */
  maxEpisodeSteps: number;
  /** Start a new episode (same task, next init state from the env's stream) when one ends. */
  autoReset: boolean;
  /** Keep stepping after success (evaluation of success_at_end); episodes then end only by truncation. */
  ignoreTerminations: boolean;
}

/** Where an env starts its next episode. */
export interface ResetSpec {
  task: number;
  initState: number;
  /** Restarts the env's streams (fixture placement, auto-reset draws) from this seed first; absent, they go on. */
  seed?: number;
  /**
   * When set, `initState` indexes this training stream (`trainingInitState`: drawn like the fixed
   * states, never one of them) instead of the 50 fixed evaluation states.
   */
  stream?: number;
}

/** One env's observation, flattened for transfer. */
export interface EnvObs {
  state: Float32Array; // (8)
  task: number;
  initState: number;
  geomXpos: Float32Array; // (ngeom, 3)
  geomXmat: Float32Array; // (ngeom, 9)
  camXpos: Float32Array; // (ncam, 3)
  camXmat: Float32Array; // (ncam, 9)
  elapsed: number;
  successOnce: boolean;
}

/** A finished episode. */
export interface EpisodeInfo {
  env: number;
  task: number;
  initState: number;
  successOnce: boolean;
  successAtEnd: boolean;
  episodeLen: number;
  /** Sum of rewards (0 or 1). */
  return: number;
  truncated: boolean;
}

/** One env's outcome of a chunk of C actions. */
export interface EnvChunk {
  rewards: Float32Array; // (C)
  terminations: Uint8Array; // (C) success ended the episode at this step
  truncations: Uint8Array; // (C) max steps ended it
  /** Actions actually executed (fewer than C when the episode ended inside the chunk without auto-reset). */
  executed: number;
  episodes: EpisodeInfo[];
  obs: EnvObs;
}

export type Request =
  | { op: "init"; envs: number[]; seeds: number[]; options: EpisodeOptions }
  | { op: "reset"; specs: ResetSpec[] }
  | { op: "step"; actions: Float32Array; chunk: number }
  | { op: "expert" }
  | { op: "expertEpisode"; spec: ResetSpec; maxSteps: number; seed: number }
  | { op: "expertRecord"; init: InitState; maxSteps: number; seed: number }
  | { op: "close" };

/** A scripted-expert episode run start to end inside a worker. */
export interface ExpertEpisode {
  task: number;
  initState: number;
  success: boolean;
  steps: number;
}

/** A scripted-expert episode from any initial state, with what was observed and done at each of its T steps. */
export interface ExpertRecording {
  success: boolean;
  steps: number; // T
  states: Float32Array; // (T, 8) the observation's 8-D state before each action
  actions: Float32Array; // (T, 7) the actions executed
  geomXpos: Float32Array; // (T, ngeom, 3) poses to render each step's images from
  geomXmat: Float32Array; // (T, ngeom, 9)
  camXpos: Float32Array; // (T, ncam, 3)
  camXmat: Float32Array; // (T, ncam, 9)
}

export type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };
