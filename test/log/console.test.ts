// Console progress: periodic lines in logs, a final line at completion; metric lines are readable.
import { expect, test } from "bun:test";
import { formatMetrics, Progress } from "../../src/log/console.ts";

test("progress in a log prints the first tick, then at most one line per interval, and the last", () => {
  const lines: string[] = [];
  const p = new Progress("expert", 100, 3600, { write: (s: string) => lines.push(s) });
  for (let i = 0; i < 100; i++) p.tick(1, `success ${(i / 100).toFixed(2)}`);
  expect(lines).toHaveLength(2);
  expect(lines[0]).toMatch(/^expert [█░]{24} 1\/100 1% .* elapsed, eta .*success 0\.00\n$/);
  expect(lines[1]).toMatch(/^expert █{24} 100\/100 100% .*success 0\.99\n$/);
});

test("progress in a terminal redraws one line and ends it at completion", () => {
  let out = "";
  const p = new Progress("collect", 3, 10, { write: (s: string) => (out += s), isTTY: true });
  p.tick();
  p.tick(2);
  expect(out.startsWith("\r\x1b[2Kcollect")).toBe(true);
  expect(out.endsWith("\n")).toBe(true);
  expect(out.split("\n")).toHaveLength(2);
});

test("metrics format with the step first and 4 significant digits", () => {
  expect(formatMetrics(7, { "train/actor/policy_loss": -0.0123456, "env/episode_len": 120 })).toBe(
    "step 7 | train/actor/policy_loss -0.01235 | env/episode_len 120",
  );
});
