/**
 * The project's error vocabulary. Every error a user can cause (bad input, bad model, bad
 * configuration) is one of these classes, carries a stable `code`, and says what was expected and
 * what was received, naming the field.
 */

import { printable } from './util/printable.js';

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

/**
 * Base class of every error vla-node throws on purpose: `code` is stable, `field` names what was
 * wrong. The library's codes are {@link VlaErrorCode}s; a family with its own wire vocabulary
 * (the bridge's `BridgeError`) narrows `Code`, and `instanceof VlaError` still catches it.
 */
export class VlaError<Code extends string = VlaErrorCode> extends Error {
  readonly code: Code;
  readonly field: string | undefined;

  constructor(code: Code, message: string, options: VlaErrorOptions = {}) {
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
 * Text that came from outside (a bag, a manifest, a request, a client's name) made safe to quote in
 * an error message or log line. One implementation, in util/printable.ts; re-exported here because
 * every error message that quotes external data goes through it (or {@link describe}).
 */
export { printable };

/** Describe a received value briefly for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string')
    return printable(
      JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value),
      Infinity,
    );
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of ${value.byteLength} bytes`;
  return typeof value;
}
