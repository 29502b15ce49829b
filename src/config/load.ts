// Config loading: defaults ← config file ← override file ← dotted overrides, then type checks,
// ranges, cross-key rules and ${a.b} interpolation. Every error names the key, value and rule.
import { closest, distance } from "fastest-levenshtein";
import { existsSync, readFileSync, statSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { fsReason, usageError } from "../errors.ts";
import { bundledConfigs, DEFAULT_CONFIG } from "./bundled.ts";
import { Field, type SchemaNode } from "./fields.ts";
import { schema, type Config } from "./schema.ts";

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === "object" && v !== null && !Array.isArray(v);

export interface LoadOptions {
  /** A path to a YAML file, or the name of a bundled config. */
  config?: string;
  /** A YAML file laid over the config (e.g. the seed's rollout:/actor: snippet). */
  overrideFile?: string;
  /** `dotted.key=value` strings. */
  overrides?: string[];
  /**
   * What the config is for: "eval" skips the rules only training depends on (rollout-epoch lengths
   * as multiples of the chunk, batch sizes), so the seed's eval habit `--action_chunk_size 50` works.
   * Everything else (and `dexrl config`) checks them all.
   */
  use?: "train" | "eval";
}

export interface LoadedConfig {
  config: Config;
  /** Top-level RLinf subtrees that were present and are ignored, with the reason. */
  ignored: { key: string; reason: string }[];
  /** Where each layer came from, for the run folder and messages. */
  sources: string[];
  /** Things the user should hear about that are not errors (an empty config file). */
  notices: string[];
}

/** Every dotted leaf path in the schema (ignored subtrees count as one leaf). */
function leafPaths(node: SchemaNode, prefix = ""): string[] {
  if (node instanceof Field) return [prefix];
  return Object.entries(node).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}
const ALL_PATHS = leafPaths(schema);

function suggest(path: string, candidates: string[]): string {
  if (candidates.length === 0) return "";
  const best = closest(path, candidates);
  return distance(path, best) <= Math.max(3, Math.floor(path.length / 3)) ? ` (did you mean ${best}?)` : "";
}

/** Reads a YAML file into a mapping; the message names the file on any problem. An empty file adds a notice. */
function readYamlFile(path: string, what: string, notices: string[]): Tree {
  if (!existsSync(path)) throw usageError(`The ${what} ${path} does not exist.`);
  if (statSync(path).isDirectory()) throw usageError(`The ${what} ${path} is a folder; give a YAML file (or the name of a bundled config).`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw usageError(`The ${what} ${path} cannot be read: ${fsReason(e)}.`, { cause: e });
  }
  const tree = parseYamlText(text, path);
  if (Object.keys(tree).length === 0) notices.push(`dexrl: notice: the ${what} ${path} is empty (or only comments); it changes nothing.`);
  return tree;
}

function parseYamlText(text: string, label: string): Tree {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const msg = e instanceof YAMLParseError ? e.message.split("\n")[0] : String(e);
    throw usageError(`${label} is not valid YAML: ${msg}.`);
  }
  if (doc == null) return {};
  if (!isTree(doc)) throw usageError(`${label} must hold a YAML mapping of config keys at the top level.`);
  return doc;
}

/** Resolves `--config`: an existing path, else a bundled name (with or without .yaml). */
function readConfig(nameOrPath: string, notices: string[]): { tree: Tree; source: string } {
  if (existsSync(nameOrPath)) return { tree: readYamlFile(nameOrPath, "config file", notices), source: nameOrPath };
  const name = nameOrPath.replace(/^configs\//, "").replace(/\.ya?ml$/, "");
  const text = bundledConfigs[name];
  if (text !== undefined) return { tree: parseYamlText(text, `configs/${name}.yaml`), source: `configs/${name}.yaml` };
  const names = Object.keys(bundledConfigs);
  throw usageError(
    `No config file or bundled config named ${nameOrPath}${suggest(name, names)}; bundled configs: ${names.join(", ")}.`,
  );
}

/** Lays `top` over `base`: mappings merge key by key, anything else replaces. */
function merge(base: Tree, top: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(top)) out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  return out;
}

