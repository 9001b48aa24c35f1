/**
 * The files of a model package, confined to its folder: every path a manifest names is relative,
 * stays inside the package after `..` and symlinks are resolved, is a regular file (not a FIFO, a
 * device or a folder) and is no larger than its kind allows. Checked before anything is opened.
 */

import { createHash } from 'node:crypto';
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ModelError, printable } from '../errors.js';

const MiB = 1024 * 1024;

/** Largest size of each kind of package file, in bytes. */
export const PACKAGE_LIMITS = Object.freeze({
  /** manifest.json: a few KiB in practice; 64 variants with long reports stay far below. */
  manifestBytes: 4 * MiB,
  /** JSON files the manifest names (tokenizer, variant reports). */
  jsonBytes: 64 * MiB,
  /**
   * One ONNX graph. ONNX's protobuf encoding cannot exceed 2 GiB in one file (larger models keep
   * their weights in external data files, which vla-node does not load).
   */
  graphBytes: 2 * 1024 * MiB,
});

function inside(child: string, folder: string): boolean {
  const rel = relative(folder, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

export interface PackageFileOptions {
  /** Largest size accepted, in bytes. */
  readonly maxBytes: number;
  /** When false, a file that does not exist is accepted (returns its path unchecked). */
  readonly mustExist?: boolean;
}

/**
 * The absolute, symlink-free path of `path` (as a manifest writes it) inside the package folder
 * `root`, after checking that it is relative, stays inside the package, is a regular file and is at
 * most `maxBytes` long.
 *
 * @param field the manifest field the error names, e.g. `manifest.variants[0].files.encoder.path`
 * @throws {ModelError} `MODEL_FILE` naming the field.
 */
export function packageFile(
  root: string,
  path: string,
  field: string,
  options: PackageFileOptions,
): string {
  const fail = (what: string): never => {
    throw new ModelError(
      'MODEL_FILE',
      `Expected ${field} to name a file inside the package ${printable(root)} but ${printable(JSON.stringify(path))} ${what}`,
      { field },
    );
  };
  if (path.includes('\0')) fail('contains a NUL character');
  if (isAbsolute(path) || /^[a-zA-Z]:/.test(path) || path.startsWith('\\')) {
    fail('is absolute (paths in a manifest are relative to the package folder)');
  }
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch (cause) {
    throw new ModelError('MODEL_FILE', `Expected a model package folder at ${printable(root)}`, {
      field,
      cause,
    });
  }
  const joined = resolve(realRoot, path);
  if (!inside(joined, realRoot)) fail('leads outside it');
  let real: string;
  try {
    real = realpathSync(joined);
  } catch (cause) {
    if (options.mustExist === false) return joined;
    throw new ModelError(
      'MODEL_FILE',
      `Expected model file ${printable(path)} in ${printable(root)} but it cannot be read`,
      { field, cause },
    );
  }
  if (!inside(real, realRoot)) fail('is a symbolic link that leads outside it');
  const info = statSync(real);
  if (!info.isFile()) {
    fail(`is ${info.isDirectory() ? 'a folder' : 'not a regular file (a FIFO, socket or device)'}`);
  }
  if (info.size > options.maxBytes) {
    fail(`is ${info.size} bytes, more than the ${options.maxBytes} bytes allowed for it`);
  }
  return real;
}

/** The hex SHA-256 of bytes in memory (a graph just written), as a manifest records it. */
export function sha256Bytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The SHA-256 of a file, read in blocks (graphs can be up to {@link PACKAGE_LIMITS.graphBytes}). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const block of createReadStream(path)) hash.update(block as Buffer);
  return hash.digest('hex');
}
