// Schema building blocks: one field per config leaf, carrying its type, constraints and the
// TypeScript type it resolves to, so the schema types the resolved config.

export type Kind = "int" | "float" | "bool" | "string" | "enum" | "list" | "ignored";

export class Field<T> {
  declare readonly _type: T; // phantom: the resolved TypeScript type
  constructor(
    readonly kind: Kind,
    readonly opts: {
      nullable?: boolean;
      min?: number;
      max?: number;
      /** The value must be strictly greater than min. */
      exclusiveMin?: boolean;
      /** The value must be strictly less than max. */
      exclusiveMax?: boolean;
      /** Values allowed outside the range, each with what it means (e.g. -1: "never"). */
      special?: Record<number, string>;
      /** A string that must not be empty (paths, names). */
      nonEmpty?: boolean;
      options?: readonly string[];
      /** Why an ignored subtree means nothing in one process. */
      reason?: string;
    } = {},
  ) {}

  /** Also accepts null. */
  orNull(): Field<T | null> {
    return new Field<T | null>(this.kind, { ...this.opts, nullable: true });
  }

  /** Also accepts `value` outside the range, meaning `meaning` (e.g. -1, "never"). */
  or(value: number, meaning: string): Field<T> {
    return new Field<T>(this.kind, { ...this.opts, special: { ...this.opts.special, [value]: meaning } });
  }

  /** What the field accepts, for error messages. */
  describe(): string {
    const o = this.opts;
    const range =
      o.min !== undefined || o.max !== undefined
        ? ` ${o.min !== undefined ? `${o.exclusiveMin ? ">" : "≥"} ${o.min}` : ""}${o.min !== undefined && o.max !== undefined ? " and " : ""}${o.max !== undefined ? `${o.exclusiveMax ? "<" : "≤"} ${o.max}` : ""}`
        : "";
    const base =
      this.kind === "enum"
        ? `one of ${o.options!.join(", ")}`
        : this.kind === "int"
          ? `an integer${range}`
          : this.kind === "float"
            ? `a number${range}`
            : this.kind === "bool"
              ? "true or false"
              : this.kind === "list"
                ? "a list"
                : this.kind === "string"
                  ? o.nonEmpty
                    ? "a non-empty string"
                    : "a string"
                  : "anything";
    const special = Object.entries(o.special ?? {}).map(([v, meaning]) => `, or ${v} (${meaning})`).join("");
    return `${base}${special}${o.nullable ? ", or null" : ""}`;
  }
}

export const int = (min?: number, max?: number) => new Field<number>("int", { min, max });
export const positiveInt = () => int(1);
export const float = (min?: number, max?: number) => new Field<number>("float", { min, max });
export const positiveFloat = () => new Field<number>("float", { min: 0, exclusiveMin: true });
export const bool = () => new Field<boolean>("bool");
export const str = () => new Field<string>("string");
/** A path or a name: a string that must not be empty. */
export const path = () => new Field<string>("string", { nonEmpty: true });
/** A number in [min, max), e.g. Adam's betas, where 1 would divide by zero. */
export const floatBelow = (min: number, max: number) => new Field<number>("float", { min, max, exclusiveMax: true });
export const oneOf = <const O extends readonly string[]>(options: O) => new Field<O[number]>("enum", { options });
export const list = <T = unknown>() => new Field<T[]>("list");
/** A subtree RLinf needs for multi-process deployment; dexrl loads it and says it is ignored. */
export const ignored = (reason: string) => new Field<unknown>("ignored", { reason });

export type SchemaNode = Field<unknown> | { readonly [key: string]: SchemaNode };
export type Infer<S> = S extends Field<infer T> ? T : { -readonly [K in keyof S]: Infer<S[K]> };
