/**
 * The project's error vocabulary. Every error a user can cause (bad input, bad model, bad
 * configuration) is one of these classes, carries a stable `code`, and says what was expected and
 * what was received, naming the field.
 */

/** Stable machine-readable error codes. */
export type VlaErrorCode =
  | 'INVALID_INPUT'
  | 'INVALID_MANIFEST'
  | 'MODEL_FILE'
  | 'MODEL_MISMATCH'
  | 'INVALID_CONFIG'
  | 'BACKEND'
  | 'UNSAFE_ACTION'
  | 'ROS_UNAVAILABLE';

export interface VlaErrorOptions {
  /** The field or path the error is about, e.g. `image.encoding` or `manifest.inputs[0].shape`. */
  readonly field?: string;
  readonly cause?: unknown;
}

/** Base class: `code` is stable, `field` names what was wrong. */
export class VlaError extends Error {
  readonly code: VlaErrorCode;
  readonly field: string | undefined;

  constructor(code: VlaErrorCode, message: string, options: VlaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.field = options.field;
  }
}

/** A frame, message or request that cannot be used (wrong size, unknown encoding, corrupt bytes). */
export class InputError extends VlaError {
  constructor(message: string, options: VlaErrorOptions = {}) {
    super('INVALID_INPUT', message, options);
  }
}

/** A model package whose manifest is malformed, whose files are missing or corrupt, or whose
 * manifest disagrees with its ONNX graphs. */
export class ModelError extends VlaError {}

/** A configuration (parameter file, CLI flag) that does not satisfy the schema. */
export class ConfigError extends VlaError {
  constructor(message: string, options: VlaErrorOptions = {}) {
    super('INVALID_CONFIG', message, options);
  }
}

/** ONNX Runtime failed to create a session or to run. */
export class BackendError extends VlaError {
  constructor(message: string, options: VlaErrorOptions = {}) {
    super('BACKEND', message, options);
  }
}

/**
 * Characters that must never reach a terminal raw: C0 controls (NUL, ESC, newline...), DEL, C1
 * controls (U+009B is a one-byte CSI on many terminals), lone surrogates, the line and paragraph
 * separators and the bidirectional overrides that reorder what a reader sees.
 */
const UNPRINTABLE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, '0')}`
    : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Text that came from outside (a bag, a manifest, a request, a file name) made safe to quote in an
 * error message or log line: control characters, escape sequences and bidirectional overrides are
 * written as `\xNN` / `\uNNNN` escapes, and text longer than `max` characters is cut with `...`.
 * Every message that quotes external data goes through this (or {@link describe}), so a crafted
 * file cannot forge log lines or drive the terminal.
 *
 * @example
 * printable('topic\u001b[2J') // 'topic\\x1b[2J'
 */
export function printable(text: string, max = 200): string {
  const cut = text.length > max ? `${text.slice(0, Math.max(0, max - 3))}...` : text;
  return cut.replace(UNPRINTABLE, escapeChar);
}

/** Describe a received value briefly for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value).replace(
      UNPRINTABLE,
      escapeChar,
    );
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of ${value.byteLength} bytes`;
  return typeof value;
}