/** Checks that every key of `tree` exists in the schema; errors carry a "did you mean". */
function checkKeys(tree: Tree, node: SchemaNode, prefix: string, source: string): void {
  if (node instanceof Field) return;
  for (const [k, v] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${k}` : k;
    const child = (node as Record<string, SchemaNode>)[k];
    if (!child) throw usageError(`Unknown config key ${path} in ${source}${suggest(path, ALL_PATHS)}.`);
    if (!(child instanceof Field)) {
      if (!isTree(v)) throw usageError(`Config key ${path} in ${source} must be a mapping of keys, not ${JSON.stringify(v)}.`);
      checkKeys(v, child, path, source);
    }
  }
}

function fieldAt(path: string): Field<unknown> | undefined {
  let node: SchemaNode = schema;
  for (const part of path.split(".")) {
    if (node instanceof Field) return node.kind === "ignored" ? node : undefined;
    node = (node as Record<string, SchemaNode>)[part]!;
    if (node === undefined) return undefined;
  }
  return node instanceof Field ? node : undefined;
}

/** Parses `key=value`, typing the value by the key's schema field. */
function parseOverride(arg: string): { path: string; value: unknown } {
  const eq = arg.indexOf("=");
  if (eq < 0 && fieldAt(arg.trim())) throw usageError(`Override "${arg}" has no value; write ${arg.trim()}=VALUE (with "=", no spaces).`);
  if (eq <= 0) throw usageError(`Override "${arg}" must have the form dotted.key=value (e.g. actor.model.num_steps=4).`);
  const path = arg.slice(0, eq).trim();
  const raw = arg.slice(eq + 1);
  const field = fieldAt(path);
  if (!field) {
    if (ALL_PATHS.some((p) => p.startsWith(`${path}.`)))
      throw usageError(`Override ${path} names a group of keys, not one key; set its leaves (e.g. ${ALL_PATHS.find((p) => p.startsWith(`${path}.`))}=...).`);
    throw usageError(`Unknown config key ${path} in override "${arg}"${suggest(path, ALL_PATHS)}.`);
  }
  if (field.kind === "string" || field.kind === "enum") return { path, value: raw === "null" && field.opts.nullable ? null : raw };
  let value: unknown;
  try {
    value = parseYaml(raw);
  } catch {
    value = raw;
  }
  return { path, value: value === undefined ? raw : value };
}

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split(".");
  let t = tree;
  for (const p of parts.slice(0, -1)) {
    if (!isTree(t[p])) t[p] = {};
    t = t[p] as Tree;
  }
  t[parts.at(-1)!] = value;
}

function getPath(tree: Tree, path: string): unknown {
  let t: unknown = tree;
  for (const p of path.split(".")) t = isTree(t) ? t[p] : undefined;
  return t;
}

const INTERP = /\$\{([^}]+)\}/g;

/** Replaces `${a.b.c}` with the value at a.b.c (typed when the whole string is one reference). */
function interpolate(tree: Tree, root: Tree, prefix = "", seen: string[] = []): void {
  for (const [k, v] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (fieldAt(path)?.kind === "ignored") continue; // may use resolvers like ${oc.env:...}
    if (isTree(v)) interpolate(v, root, path, seen);
    else if (typeof v === "string" && v.includes("${")) tree[k] = resolveString(v, root, path, seen);
  }
}

function resolveString(s: string, root: Tree, at: string, seen: string[]): unknown {
  const lookup = (ref: string) => {
    if (seen.includes(ref)) throw usageError(`Config key ${at} has a circular reference through \${${ref}}.`);
    const v = getPath(root, ref);
    if (v === undefined) throw usageError(`Config key ${at} refers to \${${ref}}, which is not a config key${suggest(ref, ALL_PATHS)}.`);
    return typeof v === "string" && v.includes("${") ? resolveString(v, root, ref, [...seen, ref]) : v;
  };
  const whole = /^\$\{([^}]+)\}$/.exec(s);
  if (whole) return lookup(whole[1]!);
  return s.replace(INTERP, (_, ref: string) => String(lookup(ref)));
}

/** Checks one value against its field; returns it, coerced where YAML is loose (1 for a float). */
function checkValue(path: string, value: unknown, field: Field<unknown>): unknown {
  const bad = () => usageError(`Config key ${path} has value ${JSON.stringify(value)}; it must be ${field.describe()}.`);
  if (value === null) {
    if (field.opts.nullable || field.kind === "ignored") return null;
    throw bad();
  }
  const o = field.opts;
  switch (field.kind) {
    case "ignored":
      return value;
    case "bool":
      if (typeof value !== "boolean") throw bad();
      return value;
    case "string":
      if (typeof value !== "string" || (o.nonEmpty && value.trim() === "")) throw bad();
      return value;
    case "enum":
      if (typeof value !== "string" || !o.options!.includes(value)) throw bad();
      return value;
    case "list":
      if (!Array.isArray(value)) throw bad();
      return value;
    case "int":
    case "float": {
      if (typeof value !== "number" || !Number.isFinite(value)) throw bad();
      if (field.kind === "int" && !Number.isInteger(value)) throw bad();
      if (o.special && value in o.special) return value;
      if (o.min !== undefined && (o.exclusiveMin ? value <= o.min : value < o.min)) throw bad();
      if (o.max !== undefined && (o.exclusiveMax ? value >= o.max : value > o.max)) throw bad();
      return value;
    }
  }
}

function checkTypes(tree: Tree, node: SchemaNode, prefix: string): void {
  for (const [k, child] of Object.entries(node as Record<string, SchemaNode>)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (child instanceof Field) {
      if (!(k in tree)) {
        if (child.kind === "ignored") continue;
        throw usageError(`Config key ${path} is missing.`);
      }
      tree[k] = checkValue(path, tree[k], child);
    } else {
      if (!isTree(tree[k])) throw usageError(`Config key ${path} is missing.`);
      checkTypes(tree[k] as Tree, child, path);
    }
  }
}

/** Rules that tie keys together, each with a message naming the keys and values. */
function checkRules(c: Config, use: LoadOptions["use"]): void {
  const m = c.actor.model;
  const d = m.dexbotic;
  const rule = (ok: boolean, msg: string) => {
    if (!ok) throw usageError(msg);
  };
  rule(
    m.num_action_chunks <= m.action_horizon,
    `Config key actor.model.num_action_chunks is ${m.num_action_chunks}, larger than the action horizon actor.model.action_horizon = ${m.action_horizon}; it must be at most ${m.action_horizon}.`,
  );
  rule(d.action_chunk === m.num_action_chunks, `Config key actor.model.dexbotic.action_chunk is ${d.action_chunk} but actor.model.num_action_chunks is ${m.num_action_chunks}; they must be equal.`);
  rule(d.num_steps === m.num_steps, `Config key actor.model.dexbotic.num_steps is ${d.num_steps} but actor.model.num_steps is ${m.num_steps}; they must be equal.`);
  rule(d.action_env_dim <= m.action_dim, `Config key actor.model.dexbotic.action_env_dim is ${d.action_env_dim}, larger than actor.model.action_dim = ${m.action_dim}.`);
  rule(!m.is_lora, "Config key actor.model.is_lora is true, but dexrl has no LoRA; set it to false.");
  rule(!c.reward.use_reward_model, "Config key reward.use_reward_model is true, but dexrl has no reward model; set it to false.");
  rule(!c.critic.use_critic_model, "Config key critic.use_critic_model is true, but dexrl's critic is the value head; set it to false.");
  for (const b of c.runner.logger.logger_backends)
    rule(b === "tensorboard", `Config key runner.logger.logger_backends has ${JSON.stringify(b)}; dexrl writes only tensorboard.`);
  rule(
    m.noise_params.length === 3 && m.noise_params.every((x) => typeof x === "number"),
    `Config key actor.model.noise_params is ${JSON.stringify(m.noise_params)}; it must be [start, end, steps].`,
  );
  const vh = m.value_hidden_sizes;
  rule(
    vh === null || vh.every((w) => Number.isInteger(w) && w >= 1 && w <= 4096),
    `Config key actor.model.value_hidden_sizes is ${JSON.stringify(vh)}; it must be null (the checkpoint's value head) or a list of widths from 1 to 4096 ([] for one linear layer).`,
  );
  rule(c.env.eval.task_sampling === "uniform", "Config key env.eval.task_sampling is by_failure, but evaluation runs the fixed initial states of every task alike; set it to uniform.");
  if (use === "eval") return; // what follows matters to training only
  // RLinf's PPO settings that dexrl implements exactly one way: any other value is refused, not ignored.
  const a = c.algorithm;
  const only = (key: string, value: unknown, want: unknown, why: string) =>
    rule(value === want, `Config key ${key} is ${JSON.stringify(value)}, but ${why}; set it to ${JSON.stringify(want)}.`);
  only("algorithm.reward_type", a.reward_type, "chunk_level", "dexrl's rewards and advantages are per policy call (RLinf's chunk_level for π0)");
  only("algorithm.logprob_type", a.logprob_type, "chunk_level", "dexrl's log-probs are summed over each executed chunk (chunk_level)");
  only("algorithm.adv_type", a.adv_type, "gae", "dexrl's advantages are GAE (actor-critic PPO)");
  only("algorithm.loss_type", a.loss_type, "actor_critic", "dexrl's loss is PPO's actor-critic loss");
  only("algorithm.group_size", a.group_size, 1, "group_size > 1 is GRPO's grouping, which dexrl does not implement");
  only("algorithm.filter_rewards", a.filter_rewards, false, "reward filtering selects GRPO groups by success rate (group_size > 1), which dexrl does not implement");
  only("algorithm.kl_beta", a.kl_beta, 0, "dexrl's PPO has no KL penalty against a reference policy");
  only("rollout.recompute_logprobs", c.rollout.recompute_logprobs, false, "dexrl updates with the rollout's own log-probs (the sampler and the update run the same program, so recomputing gives the same numbers)");
  only("actor.model.use_proprio", m.use_proprio, true, "dexrl's policy always takes the robot state as its state token");
  rule(a.clip_ratio_low < 1, `Config key algorithm.clip_ratio_low is ${a.clip_ratio_low}; it must be below 1.`);
  rule(
    c.actor.global_batch_size % c.actor.micro_batch_size === 0,
    `Config key actor.global_batch_size (${c.actor.global_batch_size}) must be a multiple of actor.micro_batch_size (${c.actor.micro_batch_size}).`,
  );
  const t = c.env.train;
  rule(
    t.task_sampling === "uniform" || (!t.use_fixed_reset_state_ids && t.specific_reset_id === null),
    "Config key env.train.task_sampling is by_failure, which draws fresh initial states per task; it needs env.train.use_fixed_reset_state_ids false and env.train.specific_reset_id null.",
  );
  for (const group of ["train", "eval"] as const) {
    const e = c.env[group];
    rule(
      e.max_steps_per_rollout_epoch % m.num_action_chunks === 0,
      `Config key env.${group}.max_steps_per_rollout_epoch (${e.max_steps_per_rollout_epoch}) must be a multiple of actor.model.num_action_chunks (${m.num_action_chunks}).`,
    );
  }
}

/** Loads and validates a config. Throws a DexrlError (exit code 2) naming the problem. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const base = parseYamlText(bundledConfigs[DEFAULT_CONFIG]!, `configs/${DEFAULT_CONFIG}.yaml`);
  const sources = [`configs/${DEFAULT_CONFIG}.yaml`];
  const notices: string[] = [];
  if (opts.config === "") throw usageError("--config needs a file or the name of a bundled config, not an empty string.");
  if (opts.overrideFile === "") throw usageError("--override-file needs a YAML file, not an empty string.");
  let tree = base;
  const layers: { tree: Tree; source: string }[] = [];
  if (opts.config && opts.config !== DEFAULT_CONFIG) layers.push(readConfig(opts.config, notices));
  if (opts.overrideFile) layers.push({ tree: readYamlFile(opts.overrideFile, "override file", notices), source: opts.overrideFile });
  for (const layer of layers) {
    checkKeys(layer.tree, schema, "", layer.source);
    tree = merge(tree, layer.tree);
    sources.push(layer.source);
  }
  tree = structuredClone(tree);
  for (const arg of opts.overrides ?? []) {
    const { path, value } = parseOverride(arg);
    setPath(tree, path, value);
    sources.push(arg);
  }
  checkKeys(tree, schema, "", "the config");
  interpolate(tree, tree);
  checkTypes(tree, schema, "");
  const config = tree as unknown as Config;
  checkRules(config, opts.use);
  const ignored = Object.entries(schema).flatMap(([k, v]) => ignoredIn(tree, k, v));
  return { config, ignored, sources, notices };
}

function ignoredIn(tree: Tree, path: string, node: SchemaNode): { key: string; reason: string }[] {
  const here = getPath(tree, path);
  if (here === undefined) return [];
  if (node instanceof Field) return node.kind === "ignored" ? [{ key: path, reason: node.opts.reason! }] : [];
  return Object.entries(node).flatMap(([k, v]) => ignoredIn(tree, `${path}.${k}`, v));
}

/** The one-line notice listing ignored keys. */
export function ignoredNotice(ignored: LoadedConfig["ignored"]): string | undefined {
  if (ignored.length === 0) return undefined;
  return `dexrl: ignoring RLinf keys that mean nothing in one process: ${ignored.map((i) => i.key).join(", ")}`;
}
