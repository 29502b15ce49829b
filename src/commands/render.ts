// `dexrl render`: the agentview and wrist images of a task's initial state after settling, as PNG,
// so a user can look at the benchmark; optionally a GIF of the scripted expert doing the task.
import { join } from "node:path";
import { defineCommand } from "citty";
import { debugArgs, intArg, type DexrlMeta } from "../cli/args.ts";
import { ensureOutputDir } from "../cli/outputs.ts";
import { usageError } from "../errors.ts";
import { getGpu } from "../engine/device.ts";
import { LIBERO_CAMERAS, liberoRenderer, posesOf } from "../render/libero.ts";
import { writePng } from "../render/png.ts";
import type { BatchRenderer } from "../render/renderer.ts";
import { captionedFrame, EpisodeGif } from "../render/video.ts";
import { LiberoEnv, type Observation } from "../sim/env.ts";
import { ScriptedExpert } from "../sim/expert.ts";
import { INIT_STATES_PER_TASK, NUM_TASKS } from "../sim/tasks.ts";

/** LIBERO-Spatial's evaluation horizon (libero-spatial.md §2). */
const MAX_STEPS = 220;

export default defineCommand({
  meta: {
    name: "render",
    description: "Write a task's agentview and wrist images (after the objects settle) as PNG: upright, LIBERO's 180° flip not applied",
    examples: ["dexrl render --task 4", "dexrl render --task 0 --init 3 --size 128 --out renders", "dexrl render --task 7 --video"],
  } satisfies DexrlMeta,
  args: {
    task: { type: "string", valueHint: "N", description: `Task id, 0 to ${NUM_TASKS - 1}; its instruction is printed and written on the captioned image`, default: "0" },
    init: { type: "string", valueHint: "K", description: `Initial state of the task, 0 to ${INIT_STATES_PER_TASK - 1}`, default: "0" },
    size: { type: "string", valueHint: "PX", description: "Image width and height in pixels (a multiple of 4; LIBERO uses 128 or 256)", default: "256" },
    seed: { type: "string", valueHint: "S", description: "Seed of the cabinet and stove placement within their regions", default: "0" },
    out: { type: "string", valueHint: "DIR", description: "Folder the images are written to", default: "renders" },
    video: {
      type: "boolean",
      description: `Also write an animated GIF of the scripted expert doing the task from this state (up to ${MAX_STEPS} steps, instruction and step written above the frames)`,
      default: false,
    },
    ...debugArgs,
  },
  async run({ args }) {
    const task = intArg("task", args.task, 0, NUM_TASKS - 1);
    const init = intArg("init", args.init, 0, INIT_STATES_PER_TASK - 1);
    const size = intArg("size", args.size, 16, 2048);
    if (size % 4 !== 0) throw usageError(`--size must be a multiple of 4, not ${size}.`);
    const seed = intArg("seed", args.seed, 0, 2 ** 31 - 1);
    ensureOutputDir(args.out, "--out");

    console.error(`dexrl render: building the scene, placing task ${task} initial state ${init} and letting it settle…`);
    const env = await LiberoEnv.create(seed);
    try {
      const obs = env.reset(task, init);
      console.error(`dexrl render: task ${task}: "${obs.instruction}"`);
      const gpu = await getGpu();
      console.error(`dexrl render: drawing ${LIBERO_CAMERAS.length} cameras at ${size}×${size} on ${gpu.summary.device || gpu.summary.description}…`);
      const renderer = liberoRenderer(gpu, env, size, 1);
      try {
        const images = await renderer.render([posesOf(obs)]);
        const stem = join(args.out, `task${task}_init${init}`);
        const written = LIBERO_CAMERAS.map((cam, c) => {
          const path = `${stem}_${cam}.png`;
          writePng(path, images.subarray(c * renderer.imageBytes, (c + 1) * renderer.imageBytes), size, size);
          return path;
        });
        const sheet = captionedFrame(images, LIBERO_CAMERAS.length, size, size, obs.instruction, `task ${task}  init ${init}`);
        written.push(`${stem}_captioned.png`);
        writePng(written.at(-1)!, sheet.data, sheet.width, sheet.height);
        if (args.video) written.push(await expertVideo(env, renderer, obs, `${stem}_expert.gif`));
        for (const p of written) console.log(p);
      } finally {
        renderer.destroy();
      }
    } finally {
      env.delete();
    }
  },
});

/** Runs the scripted expert from the env's current (just reset) state, one captioned frame per step. */
async function expertVideo(env: LiberoEnv, renderer: BatchRenderer, first: Observation, path: string): Promise<string> {
  const expert = new ScriptedExpert();
  expert.reset(env);
  const gif = new EpisodeGif();
  const { nCam, width, height } = renderer;
  let obs = first;
  let status = "";
  for (let t = 0; ; t++) {
    gif.add(captionedFrame(await renderer.render([posesOf(obs)]), nCam, width, height, obs.instruction, `step ${t}/${MAX_STEPS}${status}`));
    if (status || t === MAX_STEPS) break;
    if (t % 20 === 0) console.error(`dexrl render: expert video, step ${t}/${MAX_STEPS}…`);
    if (env.step(expert.act(env)).success) status = "  success";
    obs = env.observation();
  }
  gif.save(path);
  return path;
}
