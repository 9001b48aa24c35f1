/**
 * Text from outside the process (a client's name, a bag's bytes, a file's first token) made safe
 * to put in a log line or an error message: it can neither end the line, nor move the cursor,
 * recolour the terminal or reorder what follows, nor flood the log.
 */

// C0 and C1 controls (newline, escape, NUL, ...), DEL, and the Unicode characters that break or
// reorder lines: line and paragraph separators, bidirectional embeddings, overrides and isolates,
// and the zero-width joiners and marks that hide text.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

function escape(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  return code <= 0xff
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `s` with every control, line-breaking or text-reordering character written as an escape
 * (`\n`, `\x1b`, `\u202e`), lone surrogates replaced by U+FFFD, and cut to at most `max`
 * characters (then ending in `…`, with the original length).
 *
 * @example printable('robot\n[ok] admin logged in\x1b[2J') // 'robot\\n[ok] admin logged in\\x1b[2J'
 */
export function printable(s: string, max = 200): string {
  const limit = Math.max(1, Math.floor(max));
  // Lone surrogates (half an emoji from a cut buffer) become U+FFFD, as toWellFormed() would.
  const text = s.replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    '\ufffd',
  );
  const escaped = text.replace(UNPRINTABLE, escape);
  if (escaped.length <= limit) return escaped;
  // Never cut inside an escape or a surrogate pair.
  let cut = escaped.slice(0, limit);
  const slash = cut.lastIndexOf('\\');
  if (slash >= 0 && slash > limit - 6) cut = cut.slice(0, slash);
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}… (${text.length} characters)`;
}
