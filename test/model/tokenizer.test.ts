import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelError, type VlaErrorCode } from '../../src/errors.js';
import { WordTokenizer, type TokenizerSpec } from '../../src/model/tokenizer.js';
import { episodeSeed } from '../../src/util/rng.js';
import { TabletopSim } from '../../src/sim/tabletop.js';
import { PACKAGE_DIR, readGolden, readJson } from './package.js';

const TOKENIZER = join(PACKAGE_DIR, 'tokenizer.json');
const spec = (await readJson(TOKENIZER)) as unknown as TokenizerSpec;

/** The id the vocabulary gives `word` (fails if it is not there). */
function id(word: string): number {
  const i = spec.vocab.indexOf(word);
  if (i < 0) throw new Error(`${word} is not in the shipped vocabulary`);
  return i;
}

const PAD = id(spec.pad_token);
const UNK = id(spec.unk_token);

/** Expected ids for already-split words: vocabulary index or unk, padded to max_length. */
function expected(words: readonly string[]): number[] {
  return Array.from({ length: spec.max_length }, (_, i) => {
    const w = words[i];
    return w === undefined ? PAD : spec.vocab.includes(w) ? id(w) : UNK;
  });
}

function encode(tok: WordTokenizer, text: string): { ids: number[]; count: number } {
  const out = new Int32Array(tok.maxLength);
  const count = tok.encodeInto(text, out);
  return { ids: Array.from(out), count };
}

describe('WordTokenizer on the shipped vocabulary', () => {
  let tok: WordTokenizer;
  beforeAll(async () => {
    tok = await WordTokenizer.load(TOKENIZER);
  });

  it('reports the file’s settings', () => {
    expect(tok.maxLength).toBe(spec.max_length);
    expect(tok.padId).toBe(PAD);
    expect(tok.unkId).toBe(UNK);
    expect(tok.vocabSize).toBe(new Set(spec.vocab).size);
    expect(spec.lowercase).toBe(true);
  });

  it.each([
    'move to the red block',
    'move to the left of the blue block',
    'move below the purple block',
  ])('encodes %j word by word', (text) => {
    const words = text.split(' ');
    for (const w of words) id(w); // every word is in the vocabulary
    expect(encode(tok, text)).toEqual({ ids: expected(words), count: words.length });
  });

  it('ignores case and punctuation', () => {
    const plain = encode(tok, 'move to the left of the blue block');
    expect(encode(tok, 'MOVE to the Left-of   the BLUE block!!')).toEqual(plain);
    expect(encode(tok, '  Move, to: the left (of) the "blue" block.\n')).toEqual(plain);
  });

  it('maps unknown words to the unknown token', () => {
    const { ids, count } = encode(tok, 'move to the chartreuse teapot');
    expect(count).toBe(5);
    expect(ids).toEqual(expected(['move', 'to', 'the', '?unknown', '?unknown']));
    expect(ids[3]).toBe(UNK);
    // The special tokens are not reachable from text: the brackets are punctuation.
    expect(encode(tok, spec.pad_token).ids[0]).toBe(spec.vocab.includes('pad') ? id('pad') : UNK);
  });

  it('pads to max_length, and an empty text is all padding', () => {
    expect(encode(tok, 'move')).toEqual({ ids: expected(['move']), count: 1 });
    expect(encode(tok, '')).toEqual({ ids: expected([]), count: 0 });
    expect(encode(tok, ' ,.! ')).toEqual({ ids: expected([]), count: 0 });
  });

  it('truncates text longer than max_length', () => {
    const words = Array.from({ length: spec.max_length + 5 }, (_, i) =>
      i % 2 === 0 ? 'left' : 'right',
    );
    const { ids, count } = encode(tok, words.join(' '));
    expect(count).toBe(spec.max_length);
    expect(ids).toEqual(expected(words.slice(0, spec.max_length)));
  });

  it('writes the same ids into Int32Array and BigInt64Array, overwriting earlier contents', () => {
    const text = 'move to the right of the green block';
    const ints = new Int32Array(tok.maxLength).fill(-7);
    const bigs = new BigInt64Array(tok.maxLength).fill(-7n);
    tok.encodeInto('left '.repeat(tok.maxLength * 2), bigs);
    expect(tok.encodeInto(text, ints)).toBe(tok.encodeInto(text, bigs));
    expect(Array.from(bigs, Number)).toEqual(Array.from(ints));
    expect(Array.from(ints)).toEqual(expected(text.split(' ')));
  });

  it('gives the same ids for an instruction seen before, after others pushed it out of its memo', () => {
    const colours = ['red', 'green', 'blue', 'yellow'];
    const texts = Array.from(
      { length: 200 },
      (_, i) => `move to the ${colours[i % 4]} block ${i} times`,
    );
    const first = texts.map((t) => encode(tok, t));
    // Each text again, oldest first (every one evicted by then), then the newest again (memo hits).
    expect(texts.map((t) => encode(tok, t))).toEqual(first);
    expect(texts.slice(-10).map((t) => encode(tok, t))).toEqual(first.slice(-10));
    const bigs = new BigInt64Array(tok.maxLength);
    for (const [i, t] of texts.slice(-3).entries()) {
      tok.encodeInto(t, bigs);
      expect(Array.from(bigs, Number)).toEqual(first[texts.length - 3 + i]?.ids);
    }
    expect(first[0]?.ids).toEqual(expected(texts[0]?.split(' ') ?? []));
    // A shorter output takes the first ids; a long text is encoded as any other.
    const short = new Int32Array(3);
    tok.encodeInto(texts[5] as string, short);
    expect(Array.from(short)).toEqual(first[5]?.ids.slice(0, 3));
    const long = `move to the red block ${'and then '.repeat(60)}`;
    expect(encode(tok, long)).toEqual(encode(tok, long));
    expect(encode(tok, long).ids).toEqual(expected(long.trim().split(' ')));
  });

  it('encodes the golden episode’s instruction to the ids the training data holds', async () => {
    const golden = await readGolden();
    const sim = new TabletopSim({ seed: episodeSeed(golden.dataset_seed, golden.episode) });
    expect(encode(tok, sim.scene.task.instruction).ids).toEqual(golden.instruction_ids);
  });
});

