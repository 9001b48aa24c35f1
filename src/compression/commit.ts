/**
 * Writing a variant into its package atomically: its files and the manifest with the variant
 * added are staged under temporary names and renamed only when all were written.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** A file to write: an absolute path and its contents. */
export interface StagedFile {
  readonly path: string;
  readonly data: string | Uint8Array;
}

/**
 * Write `files` and the package manifest with `variant` added (or replacing the variant of the
 * same name): every file goes to a temporary name next to its target first, and only when all
 * were written are they renamed, so a failure leaves the package as it was.
 */
export async function commitVariant(
  dir: string,
  files: readonly StagedFile[],
  variant: { readonly name: string },
): Promise<void> {
  const staged: [string, string][] = [];
  try {
    for (const f of files) {
      await mkdir(dirname(f.path), { recursive: true });
      staged.push([await writeTemporary(f.path, f.data), f.path]);
    }
    const manifestPath = join(dir, 'manifest.json');
    const text = await readFile(manifestPath, 'utf8');
    const variants = [...(JSON.parse(text) as { variants: { name: string }[] }).variants];
    const at = variants.findIndex((v) => v.name === variant.name);
    if (at >= 0) variants[at] = variant;
    else variants.push(variant);
    staged.push([await writeTemporary(manifestPath, withVariants(text, variants)), manifestPath]);
  } catch (error) {
    await Promise.all(staged.map(([tmp]) => rm(tmp, { force: true })));
    throw error;
  }
  for (const [tmp, target] of staged) await rename(tmp, target);
}

async function writeTemporary(path: string, data: string | Uint8Array): Promise<string> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  return tmp;
}

/**
 * The manifest text with its top-level `variants` array replaced, leaving every other byte as it
 * was (numbers such as `0.0` keep their spelling).
 */
export function withVariants(text: string, variants: readonly object[]): string {
  const key = text.indexOf('"variants"');
  const open = key < 0 ? -1 : text.indexOf('[', key);
  let close = -1;
  if (open >= 0) {
    let depth = 0;
    let inString = false;
    for (let i = open; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
      } else if (c === '"') inString = true;
      else if (c === '[' || c === '{') depth++;
      else if (c === ']' || c === '}') {
        depth--;
        if (depth === 0) {
          close = i;
          break;
        }
      }
    }
  }
  if (close < 0) {
    const raw = JSON.parse(text) as Record<string, unknown>;
    return `${JSON.stringify({ ...raw, variants }, null, 2)}\n`;
  }
  const body = JSON.stringify(variants, null, 2).replace(/\n/g, '\n  ');
  return `${text.slice(0, open)}${body}${text.slice(close + 1)}`;
}
