// Config loading: the seed config and snippet load, overrides are typed, bad input is named.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { DexrlError, EXIT_USAGE } from "../../src/errors.ts";

const fixture = (name: string) => join(import.meta.dir, "..", "fixtures", name);
const tmp = mkdtempSync(join(tmpdir(), "dexrl-config-"));
const writeTmp = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

/** Runs the loader and returns the error it throws (failing the test if it does not). */
function errorOf(opts: Parameters<typeof loadConfig>[0]): DexrlError {
  try {
    loadConfig(opts);
  } catch (e) {
    expect(e).toBeInstanceOf(DexrlError);
    expect((e as DexrlError).exitCode).toBe(EXIT_USAGE);
    return e as DexrlError;
  }
  throw new Error(`expected ${JSON.stringify(opts)} to be refused`);
}

describe("seed config", () => {
  test("loads with the seed's values", () => {
    const { config: c } = loadConfig();
    expect(c.actor.model.num_action_chunks).toBe(5);
    expect(c.actor.model.num_steps).toBe(4);
    expect(c.actor.model.dexbotic.noise_method).toBe("flow_sde");
    expect(c.actor.model.dexbotic.noise_level).toBe(0.5);
    expect(c.actor.optim.lr).toBe(5e-6);
    expect(c.actor.optim.value_lr).toBe(1e-4);
    expect(c.algorithm.gamma).toBe(0.99);
    expect(c.algorithm.gae_lambda).toBe(0.95);
    expect(c.env.train.total_num_envs).toBe(64);
    expect(c.env.eval.total_num_envs).toBe(500);
    expect(c.env.eval.ignore_terminations).toBe(true);
  });

  test("interpolations resolve to typed values", () => {
    const { config: c } = loadConfig();
    expect(c.actor.model.dexbotic.action_chunk).toBe(5);
    expect(c.actor.model.dexbotic.add_value_head).toBe(true);
    expect(c.env.train.video_cfg.video_base_dir).toBe("../results/video/train");
  });

  test("RLinf-only subtrees load and are listed as ignored", () => {
    const keys = loadConfig().ignored.map((i) => i.key);
    for (const k of ["hydra", "cluster", "actor.fsdp_config", "weight_syncer"]) expect(keys).toContain(k);
    expect(keys).not.toContain("actor.model.num_steps");
  });

  test("the seed's rollout:/actor: snippet loads as an override file", () => {
    const { config: c } = loadConfig({ overrideFile: fixture("seed_snippet.yaml") });
    expect(c.actor.model.model_path).toBe("/path/to/model/Dexbotic-Pi05-SFT");
    expect(c.rollout.model.model_path).toBe("/path/to/model/Dexbotic-Pi05-SFT");
    expect(c.actor.model.dexbotic.train_expert_only).toBe(true);
  });
});

describe("overrides", () => {
  test("are typed by the schema", () => {
    const { config: c } = loadConfig({
      overrides: ["actor.model.num_steps=3", "actor.optim.lr=1e-5", "runner.logger.experiment_name=007", "env.train.specific_reset_id=null", "actor.model.dexbotic.train_expert_only=false"],
    });
    expect(c.actor.model.num_steps).toBe(3);
    expect(c.actor.model.dexbotic.num_steps).toBe(3); // follows through ${actor.model.num_steps}
    expect(c.actor.optim.lr).toBe(1e-5);
    expect(c.runner.logger.experiment_name).toBe("007"); // a string stays a string
    expect(c.env.train.specific_reset_id).toBeNull();
    expect(c.actor.model.dexbotic.train_expert_only).toBe(false);
  });

  test("apply after the config file and the override file", () => {
    const file = writeTmp("small.yaml", "env:\n  train:\n    total_num_envs: 16\nactor:\n  model:\n    num_steps: 2\n");
    const { config: c, sources } = loadConfig({ config: file, overrideFile: fixture("seed_snippet.yaml"), overrides: ["env.train.total_num_envs=8"] });
    expect(c.env.train.total_num_envs).toBe(8);
    expect(c.actor.model.num_steps).toBe(4); // the snippet sets 4 over the file's 2
    expect(sources).toEqual(["configs/libero_spatial_ppo_dexbotic_pi0.yaml", file, fixture("seed_snippet.yaml"), "env.train.total_num_envs=8"]);
  });

  test("a bundled config is found by name", () => {
    expect(loadConfig({ config: "libero_spatial_ppo_dexbotic_pi0" }).config.runner.max_steps).toBe(300);
  });
});

