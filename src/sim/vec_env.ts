// Vectorized LIBERO-Spatial envs: N environments spread over Bun Workers (one MuJoCo wasm instance
// each) so every core steps physics. Deterministic: env i's streams depend only on (seed, i).
import { DexrlError } from "../errors.ts";
import { ACTION_DIM, STATE_DIM } from "./env.ts";
import { Rng } from "../util/random.ts";
import type { EnvChunk, EnvObs, EpisodeInfo, EpisodeOptions, ExpertEpisode, ExpertRecording, Reply, Request, ResetSpec } from "./protocol.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS, TASKS, type InitState } from "./tasks.ts";

export interface VecEnvOptions extends Partial<EpisodeOptions> {
  numEnvs: number;
  /** Worker threads; default min(numEnvs, available cores). */
  numWorkers?: number;
  seed?: number;
}

/** Observations of all N envs, stacked. */
export interface VecObs {
  states: Float32Array; // (N, 8)
  instructions: string[]; // (N)
  tasks: Int32Array; // (N)
  initStates: Int32Array; // (N)
  geomXpos: Float32Array; // (N, ngeom, 3)
  geomXmat: Float32Array; // (N, ngeom, 9)
  camXpos: Float32Array; // (N, ncam, 3)
  camXmat: Float32Array; // (N, ncam, 9)
  /** Control steps into the current episode. */
  elapsed: Int32Array; // (N)
  successOnce: Uint8Array; // (N)
}

export interface VecStep {
  obs: VecObs;
  rewards: Float32Array; // (N, C)
  terminations: Uint8Array; // (N, C)
  truncations: Uint8Array; // (N, C)
  /** Actions each env executed this call (C unless its episode ended and it was not auto-reset). */
  executed: Int32Array; // (N)
  /** Episodes that ended in this chunk (success_once, success_at_end, episode_len, return). */
  episodes: EpisodeInfo[];
}

/** Mixes (seed, env index) into a 32-bit stream seed. */
export function envSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * The sim worker's script. In a `bun build --compile` executable, src/sim/worker.ts must be an extra
 * entrypoint of the build (`bun build --compile src/cli.ts src/sim/worker.ts`); it then lives at
 * ./sim/worker.ts relative to the executable's root in Bun's embedded file system.
 */
const WORKER_SCRIPT = import.meta.url.includes("$bunfs") ? "./sim/worker.ts" : new URL("./worker.ts", import.meta.url).href;

/** One worker thread and its request/reply bookkeeping. */
export class SimWorker {
  private worker: Worker;
  private nextId = 0;
  private pending = new Map<number, Pending>();
  private failure: Error | undefined;

  /** `script` is the sim worker; tests pass another to check how crashes surface. */
  constructor(readonly index: number, script?: URL) {
    this.worker = new Worker((script ?? WORKER_SCRIPT).toString());
    this.worker.onmessage = (e: MessageEvent<Reply>) => {
      const p = this.pending.get(e.data.id);
      if (!p) return;
      this.pending.delete(e.data.id);
      if (e.data.ok) p.resolve(e.data.result);
      else p.reject(new DexrlError(`sim worker ${index} failed: ${e.data.error}`));
    };
    // A crash (uncaught error, out of memory) fails every request in flight and every later one.
    this.worker.onerror = (e: ErrorEvent) => this.fail(new DexrlError(`sim worker ${index} crashed: ${e.message || "unknown error"}`));
    this.worker.addEventListener("close", () => this.fail(new DexrlError(`sim worker ${index} exited unexpectedly`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  call<T>(req: Request, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, req }, transfer);
    });
  }

  async close(): Promise<void> {
    if (!this.failure) await this.call({ op: "close" }).catch(() => undefined);
    this.failure ??= new DexrlError(`sim worker ${this.index} is closed`);
    this.worker.terminate();
  }
}

export class VecEnv {
  readonly numEnvs: number;
  readonly options: EpisodeOptions;
  ngeom = 0;
  ncam = 0;
  private workers: SimWorker[] = [];
  /** Env indices owned by each worker (contiguous blocks). */
  private owned: number[][] = [];
  private rng: Rng;
  private seed: number;
  private closed = false;
  /** Workers free for `recordExpert`, and the calls waiting for one. */
  private idle: SimWorker[] = [];
  private waiting: ((w: SimWorker) => void)[] = [];

