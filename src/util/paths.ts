/**
 * Output paths checked against input paths before anything is written: a command never truncates
 * its own input (the same file by another name, a hard link or a symlink included), never writes
 * into a bag folder or model package it reads, and never replaces an existing file unless told to.
 */

import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute, sep } from 'node:path';
import { ConfigError, printable } from '../errors.js';

/** A path a command reads. */
export interface InputPath {
  /** What it is, for the message: `BAG`, `the model package`, `--params`. */
  readonly what: string;
  readonly path: string;
  /** A folder nothing may be written into (a bag folder, a model package). Default false. */
  readonly enclosing?: boolean;
}

/** A path a command writes. */
export interface OutputPath {
  /** The option that names it, e.g. `out` (shown as `--out`). */
  readonly flag: string;
  readonly path: string;
  /**
   * When the output is a folder: the names of the files the command writes in it (each is checked
   * like a file output). Absent when the output is one file.
   */
  readonly files?: readonly string[];
}

export interface GuardOptions {
  /** Replace existing output files (never an input, never something that is not a regular file). */
  readonly force: boolean;
}

/** The canonical absolute path: symlinks resolved as far as the path exists. */
async function canonical(path: string): Promise<string> {
  const absolute = resolve(path);
  try {
    return await realpath(absolute);
  } catch {
    const parent = dirname(absolute);
    if (parent === absolute) return absolute;
    return join(await canonical(parent), basename(absolute));
  }
}

function inside(child: string, folder: string): boolean {
  const rel = relative(folder, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

async function statOrUndefined(path: string) {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

/**
 * Refuse, with a {@link ConfigError} naming the option, an output that is one of the inputs (by
 * canonical path or by inode), that lies inside an enclosing input folder, that exists but is not
 * a regular file, or that exists and `force` is not set. Inputs that do not exist are ignored
 * (their own loader reports them).
 *
 * @example
 * await guardOutputs([{ flag: 'out', path: out }], [{ what: 'BAG', path: bag, enclosing: true }], { force: false });
 */
export async function guardOutputs(
  outputs: readonly OutputPath[],
  inputs: readonly InputPath[],
  options: GuardOptions,
): Promise<void> {
  const ins = await Promise.all(
    inputs.map(async (i) => {
      const real = await canonical(i.path);
      return { ...i, real, info: await statOrUndefined(real) };
    }),
  );
  for (const out of outputs) {
    const flag = `--${out.flag}`;
    const folder = await canonical(out.path);
    const targets =
      out.files === undefined ? [folder] : [folder, ...out.files.map((f) => join(folder, f))];
    for (const input of ins) {
      if (input.info === undefined) continue;
      if (input.enclosing === true && input.info.isDirectory() && inside(folder, input.real)) {
        throw new ConfigError(
          `Expected ${flag} outside ${input.what} (${printable(input.path)}) but ${printable(out.path)} is inside it; write somewhere else`,
          { field: out.flag },
        );
      }
      for (const target of targets) {
        const info = await statOrUndefined(target);
        const same =
          target === input.real ||
          (info !== undefined && info.dev === input.info.dev && info.ino === input.info.ino);
        if (same && (target !== folder || out.files === undefined || !info?.isDirectory())) {
          throw new ConfigError(
            `Expected ${flag} to be a different file from ${input.what} (${printable(input.path)}) but ${printable(target)} is the same file: writing it would destroy the input`,
            { field: out.flag },
          );
        }
      }
    }
    for (const target of out.files === undefined ? targets : targets.slice(1)) {
      const info = await statOrUndefined(target);
      if (info === undefined) continue;
      if (!info.isFile()) {
        throw new ConfigError(
          `Expected ${flag} to name a new or regular file but ${printable(target)} is ${info.isDirectory() ? 'a folder' : 'not a regular file'}`,
          { field: out.flag },
        );
      }
      if (!options.force) {
        throw new ConfigError(
          `Expected ${flag} to name a new file but ${printable(target)} exists; pass --force to overwrite it`,
          { field: out.flag },
        );
      }
    }
  }
}
