// Native libraries' log lines (Dawn and the Vulkan loader on stderr, MuJoCo's warnings on stdout)
// reach the user only with --debug, or as a clause of the sentence of a failure they explain.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { repoRoot } from "../helpers/cli.ts";

setDefaultTimeout(60_000);

const run = (args: string[], env: Record<string, string> = {}) => {
  const p = Bun.spawnSync([process.execPath, ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1", ...env } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
};

describe("Dawn and the Vulkan loader", () => {
  test("without a usable driver: no native trace, the loader's reason inside the failing check's sentence", () => {
    const env = { VK_ICD_FILENAMES: "/nonexistent/icd.json" };
    const r = run(["src/cli.ts", "doctor"], env);
    expect(r.code).toBe(1);
    const all = r.stdout + r.stderr;
    expect(all).not.toContain("CheckVkSuccessImpl");
    expect(all).not.toContain("Warning:");
    expect(r.stdout).toMatch(/FAIL webgpu adapter .*null-backend.*the Vulkan loader said: "loader_get_json: Failed to open JSON file \/nonexistent\/icd\.json"/);
    expect(r.stderr.trim()).toBe("dexrl: doctor found 1 failing check: webgpu adapter.");

    const debug = run(["src/cli.ts", "doctor", "--debug"], env);
    expect(debug.code).toBe(1);
    expect(debug.stderr).toContain("CheckVkSuccessImpl");
  });

  test("with a driver: doctor's stderr is empty", () => {
    const r = run(["src/cli.ts", "doctor"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });
});

describe("MuJoCo", () => {
  const script = join(repoRoot, "test/cli/fixtures/mujoco_nan.ts");
  const warning = "WARNING: Nan, Inf or huge value in QVEL at DOF 0. The simulation is unstable.";

  test.each([[[]], [["worker"]]])("its warnings stay off stdout and stderr without --debug, and are kept for errors (%p)", (extra) => {
    const r = run([script, ...extra]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    const [kept, ...rest] = r.stderr.trim().split("\n");
    expect(rest).toEqual([]);
    expect(kept).toContain(warning);
  });

  test.each([[[]], [["worker"]]])("--debug shows them on stderr, tagged, in the main thread and in Workers (%p)", (extra) => {
    const r = run([script, ...extra, "--debug"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`[mujoco] ${warning}`);
  });
});
