// The real CLI in a child process: help, version, config output, doctor, and one-sentence errors.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { parse } from "yaml";
import pkg from "../../package.json" with { type: "json" };
import { loadConfig } from "../../src/config/load.ts";
import { dexrl, repoRoot } from "../helpers/cli.ts";

// GPU work on SwiftShader (and child processes) can exceed bun's 5 s default on a busy 2-core machine.
setDefaultTimeout(60_000);



describe("dexrl CLI", () => {
  test("--help lists the commands with examples; --version prints the version", () => {
    const help = dexrl("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("doctor");
    expect(help.stdout).toContain("config");
    expect(help.stdout).toContain("EXAMPLES");
    const sub = dexrl("config", "--help");
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain("--override-file");
    expect(sub.stdout).toContain("dexrl config actor.model.num_steps=4");
    const v = dexrl("--version");
    expect(v.stdout.trim()).toBe(pkg.version);
  });

  test("config prints the resolved config as YAML, with one notice for ignored keys", () => {
    const r = dexrl("config", "actor.model.num_steps=3", "env.train.total_num_envs=16");
    expect(r.code).toBe(0);
    expect(parse(r.stdout)).toEqual(loadConfig({ overrides: ["actor.model.num_steps=3", "env.train.total_num_envs=16"] }).config);
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]).toContain("ignoring RLinf keys that mean nothing in one process: hydra, cluster");
  });

  test("the seed snippet loads through --override-file", () => {
    const r = dexrl("config", "--override-file", join(repoRoot, "test/fixtures/seed_snippet.yaml"));
    expect(r.code).toBe(0);
    expect(parse(r.stdout).actor.model.model_path).toBe("/path/to/model/Dexbotic-Pi05-SFT");
  });

  test.each([
    [["config", "actor.model.num_stepz=4"], /^dexrl: Unknown config key actor\.model\.num_stepz .*did you mean actor\.model\.num_steps\?/],
    [["config", "actor.model.dexbotic.noise_method=sde"], /^dexrl: Config key actor\.model\.dexbotic\.noise_method has value "sde"; it must be one of flow_sde, flow_noise, flow_ode\.$/],
    [["config", "env.train.total_num_envs=0"], /^dexrl: Config key env\.train\.total_num_envs has value 0; it must be an integer ≥ 1\.$/],
    [["config", "--config", "missing.yaml"], /^dexrl: No config file or bundled config named missing\.yaml/],
    [["frobnicate"], /^dexrl: Unknown command frobnicate \(see `dexrl --help`\)\.$/],
  ])("bad input %p gives one sentence and exit code 2", (args, pattern) => {
    const r = dexrl(...args);
    expect(r.code).toBe(2);
    expect(r.errLines).toHaveLength(1);
    expect(r.errLines[0]).toMatch(pattern);
    expect(r.stderr).not.toContain("    at "); // no stack trace
  });

  test("--debug adds the stack trace", () => {
    const r = dexrl("config", "env.train.total_num_envs=0", "--debug");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("    at ");
  });

  test("doctor passes every check on this machine", () => {
    const r = dexrl("doctor", "--json");
    const checks = JSON.parse(r.stdout) as { name: string; ok: boolean; detail: string }[];
    expect(checks.map((c) => c.name)).toEqual(["bun", "cpu", "webgpu adapter", "webgpu compute", "webgpu render-to-texture", "training backend", "mujoco", "onnxruntime"]);
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks.find((c) => c.name === "cpu")!.detail).toEndWith(`× ${navigator.hardwareConcurrency}`);
    // On SwiftShader (no GPU) auto puts updates and rollouts on ONNX Runtime; on a real GPU on WebGPU.
    const software = checks.find((c) => c.name === "webgpu adapter")!.detail.includes("software");
    expect(checks.find((c) => c.name === "training backend")!.detail).toStartWith(software ? "updates and rollouts on ONNX Runtime" : "updates and rollouts on WebGPU");
    expect(r.code).toBe(0);
  });
});