  private constructor(opts: VecEnvOptions) {
    if (!Number.isInteger(opts.numEnvs) || opts.numEnvs < 1) throw new DexrlError(`numEnvs must be a positive integer, got ${opts.numEnvs}`, 2);
    this.numEnvs = opts.numEnvs;
    this.options = {
      maxEpisodeSteps: opts.maxEpisodeSteps ?? 240,
      autoReset: opts.autoReset ?? false,
      ignoreTerminations: opts.ignoreTerminations ?? false,
    };
    this.seed = opts.seed ?? 0;
    this.rng = new Rng(envSeed(this.seed, -1));
  }

  static async create(opts: VecEnvOptions): Promise<VecEnv> {
    const v = new VecEnv(opts);
    const cores = navigator.hardwareConcurrency || 1;
    const nw = Math.max(1, Math.min(opts.numWorkers ?? cores, v.numEnvs));
    const seed = opts.seed ?? 0;
    for (let w = 0; w < nw; w++) {
      const lo = Math.floor((w * v.numEnvs) / nw);
      const hi = Math.floor(((w + 1) * v.numEnvs) / nw);
      v.owned.push(Array.from({ length: hi - lo }, (_, k) => lo + k));
      v.workers.push(new SimWorker(w));
    }
    try {
      const infos = await Promise.all(
        v.workers.map((wk, w) => wk.call<{ ngeom: number; ncam: number }>({ op: "init", envs: v.owned[w]!, seeds: v.owned[w]!.map((i) => envSeed(seed, i)), options: v.options })),
      );
      v.idle = [...v.workers];
      v.ngeom = infos[0]!.ngeom;
      v.ncam = infos[0]!.ncam;
    } catch (err) {
      await v.close();
      throw err;
    }
    return v;
  }

  get numWorkers(): number {
    return this.workers.length;
  }

  /**
   * Starts new episodes: `tasks` is one task id for all envs or one per env; `initStates` (one per env)
   * defaults to states drawn from the vector's seeded stream. `seeds` (one per env) restart each env's
   * streams first, so the episodes do not depend on how many resets came before (a resumed run).
   * With `stream`, initStates index that training stream (any index ≥ 0) instead of the fixed states.
   */
  async reset(tasks: number | ArrayLike<number>, initStates?: ArrayLike<number>, seeds?: ArrayLike<number>, stream?: number): Promise<VecObs> {
    const specs: ResetSpec[] = [];
    for (let i = 0; i < this.numEnvs; i++) {
      const task = typeof tasks === "number" ? tasks : tasks[i];
      if (task === undefined || !Number.isInteger(task) || task < 0 || task >= NUM_TASKS) throw new DexrlError(`task id for env ${i} must be an integer in 0..${NUM_TASKS - 1}, got ${task}`, 2);
      const initState = initStates ? initStates[i] : Math.floor(this.rng.next() * INIT_STATES_PER_TASK);
      const limit = stream === undefined ? INIT_STATES_PER_TASK : Number.MAX_SAFE_INTEGER;
      if (initState === undefined || !Number.isInteger(initState) || initState < 0 || initState >= limit)
        throw new DexrlError(`initial state for env ${i} must be an integer in 0..${limit - 1}, got ${initState}`, 2);
      specs.push({ task, initState, ...(seeds ? { seed: seeds[i]! } : {}), ...(stream === undefined ? {} : { stream }) });
    }
    const parts = await Promise.all(this.workers.map((wk, w) => wk.call<EnvObs[]>({ op: "reset", specs: this.owned[w]!.map((i) => specs[i]!) })));
    return this.stack(parts.flat());
  }

