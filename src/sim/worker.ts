// A sim worker (Bun Worker): owns a few environments on its own MuJoCo wasm instance and answers
// the vectorized env's requests (init, reset, step a chunk, expert actions, close).
import { LiberoEnv } from "./env.ts";
import { ManagedEnv } from "./episode.ts";
import { runExpert, runExpertEpisode } from "./expert.ts";
import type { EnvChunk, EnvObs, ExpertEpisode, ExpertRecording, Reply, Request } from "./protocol.ts";

declare const self: Worker;

let envs: ManagedEnv[] = [];

/** Typed-array buffers of observations, handed over instead of copied. */
function buffersOf(obs: EnvObs[]): ArrayBuffer[] {
  return obs.flatMap((o) => [o.state, o.geomXpos, o.geomXmat, o.camXpos, o.camXmat].map((a) => a.buffer as ArrayBuffer));
}

async function handle(req: Request): Promise<[unknown, ArrayBuffer[]]> {
  switch (req.op) {
    case "init": {
      envs = [];
      for (let k = 0; k < req.envs.length; k++) envs.push(new ManagedEnv(await LiberoEnv.create(), req.envs[k]!, req.seeds[k]!, req.options));
      const m = envs[0]!.env.model;
      return [{ ngeom: m.ngeom, ncam: m.ncam }, []];
    }
    case "reset": {
      const obs = envs.map((e, k) => e.reset(req.specs[k]!));
      return [obs, buffersOf(obs)];
    }
    case "step": {
      const per = req.chunk * 7;
      const out: EnvChunk[] = envs.map((e, k) => e.step(req.actions.subarray(k * per, (k + 1) * per), req.chunk));
      return [out, buffersOf(out.map((c) => c.obs))];
    }
    case "expert":
      return [Float32Array.from(envs.flatMap((e) => e.expertAction())), []];
    case "expertEpisode": {
      // On the worker's first env; the vector's step bookkeeping of that env is not used meanwhile.
      const { spec, maxSteps, seed } = req;
      const env = envs[0]!.env;
      env.seed(seed);
      const r = runExpertEpisode(env, spec.task, spec.initState, maxSteps);
      return [{ task: spec.task, initState: spec.initState, ...r } satisfies ExpertEpisode, []];
    }
    case "expertRecord": {
      const env = envs[0]!.env;
      env.seed(req.seed);
      env.resetTo(req.init);
      const [ng, nc] = [env.ngeom, env.ncam];
      const rows: { state: Float32Array; action: number[]; gx: Float32Array; gm: Float32Array; cx: Float32Array; cm: Float32Array }[] = [];
      const r = runExpert(env, req.maxSteps, (o, action) => rows.push({ state: o.state, action, gx: o.geomXpos, gm: o.geomXmat, cx: o.camXpos, cm: o.camXmat }));
      const T = rows.length;
      const rec: ExpertRecording = {
        ...r,
        states: new Float32Array(T * 8),
        actions: new Float32Array(T * 7),
        geomXpos: new Float32Array(T * ng * 3),
        geomXmat: new Float32Array(T * ng * 9),
        camXpos: new Float32Array(T * nc * 3),
        camXmat: new Float32Array(T * nc * 9),
      };
      rows.forEach((row, t) => {
        rec.states.set(row.state, t * 8);
        rec.actions.set(row.action, t * 7);
        rec.geomXpos.set(row.gx, t * ng * 3);
        rec.geomXmat.set(row.gm, t * ng * 9);
        rec.camXpos.set(row.cx, t * nc * 3);
        rec.camXmat.set(row.cm, t * nc * 9);
      });
      return [rec, [rec.states, rec.actions, rec.geomXpos, rec.geomXmat, rec.camXpos, rec.camXmat].map((a) => a.buffer as ArrayBuffer)];
    }
    case "close":
      for (const e of envs) e.env.delete();
      envs = [];
      return [null, []];
  }
}

self.onmessage = async (event: MessageEvent<{ id: number; req: Request }>) => {
  const { id, req } = event.data;
  try {
    const [result, transfer] = await handle(req);
    self.postMessage({ id, ok: true, result } satisfies Reply, transfer);
  } catch (err) {
    self.postMessage({ id, ok: false, error: (err as Error)?.message ?? String(err) } satisfies Reply);
  }
};
