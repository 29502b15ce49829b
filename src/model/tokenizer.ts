// Instruction tokenizer saved with each checkpoint: whole words from a vocabulary built on the
// training instructions, with a UTF-8 byte fallback so any text encodes (unknown words never crash).

const SPECIALS = ["<pad>", "<bos>", "<eos>"] as const;
export const PAD_ID = 0;
const BOS_ID = 1;
const EOS_ID = 2;
const BYTE_BASE = SPECIALS.length; // ids BYTE_BASE..BYTE_BASE+255 are raw bytes
const WORD_BASE = BYTE_BASE + 256;

export interface TokenizerJson {
  type: "dexrl-word-byte";
  version: 1;
  max_length: number;
  words: string[];
}

/** Lower-cased words and single punctuation marks; whitespace separates. */
const split = (text: string) => text.toLowerCase().match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];

export class Tokenizer {
  private readonly index: Map<string, number>;

  constructor(
    readonly words: string[],
    readonly maxLength = 48,
  ) {
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new Error(`tokenizer max_length must be an integer ≥ 2, got ${maxLength}`);
    this.index = new Map(words.map((w, i) => [w, WORD_BASE + i]));
    if (this.index.size !== words.length) throw new Error("tokenizer vocabulary has duplicate words");
  }

  /** Builds the vocabulary from instructions, words in order of first appearance. */
  static fromTexts(texts: string[], maxLength = 48): Tokenizer {
    const seen = new Set<string>();
    for (const t of texts) for (const w of split(t)) seen.add(w);
    return new Tokenizer([...seen], maxLength);
  }

  get vocabSize(): number {
    return WORD_BASE + this.words.length;
  }

  /** Token ids padded (or cut) to maxLength, and a mask of the real tokens: <bos> words… <eos>. */
  encode(text: string): { ids: Int32Array; mask: Uint8Array } {
    const ids: number[] = [BOS_ID];
    for (const w of split(text)) {
      const id = this.index.get(w);
      if (id !== undefined) ids.push(id);
      else for (const b of new TextEncoder().encode(w)) ids.push(BYTE_BASE + b);
    }
    ids.push(EOS_ID);
    const n = Math.min(ids.length, this.maxLength);
    const out = new Int32Array(this.maxLength).fill(PAD_ID);
    const mask = new Uint8Array(this.maxLength);
    for (let i = 0; i < n; i++) {
      out[i] = ids[i]!;
      mask[i] = 1;
    }
    return { ids: out, mask };
  }

  /** The text the ids stand for (words joined by spaces); for messages and tests. */
  decode(ids: ArrayLike<number>): string {
    const parts: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) parts.push(new TextDecoder().decode(new Uint8Array(bytes)));
      bytes = [];
    };
    for (const id of Array.from(ids)) {
      if (id >= BYTE_BASE && id < WORD_BASE) bytes.push(id - BYTE_BASE);
      else {
        flush();
        if (id >= WORD_BASE) parts.push(this.words[id - WORD_BASE] ?? "<?>");
      }
    }
    flush();
    return parts.join(" ");
  }

  toJSON(): TokenizerJson {
    return { type: "dexrl-word-byte", version: 1, max_length: this.maxLength, words: this.words };
  }

  static fromJSON(json: unknown, label: string): Tokenizer {
    const j = json as Partial<TokenizerJson>;
    if (j?.type !== "dexrl-word-byte" || j.version !== 1 || !Array.isArray(j.words) || typeof j.max_length !== "number")
      throw new Error(`${label} is not a dexrl tokenizer (type dexrl-word-byte, version 1)`);
    return new Tokenizer(j.words, j.max_length);
  }
}
