// The LIBERO renderer built from the scene MJCF alone (as a trainer with worker envs does) draws an
// env's observation exactly as the renderer built from that env's own model.
import { expect, test } from "bun:test";
import { getGpu } from "../../src/engine/device.ts";
import { createLiberoRenderer, LIBERO_CAMERAS, liberoRenderer, posesOf, posesOfBatch } from "../../src/render/libero.ts";
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