  /** Steps every env through its C actions: `actions` is (N, C, 7) row-major. */
  async step(actions: Float32Array, chunk = 1): Promise<VecStep> {
    if (this.closed) throw new DexrlError("the environments are closed");
    if (actions.length !== this.numEnvs * chunk * ACTION_DIM)
      throw new DexrlError(`expected ${this.numEnvs}×${chunk}×${ACTION_DIM} actions, got ${actions.length} numbers`, 2);
    const per = chunk * ACTION_DIM;
    const parts = await Promise.all(
      this.workers.map((wk, w) => {
        const ids = this.owned[w]!;
        const slice = actions.slice(ids[0]! * per, (ids[ids.length - 1]! + 1) * per);
        return wk.call<EnvChunk[]>({ op: "step", actions: slice, chunk }, [slice.buffer]);
      }),
    );
    const chunks = parts.flat();
    const n = this.numEnvs;
    const out: VecStep = {
      obs: this.stack(chunks.map((c) => c.obs)),
      rewards: new Float32Array(n * chunk),
      terminations: new Uint8Array(n * chunk),
      truncations: new Uint8Array(n * chunk),
      executed: new Int32Array(n),
      episodes: chunks.flatMap((c) => c.episodes),
    };
    chunks.forEach((c, i) => {
      out.rewards.set(c.rewards, i * chunk);
      out.terminations.set(c.terminations, i * chunk);
      out.truncations.set(c.truncations, i * chunk);
      out.executed[i] = c.executed;
    });
    return out;
  }

  /** The scripted expert's next action for every env (N, 7), from each env's true state. */
  async expertActions(): Promise<Float32Array> {
    const parts = await Promise.all(this.workers.map((wk) => wk.call<Float32Array>({ op: "expert" })));
    const out = new Float32Array(this.numEnvs * ACTION_DIM);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  /**
   * Runs whole scripted-expert episodes for `jobs`, one at a time per worker, all workers busy;
   * `onEpisode` sees each as it finishes. Results come back in job order and do not depend on which
   * worker ran a job: its fixture placement is seeded from (seed, task, initial state). The envs'
   * own episodes are overwritten: reset them before stepping again.
   */
  async expertEpisodes(jobs: ResetSpec[], maxSteps: number, onEpisode?: (e: ExpertEpisode) => void): Promise<ExpertEpisode[]> {
    const results: ExpertEpisode[] = new Array(jobs.length);
    let next = 0;
    await Promise.all(
      this.workers.map(async (wk) => {
        while (next < jobs.length) {
          const k = next++;
          const spec = jobs[k]!;
          const seed = envSeed(envSeed(this.seed, spec.task), spec.initState);
          const e = await wk.call<ExpertEpisode>({ op: "expertEpisode", spec, maxSteps, seed });
          results[k] = e;
          onEpisode?.(e);
        }
      }),
    );
    return results;
  }

  /**
   * Runs one scripted-expert episode from `init` on the first free worker (waiting for one when all
   * are busy) and returns it with every step's observation and action. Calls may overlap: up to one
   * per worker runs at a time. Fixtures are placed from `seed`, so the episode does not depend on
   * which worker ran it. Do not mix with `reset`/`step` on the same vector.
   */
  async recordExpert(init: InitState, maxSteps: number, seed: number): Promise<ExpertRecording> {
    if (this.closed) throw new DexrlError("the environments are closed");
    const wk = this.idle.pop() ?? (await new Promise<SimWorker>((resolve) => this.waiting.push(resolve)));
    try {
      return await wk.call<ExpertRecording>({ op: "expertRecord", init, maxSteps, seed });
    } finally {
      const next = this.waiting.shift();
      if (next) next(wk);
      else this.idle.push(wk);
    }
  }

  /** Frees the models and ends the worker threads (safe to call twice). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
  }

  private stack(obs: EnvObs[]): VecObs {
    const n = obs.length;
    const { ngeom, ncam } = this;
    const v: VecObs = {
      states: new Float32Array(n * STATE_DIM),
      instructions: obs.map((o) => TASKS[o.task]!.language),
      tasks: Int32Array.from(obs, (o) => o.task),
      initStates: Int32Array.from(obs, (o) => o.initState),
      geomXpos: new Float32Array(n * ngeom * 3),
      geomXmat: new Float32Array(n * ngeom * 9),
      camXpos: new Float32Array(n * ncam * 3),
      camXmat: new Float32Array(n * ncam * 9),
      elapsed: Int32Array.from(obs, (o) => o.elapsed),
      successOnce: Uint8Array.from(obs, (o) => (o.successOnce ? 1 : 0)),
    };
    obs.forEach((o, i) => {
      v.states.set(o.state, i * STATE_DIM);
      v.geomXpos.set(o.geomXpos, i * ngeom * 3);
      v.geomXmat.set(o.geomXmat, i * ngeom * 9);
      v.camXpos.set(o.camXpos, i * ncam * 3);
      v.camXmat.set(o.camXmat, i * ncam * 9);
    });
    return v;
  }
}
