// Philox4x32-10: Random123's known answers, device draws equal to the CPU reference, reproducibility.
import { beforeAll, describe, expect, test } from "bun:test";
import { Rng, philoxCpu, randomCpu } from "../../src/gpu/random.ts";
import { initEngine } from "../../src/gpu/runtime.ts";
import { scopeAsync } from "../../src/gpu/tensor.ts";
import { expectClose } from "./helpers.ts";

beforeAll(async () => {
  await initEngine();
});

describe("random", () => {
  test("philox4x32-10 known-answer vectors (Random123 kat_vectors)", () => {
    const hex = (v: number[]) => v.map((x) => x.toString(16).padStart(8, "0")).join(" ");
    expect(hex(philoxCpu([0, 0, 0, 0], [0, 0]))).toBe("6627e8d5 e169c58d bc57ac4c 9b00dbd8");
    expect(hex(philoxCpu([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toBe("408f276d 41c83b0e a20bc7c6 6d5451fd");
    expect(hex(philoxCpu([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toBe("d16cfe09 94fdcceb 5001e420 24126ea1");
  });

  test("device draws equal the CPU reference and reproduce from (seed, counter)", async () => {
    await scopeAsync(async () => {
      const seed = 2 ** 33 + 12345;
      const rng = new Rng(seed, 2 ** 32 - 7); // the counter crosses a 32-bit boundary
      const u = await rng.uniform([1001]).read();
      const n = await rng.normal([3, 333]).read();
      expectClose(u, randomCpu("uniform", 1001, seed, 2 ** 32 - 7), "uniform", 0, 0);
      // Same uniforms (checked bit for bit above); the gap is the device's float32 log/cos/sqrt,
      // whose precision Vulkan leaves to the driver (SwiftShader's log is good to ~1e-4 relative).
      expectClose(n, randomCpu("normal", 999, seed, 2 ** 32 - 7 + 1001), "normal", 1e-3, 0);
      const replay = new Rng(seed, 2 ** 32 - 7);
      expectClose(await replay.uniform([1001]).read(), u, "replayed uniform", 0, 0);
      expect(rng.state()).toEqual({ seed, counter: 2 ** 32 - 7 + 2000 });
      rng.setState({ seed, counter: 2 ** 32 - 7 });
      expectClose(await rng.uniform([1001]).read(), u, "uniform after setState", 0, 0);
      rng.dispose();
      replay.dispose();
    });
  });

  test("normal draws have mean 0 and variance 1", async () => {
    await scopeAsync(async () => {
      const x = await new Rng(7).normal([20000]).read();
      const mean = x.reduce((s, v) => s + v, 0) / x.length;
      const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
      // 5 standard errors: 5/√20000 ≈ 0.035 for the mean, ≈ 0.05 for the variance
      expect(Math.abs(mean), `mean ${mean}`).toBeLessThan(0.035);
      expect(Math.abs(variance - 1), `variance ${variance}`).toBeLessThan(0.05);
    });
  });
});