describe("bad input is refused with the key, the value and what is allowed", () => {
  test("unknown key in an override suggests the nearest key", () => {
    expect(errorOf({ overrides: ["actor.model.num_stepz=4"] }).message).toBe(
      'Unknown config key actor.model.num_stepz in override "actor.model.num_stepz=4" (did you mean actor.model.num_steps?).',
    );
  });

  test("unknown key in a file names the file and suggests", () => {
    const file = writeTmp("typo.yaml", "actor:\n  optim:\n    weight_decy: 0.1\n");
    expect(errorOf({ config: file }).message).toBe(`Unknown config key actor.optim.weight_decy in ${file} (did you mean actor.optim.weight_decay?).`);
    // Nothing near: no misleading suggestion.
    const far = writeTmp("far.yaml", "actor:\n  optim:\n    learning_rate: 0.1\n");
    expect(errorOf({ config: far }).message).toBe(`Unknown config key actor.optim.learning_rate in ${far}.`);
  });

  test("wrong type", () => {
    expect(errorOf({ overrides: ["actor.model.num_steps=four"] }).message).toBe(
      'Config key actor.model.num_steps has value "four"; it must be an integer ≥ 1.',
    );
    expect(errorOf({ overrides: ["algorithm.normalize_advantages=maybe"] }).message).toContain("true or false");
    expect(errorOf({ overrides: ["actor.model.num_steps=2.5"] }).message).toContain("an integer");
  });

  test("noise_method outside flow_sde / flow_noise / flow_ode", () => {
    expect(errorOf({ overrides: ["actor.model.dexbotic.noise_method=flow_cps"] }).message).toBe(
      'Config key actor.model.dexbotic.noise_method has value "flow_cps"; it must be one of flow_sde, flow_noise, flow_ode.',
    );
  });

  test("num_action_chunks larger than the action horizon", () => {
    expect(errorOf({ overrides: ["actor.model.num_action_chunks=11"] }).message).toContain(
      "actor.model.num_action_chunks is 11, larger than the action horizon actor.model.action_horizon = 10",
    );
  });

  test("non-positive env counts and out-of-range values", () => {
    expect(errorOf({ overrides: ["env.train.total_num_envs=0"] }).message).toBe(
      "Config key env.train.total_num_envs has value 0; it must be an integer ≥ 1.",
    );
    expect(errorOf({ overrides: ["env.eval.total_num_envs=-4"] }).message).toContain("env.eval.total_num_envs");
    expect(errorOf({ overrides: ["algorithm.gamma=1.5"] }).message).toContain("≤ 1");
    expect(errorOf({ overrides: ["actor.optim.lr=0"] }).message).toContain("> 0");
  });

  test("malformed overrides, missing and invalid files", () => {
    expect(errorOf({ overrides: ["actor.model.num_steps"] }).message).toBe('Override "actor.model.num_steps" has no value; write actor.model.num_steps=VALUE (with "=", no spaces).');
    expect(errorOf({ overrides: ["50"] }).message).toContain("dotted.key=value");
    expect(errorOf({ overrides: ["actor.model=3"] }).message).toContain("names a group of keys");
    expect(errorOf({ config: "no_such_config" }).message).toContain("No config file or bundled config named no_such_config");
    expect(errorOf({ overrideFile: join(tmp, "missing.yaml") }).message).toContain("does not exist");
    expect(errorOf({ config: writeTmp("bad.yaml", "actor: [unclosed\n") }).message).toContain("is not valid YAML");
    expect(errorOf({ config: writeTmp("list.yaml", "- 1\n- 2\n") }).message).toContain("YAML mapping");
  });

  test("cross-key rules", () => {
    expect(errorOf({ overrides: ["actor.global_batch_size=100"] }).message).toContain("multiple of actor.micro_batch_size");
    expect(errorOf({ overrides: ["actor.model.dexbotic.action_chunk=3"] }).message).toContain("must be equal");
    expect(errorOf({ overrides: ["actor.model.is_lora=true"] }).message).toContain("no LoRA");
  });
});

