/**
 * What `vla-node info` does for every variant of every package family: check it with a name in
 * its errors, and list its files as they are on disk.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { printable, VlaError } from '../errors.js';
import type { CommandIo } from './command.js';

/** One graph file of a variant: as the manifest names and hashes it, and its size on disk. */
export interface VariantFile {
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
}

/**
 * Run `check` on variant `name`: an error it throws keeps its class and code, and a VlaError's
 * message starts with the variant's name, so that a package of several variants says which one
 * failed.
 */
async function checkingVariant<T>(name: string, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (error) {
    if (error instanceof VlaError) {
      Object.defineProperty(error, 'message', {
        value: `variant ${printable(name)}: ${error.message}`,
      });
    }
    throw error;
  }
}

/** The files of `roles` in a variant's `files` (paths relative to the package `dir`). */
async function variantFiles<R extends string>(
  dir: string,
  files: Readonly<Record<R, { readonly path: string; readonly sha256: string }>>,
  roles: readonly R[],
): Promise<Record<R, VariantFile>> {
  return Object.fromEntries(
    await Promise.all(
      roles.map(async (role) => {
        const { path, sha256 } = files[role];
        return [role, { path, sha256, bytes: (await stat(join(dir, path))).size }] as const;
      }),
    ),
  ) as Record<R, VariantFile>;
}

/** `role path N KiB, …` for a variant's line in the human output. */
export function describeFiles(files: Readonly<Record<string, VariantFile>>): string {
  return Object.entries(files)
    .map(([role, f]) => `${role} ${printable(f.path)} ${(f.bytes / 1024).toFixed(0)} KiB`)
    .join(', ');
}

/** A variant as `info` checked it: its warm-up's result and its files. */
export interface CheckedVariant<W, R extends string> {
  readonly name: string;
  readonly precision: string;
  readonly warmup: W;
  readonly files: Record<R, VariantFile>;
}

/**
 * Check every variant of the package in `dir`, one after the other (each warm-up loads its own
 * sessions): a progress line naming `steps`, `warmUp` under {@link checkingVariant}, then the
 * files of `roles`.
 */
export async function checkEachVariant<
  V extends {
    readonly name: string;
    readonly precision: string;
    readonly files: Readonly<Record<R, { readonly path: string; readonly sha256: string }>>;
  },
  R extends string,
  W,
>(
  dir: string,
  variants: readonly V[],
  roles: readonly R[],
  io: CommandIo,
  warmUp: (variant: V) => Promise<W>,
  steps = 'graphs, roles, warm-up',
): Promise<CheckedVariant<W, R>[]> {
  const checked: CheckedVariant<W, R>[] = [];
  for (const v of variants) {
    io.progress(`checking variant ${printable(v.name)} (${v.precision}): ${steps}`);
    const warmup = await checkingVariant(v.name, () => warmUp(v));
    const files = await variantFiles(dir, v.files, roles);
    checked.push({ name: v.name, precision: v.precision, warmup, files });
  }
  return checked;
}
