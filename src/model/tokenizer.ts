import { readFile } from 'node:fs/promises';
import { describe, ModelError, printable } from '../errors.js';

/** The tokenizer file of a model package (word-level vocabulary). */
export interface TokenizerSpec {
  readonly type: 'word-level';
  readonly lowercase: boolean;
  readonly max_length: number;
  readonly pad_token: string;
  readonly unk_token: string;
  readonly vocab: readonly string[];
}

/** Instructions whose ids a tokenizer keeps: a few tasks' worth, each entry its text and two
 * arrays of max_length ids. */
const MEMO_ENTRIES = 64;
/** Longer texts are not kept: a client cycling through long instructions would otherwise hold
 * 64 of them. */
const MEMO_TEXT_LENGTH = 256;

/** One instruction's ids, padded, and how many are words. */
interface Encoded {
  readonly ids: Int32Array;
  readonly count: number;
  big: BigInt64Array | undefined;
}

/**
 * Word-level tokenizer: lower-cases, splits on anything that is not a letter or digit, maps words
 * to ids (unknown words to the unknown token) and pads or truncates to `maxLength`.
 */
export class WordTokenizer {
  readonly maxLength: number;
  readonly padId: number;
  readonly unkId: number;
  readonly #ids: ReadonlyMap<string, number>;
  readonly #lowercase: boolean;
  readonly #memo = new Map<string, Encoded>();

  constructor(spec: TokenizerSpec) {
    this.#ids = new Map(spec.vocab.map((w, i) => [w, i]));
    this.maxLength = spec.max_length;
    this.#lowercase = spec.lowercase;
    const pad = this.#ids.get(spec.pad_token);
    const unk = this.#ids.get(spec.unk_token);
    if (pad === undefined || unk === undefined) {
      const missing = [
        ...(pad === undefined ? [`pad_token ${JSON.stringify(spec.pad_token)}`] : []),
        ...(unk === undefined ? [`unk_token ${JSON.stringify(spec.unk_token)}`] : []),
      ];
      throw new ModelError(
        'INVALID_MANIFEST',
        `Expected pad_token and unk_token to be in the vocabulary but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not`,
        {
          field: 'tokenizer.vocab',
        },
      );
    }
    this.padId = pad;
    this.unkId = unk;
  }

  get vocabSize(): number {
    return this.#ids.size;
  }

  /**
   * Token ids of `text`, padded to maxLength, written into `out` (reused across calls; a shorter
   * `out` takes the first ids).
   */
  encodeInto(text: string, out: BigInt64Array | Int32Array): number {
    const e = this.#encoded(text);
    const n = Math.min(out.length, this.maxLength);
    if (out instanceof BigInt64Array) {
      e.big ??= BigInt64Array.from(e.ids, (id) => BigInt(id));
      out.set(e.big.subarray(0, n));
    } else {
      out.set(e.ids.subarray(0, n));
    }
    return e.count;
  }

  /**
   * The ids of `text`, from the memo when it was seen lately: a node serving a few tasks sees the
   * same instructions frame after frame, and splitting one again costs more than the copy.
   */
  #encoded(text: string): Encoded {
    const memo = this.#memo;
    const hit = memo.get(text);
    if (hit !== undefined) {
      // Most recently used last, so the oldest entry is the first one evicted.
      memo.delete(text);
      memo.set(text, hit);
      return hit;
    }
    const words = (this.#lowercase ? text.toLowerCase() : text)
      .split(/[^\p{L}\p{N}]+/u)
      .filter(Boolean);
    const count = Math.min(words.length, this.maxLength);
    const ids = new Int32Array(this.maxLength).fill(this.padId);
    for (let i = 0; i < count; i++) ids[i] = this.#ids.get(words[i] as string) ?? this.unkId;
    const e: Encoded = { ids, count, big: undefined };
    if (text.length > MEMO_TEXT_LENGTH) return e;
    if (memo.size >= MEMO_ENTRIES) memo.delete(memo.keys().next().value as string);
    memo.set(text, e);
    return e;
  }

  /** Load and check a tokenizer file. */
  static async load(path: string): Promise<WordTokenizer> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(path, 'utf8'));
    } catch (cause) {
      throw new ModelError(
        'MODEL_FILE',
        `Expected a readable JSON tokenizer file at ${printable(path)}`,
        {
          field: 'tokenizer',
          cause,
        },
      );
    }
    return new WordTokenizer(checkTokenizerSpec(raw));
  }
}

function checkTokenizerSpec(raw: unknown): TokenizerSpec {
  const fail = (field: string, expected: string, received: unknown): never => {
    const path = field === '' ? 'tokenizer' : `tokenizer.${field}`;
    throw new ModelError(
      'INVALID_MANIFEST',
      `Expected ${expected} for ${path} but received ${describe(received)}`,
      { field: path },
    );
  };
  if (typeof raw !== 'object' || raw === null) return fail('', 'an object', raw);
  const r = raw as Record<string, unknown>;
  if (r.type !== 'word-level') fail('type', '"word-level"', r.type);
  if (typeof r.lowercase !== 'boolean') fail('lowercase', 'a boolean', r.lowercase);
  if (typeof r.max_length !== 'number' || !Number.isInteger(r.max_length) || r.max_length < 1) {
    fail('max_length', 'a positive integer', r.max_length);
  }
  if (typeof r.pad_token !== 'string') fail('pad_token', 'a string', r.pad_token);
  if (typeof r.unk_token !== 'string') fail('unk_token', 'a string', r.unk_token);
  if (!Array.isArray(r.vocab) || !r.vocab.every((w) => typeof w === 'string')) {
    fail('vocab', 'an array of strings', r.vocab);
  }
  return r as unknown as TokenizerSpec;
}