describe('bad tokenizer files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vla-node-tokenizer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function loadError(name: string, text: string): Promise<ModelError> {
    const path = join(dir, `${name}.json`);
    await writeFile(path, text);
    try {
      await WordTokenizer.load(path);
    } catch (error) {
      expect(error).toBeInstanceOf(ModelError);
      return error as ModelError;
    }
    throw new Error('expected WordTokenizer.load to reject');
  }

  const good = spec as unknown as Record<string, unknown>;
  const cases: readonly {
    name: string;
    change: Record<string, unknown>;
    field: string;
    fragments: readonly string[];
  }[] = [
    {
      name: 'type',
      change: { type: 'bpe' },
      field: 'tokenizer.type',
      fragments: ['"word-level"', '"bpe"'],
    },
    {
      name: 'lowercase',
      change: { lowercase: 'yes' },
      field: 'tokenizer.lowercase',
      fragments: ['boolean', '"yes"'],
    },
    {
      name: 'max_length zero',
      change: { max_length: 0 },
      field: 'tokenizer.max_length',
      fragments: ['positive integer', 'received 0'],
    },
    {
      name: 'max_length fraction',
      change: { max_length: 2.5 },
      field: 'tokenizer.max_length',
      fragments: ['positive integer', 'received 2.5'],
    },
    {
      name: 'max_length missing',
      change: { max_length: undefined },
      field: 'tokenizer.max_length',
      fragments: ['positive integer', 'received undefined'],
    },
    {
      name: 'pad_token',
      change: { pad_token: 0 },
      field: 'tokenizer.pad_token',
      fragments: ['a string', 'received 0'],
    },
    {
      name: 'unk_token',
      change: { unk_token: null },
      field: 'tokenizer.unk_token',
      fragments: ['a string', 'received null'],
    },
    {
      name: 'vocab not an array',
      change: { vocab: 'move to' },
      field: 'tokenizer.vocab',
      fragments: ['array of strings', '"move to"'],
    },
    {
      name: 'vocab with a number',
      change: { vocab: [...spec.vocab, 7] },
      field: 'tokenizer.vocab',
      fragments: ['array of strings', `array of length ${spec.vocab.length + 1}`],
    },
    {
      name: 'pad token not in vocab',
      change: { pad_token: '<pad>' },
      field: 'tokenizer.vocab',
      fragments: ['pad_token', '"<pad>"'],
    },
    {
      name: 'unk token not in vocab',
      change: { unk_token: '<unk>' },
      field: 'tokenizer.vocab',
      fragments: ['unk_token', '"<unk>"'],
    },
  ];

  it.each(cases)('rejects a bad $name ($field)', async ({ name, change, field, fragments }) => {
    const error = await loadError(
      name.replaceAll(' ', '-'),
      JSON.stringify({ ...good, ...change }),
    );
    const code: VlaErrorCode = 'INVALID_MANIFEST';
    expect(error.code).toBe(code);
    expect(error.field).toBe(field);
    expect(error.message).toContain('Expected');
    for (const f of fragments) expect(error.message).toContain(f);
  });

  it('rejects JSON that is not an object', async () => {
    const error = await loadError('null', 'null');
    expect(error.code).toBe('INVALID_MANIFEST');
    expect(error.field).toBe('tokenizer');
    expect(error.message).toContain('an object');
    expect(error.message).toContain('received null');
  });

  it('rejects a file that is not JSON, and a missing file, as MODEL_FILE', async () => {
    const bad = await loadError('not-json', '{"type": "word-level",');
    expect(bad.code).toBe('MODEL_FILE');
    expect(bad.field).toBe('tokenizer');
    expect(bad.message).toContain(join(dir, 'not-json.json'));

    const missingPath = join(dir, 'missing.json');
    const missing = await WordTokenizer.load(missingPath).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(ModelError);
    expect((missing as ModelError).code).toBe('MODEL_FILE');
    expect((missing as ModelError).message).toContain(missingPath);
  });
});
