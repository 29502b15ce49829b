// Episode bookkeeping around one LiberoEnv: chunked steps that stop at success or truncation,
// auto-reset, success_once / success_at_end / episode_len, and the env's scripted expert.
import { LiberoEnv } from "./env.ts";
import { ScriptedExpert } from "./expert.ts";
import { Rng } from "../util/random.ts";
import type { EnvChunk, EnvObs, EpisodeInfo, EpisodeOptions, ResetSpec } from "./protocol.ts";
import { INIT_STATES_PER_TASK, trainingInitState } from "./tasks.ts";

export class ManagedEnv {
  private rng: Rng;
  private episodeReturn = 0;
  /** True once the episode ended and no auto-reset followed: further actions are ignored until reset. */
  private finished = false;
  readonly expert = new ScriptedExpert();
  initState = 0;

  constructor(readonly env: LiberoEnv, readonly index: number, seed: number, readonly options: EpisodeOptions) {
    // Two streams: fixtures re-sampled by the env, and the init states picked on auto-reset.
    env.seed(seed);
    this.rng = new Rng(seed ^ 0x5bd1e995);
  }

  reset(spec: ResetSpec): EnvObs {
    if (spec.seed !== undefined) {
      this.env.seed(spec.seed);
      this.rng = new Rng(spec.seed ^ 0x5bd1e995);
    }
    if (spec.stream === undefined) this.env.reset(spec.task, spec.initState);
    else this.env.resetTo(trainingInitState(spec.task, spec.stream, spec.initState));
    this.initState = spec.initState;
    this.episodeReturn = 0;
    this.finished = false;
    this.expert.reset(this.env);
    return this.obs();
  }

  /** Runs up to C actions (C×7, row-major); the episode stops inside the chunk at success or truncation. */
  step(actions: Float32Array, chunk: number): EnvChunk {
    const { options, env } = this;
    const rewards = new Float32Array(chunk);
    const terminations = new Uint8Array(chunk);
    const truncations = new Uint8Array(chunk);
    const episodes: EpisodeInfo[] = [];
    let executed = 0;
    for (let c = 0; c < chunk && !this.finished; c++) {
      const r = env.step(actions.subarray(c * 7, c * 7 + 7));
      executed++;
      rewards[c] = r.reward;
      this.episodeReturn += r.reward;
      const terminated = r.success && !options.ignoreTerminations;
      const truncated = !terminated && r.elapsed >= options.maxEpisodeSteps;
      terminations[c] = terminated ? 1 : 0;
      truncations[c] = truncated ? 1 : 0;
      if (terminated || truncated) {
        episodes.push({
          env: this.index,
          task: env.taskId,
          initState: this.initState,
          successOnce: env.successOnce,
          successAtEnd: r.success,
          episodeLen: r.elapsed,
          return: this.episodeReturn,
          truncated,
        });
        this.finished = true;
      }
    }
    // A finished episode restarts after the chunk, on the same task with the next init state drawn.
    if (this.finished && options.autoReset) this.reset({ task: env.taskId, initState: Math.floor(this.rng.next() * INIT_STATES_PER_TASK) });
    return { rewards, terminations, truncations, executed, episodes, obs: this.obs() };
  }

  expertAction(): number[] {
    return this.expert.act(this.env);
  }

  obs(): EnvObs {
    const o = this.env.observation();
    return {
      state: o.state,
      task: this.env.taskId,
      initState: this.initState,
      geomXpos: o.geomXpos,
      geomXmat: o.geomXmat,
      camXpos: o.camXpos,
      camXmat: o.camXmat,
      elapsed: this.env.elapsed,
      successOnce: this.env.successOnce,
    };
  }
}
