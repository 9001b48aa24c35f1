import { describe, expect, it } from 'vitest';
import { printable } from '../../src/util/printable.js';
import { Rng } from '../../src/util/rng.js';

describe('printable', () => {
  it.each([
    ['plain text', 'arm-1 (lab)', 'arm-1 (lab)'],
    ['a newline', 'a\nb', 'a\\nb'],
    ['a carriage return and tab', 'a\r\tb', 'a\\r\\tb'],
    ['ANSI escapes', '\x1b[2J\x1b[31mred', '\\x1b[2J\\x1b[31mred'],
    ['NUL and DEL', 'a\0b\x7f', 'a\\x00b\\x7f'],
    ['a C1 control', 'a\x9bb', 'a\\x9bb'],
    ['a right-to-left override', 'abc\u202edef', 'abc\\u202edef'],
    ['a line separator', 'a\u2028b', 'a\\u2028b'],
    ['a lone surrogate', 'a\ud800b', 'a\ufffdb'],
    ['non-ASCII letters', 'Grüße 机器人 🤖', 'Grüße 机器人 🤖'],
  ])('escapes %s', (_, input, expected) => {
    expect(printable(input)).toBe(expected);
  });

  it('cuts long text and says how long it was', () => {
    const out = printable('x'.repeat(1000), 20);
    expect(out.startsWith('x'.repeat(20))).toBe(true);
    expect(out).toContain('(1000 characters)');
  });

  it('never returns a control, line-breaking or bidi character, whatever the input', () => {
    const rng = new Rng(77);
    for (let i = 0; i < 2000; i++) {
      const s = String.fromCharCode(
        ...Array.from({ length: rng.int(40) }, () =>
          rng.int(4) === 0 ? 0x2000 + rng.int(0x80) : rng.int(0x100),
        ),
      );
      const out = printable(s, 32);
      // eslint-disable-next-line no-control-regex
      expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/);
      expect(out.length).toBeLessThanOrEqual(32 + 24);
    }
  });
});
