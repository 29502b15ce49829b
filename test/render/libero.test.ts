// The LIBERO renderer built from the scene MJCF alone (as a trainer with worker envs does) draws an
// env's observation exactly as the renderer built from that env's own model.
import { expect, test } from "bun:test";
import { getGpu } from "../../src/engine/device.ts";
import { createLiberoRenderer, EnvViews, LIBERO_CAMERAS, liberoRenderer, posesOf, posesOfBatch, type PoseObservation } from "../../src/render/libero.ts";
import { LiberoEnv } from "../../src/sim/env.ts";

test("a renderer from the scene MJCF draws env observations like one from the env's model", async () => {
  const gpu = await getGpu();
  const env = await LiberoEnv.create(0);
  const fromXml = await createLiberoRenderer(gpu, 64, 2);
  const fromEnv = liberoRenderer(gpu, env, 64, 2); // before any reset: nothing may depend on the env's state
  try {
    const a = env.reset(4, 0);
    const b = env.reset(7, 1);
    const frames = [posesOf(a), posesOf(b)];
    const want = await fromEnv.render(frames);
    expect(Buffer.compare(await fromXml.render(frames), want)).toBe(0);
    expect(fromXml.nCam).toBe(LIBERO_CAMERAS.length);
    // Stacked observations (the vectorized env's layout) split into the same frames.
    const stack = (k: "geomXpos" | "geomXmat" | "camXpos" | "camXmat") => Float32Array.from([...a[k], ...b[k]]);
    const stacked = { geomXpos: stack("geomXpos"), geomXmat: stack("geomXmat"), camXpos: stack("camXpos"), camXmat: stack("camXmat") };
    expect(Buffer.compare(await fromXml.render(posesOfBatch(stacked, 2)), want)).toBe(0);
  } finally {
    fromXml.destroy();
    fromEnv.destroy();
    env.delete();
  }
}, 60_000);

test("EnvViews renders only the envs that moved, and its images equal a full render", async () => {
  const gpu = await getGpu();
  const env = await LiberoEnv.create(0);
  const renderer = await createLiberoRenderer(gpu, 64, 3);
  const rendered: number[] = [];
  const render = renderer.render.bind(renderer);
  renderer.render = (frames) => (rendered.push(frames.length), render(frames));
  const stack = (os: PoseObservation[]): PoseObservation => {
    const cat = (k: keyof PoseObservation) => Float32Array.from(os.flatMap((o) => [...o[k]]));
    return { geomXpos: cat("geomXpos"), geomXmat: cat("geomXmat"), camXpos: cat("camXpos"), camXmat: cat("camXmat") };
  };
  try {
    const a = env.reset(4, 0);
    const b = env.reset(7, 1);
    const c = env.reset(2, 3);
    const views = new EnvViews(renderer, 3);
    const first = stack([a, b, c]);
    expect(Buffer.compare(await views.update(first), await render(posesOfBatch(first, 3)))).toBe(0);
    // c moves (the arm drives for 10 steps), b stands still, a is drawn again at the same poses.
    for (let i = 0; i < 10; i++) env.step(new Float32Array([0.5, 0, -0.3, 0, 0, 0, -1]));
    const c2 = env.observation();
    expect(Buffer.compare(Buffer.from(c2.geomXpos.buffer), Buffer.from(c.geomXpos.buffer))).not.toBe(0);
    const next = stack([a, b, c2]);
    rendered.length = 0;
    const got = await views.update(next, [5, 0, 5]);
    expect(rendered).toEqual([2]);
    expect(Buffer.compare(got, await render(posesOfBatch(next, 3)))).toBe(0);
    rendered.length = 0;
    await views.update(next, [0, 0, 0]);
    expect(rendered).toEqual([]);
  } finally {
    renderer.destroy();
    env.delete();
  }
}, 60_000);
