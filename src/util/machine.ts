// The machine in one line, for logs and benchmarks: wall times on "2-core AMD EPYC" differed 2-3×
// between days because the CPU generation behind that name did, so the family and model go with it.
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";

/** e.g. "AMD EPYC (family 23, model 1, 1996 MHz) × 2": /proc/cpuinfo's family, model and clock where Linux has them. */
export function machineSummary(): string {
  const name = cpus()[0]?.model.trim() || "unknown CPU";
  let details = "";
  if (existsSync("/proc/cpuinfo")) {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    const field = (key: string) => info.match(new RegExp(`^${key}\\s*:\\s*(.+)$`, "m"))?.[1]?.trim();
    const [family, model, mhz] = [field("cpu family"), field("model"), field("cpu MHz")];
    const parts = [family && `family ${family}`, model && `model ${model}`, mhz && `${Math.round(Number(mhz))} MHz`].filter(Boolean);
    if (parts.length) details = ` (${parts.join(", ")})`;
  }
  return `${name}${details} × ${navigator.hardwareConcurrency}`;
}
