// Writes a small randomly initialised policy checkpoint (LIBERO instructions in its tokenizer), for
// smoke runs of train/eval where no trained model is needed: bun test/helpers/make_checkpoint.ts DIR
import { savePolicyCheckpoint } from "../../src/model/policy_checkpoint.ts";
import { Tokenizer } from "../../src/model/tokenizer.ts";
import { TASKS } from "../../src/sim/tasks.ts";
import { perturbedParams, tinyModel } from "../model/helpers.ts";

export function writeTinyCheckpoint(dir: string, horizon = 10): void {
  const tokenizer = Tokenizer.fromTexts(TASKS.map((t) => t.language), 24);
  const config = tinyModel({ max_text_len: 24, vocab_size: tokenizer.vocabSize, horizon });
  const stats = (n: number) => ({ mean: Array(n).fill(0), std: Array(n).fill(0.3) });
  savePolicyCheckpoint(dir, { config, params: perturbedParams(config, 2), normStats: { state: stats(8), actions: stats(7) }, tokenizer });
}

if (import.meta.main) {
  const dir = process.argv[2];
  if (!dir) throw new Error("usage: bun test/helpers/make_checkpoint.ts DIR");
  writeTinyCheckpoint(dir);
}