describe("nonsensical values", () => {
  test("a run of no steps, intervals of 0, Adam betas of 1, empty paths and huge seeds are refused", () => {
    expect(errorOf({ overrides: ["runner.max_steps=0"] }).message).toBe("Config key runner.max_steps has value 0; it must be an integer ≥ 1.");
    expect(errorOf({ overrides: ["runner.max_steps=-1"] }).message).toContain("runner.max_steps has value -1");
    expect(errorOf({ overrides: ["runner.save_interval=0"] }).message).toBe("Config key runner.save_interval has value 0; it must be an integer ≥ 1, or -1 (only at the end).");
    expect(loadConfig({ overrides: ["runner.save_interval=-1"] }).config.runner.save_interval).toBe(-1);
    expect(errorOf({ overrides: ["runner.val_check_interval=0"] }).message).toContain("or -1 (never)");
    expect(errorOf({ overrides: ["actor.optim.adam_beta2=1"] }).message).toBe("Config key actor.optim.adam_beta2 has value 1; it must be a number ≥ 0 and < 1.");
    expect(loadConfig({ overrides: ["actor.optim.adam_beta2=0.999"] }).config.actor.optim.adam_beta2).toBe(0.999);
    // rollout.model.model_path is ${actor.model.model_path} in the defaults, so it is checked (first) with the same value.
    expect(errorOf({ overrides: ["actor.model.model_path="] }).message).toBe('Config key rollout.model.model_path has value ""; it must be a non-empty string.');
    expect(errorOf({ overrides: ["runner.logger.experiment_name=  "] }).message).toContain("a non-empty string");
    expect(errorOf({ overrides: ["env.train.seed=4294967296"] }).message).toContain("≤ 4294967295");
  });

  test("the value head's hidden widths are null, [] or positive integers", () => {
    expect(loadConfig().config.actor.model.value_hidden_sizes).toBeNull();
    expect(loadConfig({ overrides: ["actor.model.value_hidden_sizes=[256,128,64]"] }).config.actor.model.value_hidden_sizes).toEqual([256, 128, 64]);
    expect(loadConfig({ overrides: ["actor.model.value_hidden_sizes=[]"] }).config.actor.model.value_hidden_sizes).toEqual([]);
    for (const bad of ["[256,0]", "[1.5]", "[5000]"])
      expect(errorOf({ overrides: [`actor.model.value_hidden_sizes=${bad}`] }).message).toContain("actor.model.value_hidden_sizes is");
  });

  test("task_sampling by_failure needs fresh rollout states and is refused for evaluation", () => {
    expect(loadConfig().config.env.train.task_sampling).toBe("uniform");
    const fresh = ["env.train.task_sampling=by_failure", "env.train.use_fixed_reset_state_ids=false"];
    expect(loadConfig({ overrides: fresh, use: "train" }).config.env.train.task_sampling).toBe("by_failure");
    expect(errorOf({ overrides: ["env.train.task_sampling=by_failure"], use: "train" }).message).toContain("needs env.train.use_fixed_reset_state_ids false");
    expect(errorOf({ overrides: [...fresh, "env.train.specific_reset_id=3"], use: "train" }).message).toContain("env.train.specific_reset_id null");
    expect(errorOf({ overrides: ["env.eval.task_sampling=by_failure"], use: "eval" }).message).toContain("env.eval.task_sampling is by_failure");
    expect(errorOf({ overrides: ["env.train.task_sampling=sometimes"] }).message).toContain("env.train.task_sampling");
  });

  test("eval checks only the rules it depends on, so the seed's --action_chunk_size 50 loads (for a horizon-50 model)", () => {
    const overrides = ["actor.model.num_action_chunks=50", "actor.model.action_horizon=50"];
    expect(errorOf({ overrides }).message).toContain("max_steps_per_rollout_epoch (240) must be a multiple of actor.model.num_action_chunks (50)");
    expect(errorOf({ overrides, use: "train" }).message).toContain("must be a multiple");
    expect(loadConfig({ overrides, use: "eval" }).config.actor.model.dexbotic.action_chunk).toBe(50);
    expect(errorOf({ overrides: ["actor.model.num_action_chunks=51", "actor.model.action_horizon=50"], use: "eval" }).message).toContain("larger than the action horizon");
  });
});

describe("config files", () => {
  test("an empty file (or one of comments) loads with a notice; a folder or an empty name is refused", () => {
    const empty = writeTmp("empty.yaml", "# to be filled in\n");
    const { config, notices } = loadConfig({ config: empty, overrideFile: writeTmp("blank.yaml", "") });
    expect(config).toEqual(loadConfig().config);
    expect(notices).toEqual([
      `dexrl: notice: the config file ${empty} is empty (or only comments); it changes nothing.`,
      `dexrl: notice: the override file ${join(tmp, "blank.yaml")} is empty (or only comments); it changes nothing.`,
    ]);
    expect(loadConfig().notices).toEqual([]);
    expect(errorOf({ config: tmp }).message).toBe(`The config file ${tmp} is a folder; give a YAML file (or the name of a bundled config).`);
    expect(errorOf({ overrideFile: tmp }).message).toContain("is a folder");
    expect(errorOf({ config: "" }).message).toContain("not an empty string");
  });
});
