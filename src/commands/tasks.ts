// `dexrl tasks`: the LIBERO-Spatial tasks, their instructions and where the bowls start; with --json,
// every fixed initial state (object poses, fixtures, drawers, the 8-D state before settling).
import { defineCommand } from "citty";
import { debugArgs, jsonArgs, type DexrlMeta } from "../cli/args.ts";
import { usageError } from "../errors.ts";
import { LiberoEnv } from "../sim/env.ts";
import { OBJECTS } from "../sim/objects.ts";
import { initStates, INIT_STATES_PER_TASK, SUITE, TASKS, type Support } from "../sim/tasks.ts";

/** Where a bowl starts, in BDDL words. */
function describe(s: Support): string {
  switch (s.kind) {
    case "table":
      return `table ${s.region}`;
    case "on":
      return `on ${s.object}`;
    case "cabinet_top":
      return "on wooden_cabinet_1 top_side";
    case "top_drawer":
      return "in wooden_cabinet_1 top drawer (open)";
    case "stove":
      return "on flat_stove_1 cook_region";
  }
}

const round = (xs: ArrayLike<number>) => Array.from(xs, (x) => +x.toFixed(6));

export default defineCommand({
  meta: {
    name: "tasks",
    description: "List the LIBERO-Spatial tasks (id, instruction, where bowl_1 and bowl_2 start); --json adds all 50 initial states of each",
    examples: ["dexrl tasks", "dexrl tasks --json > libero_spatial_tasks.json"],
  } satisfies DexrlMeta,
  args: {
    suite: { type: "string", valueHint: "NAME", description: `Task suite (only ${SUITE} is built in)`, default: SUITE },
    ...jsonArgs,
    ...debugArgs,
  },
  async run({ args }) {
    if (args.suite !== SUITE) throw usageError(`unknown suite "${args.suite}": only ${SUITE} is available.`);
    if (!args.json) {
      console.log(`${SUITE}: ${TASKS.length} tasks, ${INIT_STATES_PER_TASK} fixed initial states each; success = On(akita_black_bowl_1, plate_1)\n`);
      for (const t of TASKS) {
        console.log(`${String(t.id).padStart(2)}  ${t.language}`);
        console.log(`    bowl_1 (target): ${describe(t.bowl1)}; bowl_2: ${describe(t.bowl2)}`);
      }
      return;
    }
    const env = await LiberoEnv.create();
    try {
      const tasks = TASKS.map((t) => ({
        id: t.id,
        instruction: t.language,
        bowl_1: describe(t.bowl1),
        bowl_2: describe(t.bowl2),
        init_states: initStates(t.id).map((s) => ({
          index: s.index,
          // eef position (3), axis-angle of the hand (3), finger joints (2), before the settle steps.
          state: round(env.initialState(t.id, s.index)),
          arm_qpos: round(s.arm),
          objects: Object.fromEntries(OBJECTS.map((name) => [name, { pos: round(s.objects[name].slice(0, 3)), quat_wxyz: round(s.objects[name].slice(3)) }])),
          fixtures: {
            wooden_cabinet_1: { pos: round([s.cabinet.x, s.cabinet.y, 0.905]), yaw: +s.cabinet.yaw.toFixed(6) },
            flat_stove_1: { pos: round([s.stove.x, s.stove.y, 0.905]), yaw: +s.stove.yaw.toFixed(6) },
          },
          drawers: { top: s.drawers[0], middle: s.drawers[1], bottom: s.drawers[2] },
        })),
      }));
      console.log(JSON.stringify({ suite: SUITE, tasks }, null, 1));
    } finally {
      env.delete();
    }
  },
});
