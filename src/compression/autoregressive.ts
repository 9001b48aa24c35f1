/**
 * INT8 of an autoregressive package (dynamic: int8 weights, activations quantized at run time) with
 * its gate: the encoder, prefill and decoder graphs quantized, and the instruction graph where the
 * package has one (like the others: its words' cache feeds every frame's prefill, so the gate
 * below measures its error; the patch embedding and the logits head kept in float by default),
 * then scored against fp32 on held-out observations (greedy chunks
 * equal to fp32's, action error), in closed loop (success drop) and in time per chunk. The variant,
 * its report and the manifest entry are written only after everything was measured; `passed` in
 * the report says whether the gate holds (a failed variant is written too, for inspection, as the
 * encoder + policy compress does).
 */
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InputError } from '../errors.js';
import { FrameIngest } from '../ingest/ingest.js';
import {
  arRoles,
  loadArManifest,
  selectArVariant,
  type ArGraphRole,
  type ArVariant,
} from '../model/ar-manifest.js';
import { ArPolicy } from '../policy/autoregressive/policy.js';
import { encodeOnnx, graphOf, loadOnnx } from '../util/onnx-graph.js';
import { median, round } from '../util/stats.js';
import { sha256Bytes } from '../model/files.js';
import type { CompressionEvaluator } from './options.js';
import { defaultExclusions, planQuantization, quantizeModel } from './quantize.js';

/** What {@link compressArPackage} needs. */
export interface ArCompressOptions {
  readonly model: string;
  /** Node names kept in float (any graph); undefined: the defaults; empty: none. */
  readonly exclude?: readonly string[];
  /** Held-out observations compared with fp32, and their seed. */
  readonly heldOut: number;
  /** Closed-loop episodes per variant and their seed. */
  readonly episodes: number;
  readonly seed: number;
  /** Gate: fraction of held-out chunks whose greedy tokens equal fp32's. */
  readonly chunkAgreement: number;
  /** Gate: mean absolute action error per dimension (the manifest's action units). */
  readonly errorThreshold: number;
  /** Gate: success may drop at most this many points. */
  readonly successTolerance: number;
  /** Timed chunks per variant. */
  readonly latencyRounds: number;
  readonly progress: (line: string) => void;
  readonly evaluator: CompressionEvaluator;
}

/** The report written to `reports/int8-dynamic.json` (gate and latency as `variantGate` reads them). */
export interface ArCompressionReport {
  readonly format: 'vla-node/ar-compression-report@1';
  readonly variant: string;
  readonly precision: 'int8';
  readonly mode: 'dynamic';
  readonly excluded: Readonly<Partial<Record<ArGraphRole, readonly string[]>>>;
  readonly quantized_nodes: Readonly<Partial<Record<ArGraphRole, number>>>;
  readonly held_out: {
    readonly observations: number;
    readonly seed: number;
    readonly chunks_equal_to_fp32: number;
    readonly tokens_equal_to_fp32: number;
  };
  readonly action_error: { readonly mean_abs: number[]; readonly max_abs: number[] };
  readonly closed_loop: {
    readonly episodes: number;
    readonly seed: number;
    readonly fp32_success_rate: number;
    readonly int8_success_rate: number;
  };
  readonly latency: {
    readonly provider: 'cpu';
    readonly rounds: number;
    readonly fp32_chunk_p50_ms: number;
    readonly int8_chunk_p50_ms: number;
    readonly ratio: { readonly total: number };
  };
  readonly size_bytes: { readonly fp32: number; readonly int8: number; readonly ratio: number };
  readonly gate: {
    readonly provider: 'cpu';
    readonly passed: boolean;
    readonly reasons: string[];
    readonly chunk_agreement: number;
    readonly error_threshold: number;
    readonly success_tolerance_points: number;
  };
}

const VARIANT = 'int8-dynamic';
const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** A hard link where the file system allows one (large graphs), a copy otherwise. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

/**
 * Quantize, measure, gate and add the `int8-dynamic` variant of the autoregressive package in
 * `options.model` (replacing an earlier one of that name).
 *
 * @throws {ModelError} a package that does not load or graphs the quantizer does not handle.
 * @throws {InputError} `exclude` naming no node of the graphs.
 */
export async function compressArPackage(options: ArCompressOptions): Promise<ArCompressionReport> {
  const pkg = await loadArManifest(options.model);
  const fp32 = selectArVariant(pkg, 'fp32');
  const roles = arRoles(pkg.manifest);
  const fp32Path = (r: ArGraphRole): string => (fp32.files[r] as { path: string }).path;
  const bytes = {} as Record<ArGraphRole, Uint8Array>;
  const excluded = {} as Partial<Record<ArGraphRole, string[]>>;
  const quantized = {} as Partial<Record<ArGraphRole, number>>;
  const known = new Set<string>();
  for (const role of roles) {
    const field = `manifest.variants.fp32.files.${role}`;
    const model = await loadOnnx(join(pkg.dir, fp32Path(role)), field);
    graphOf(model).node.forEach((n) => known.add(n.name));
    // The instruction graph ends at the words' keys and values: it has no logits head to keep.
    const exclude =
      options.exclude ??
      (role === 'instruction'
        ? []
        : defaultExclusions(model, role === 'encoder' ? 'encoder' : 'policy'));
    const targets = planQuantization(model, new Set(exclude), `graphs.${role}`);
    excluded[role] = exclude.filter((e) => graphOf(model).node.some((n) => n.name === e));
    quantized[role] = targets.length;
    bytes[role] = encodeOnnx(quantizeModel(model, targets, 'dynamic'));
    options.progress(`${role}: ${targets.length} weight nodes quantized`);
  }
  const unknown = (options.exclude ?? []).filter((e) => !known.has(e));
  if (unknown.length > 0)
    throw new InputError(
      `Expected --exclude to name nodes of the graphs but ${unknown.map((u) => JSON.stringify(u)).join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not one`,
      { field: 'exclude' },
    );

  const files = Object.fromEntries(
    roles.map((r) => [r, fp32Path(r).replace(/\.onnx$/, `.${VARIANT}.onnx`)]),
  ) as Record<ArGraphRole, string>;
  const reportPath = `reports/${VARIANT}.json`;
  const variant: ArVariant = {
    name: VARIANT,
    precision: 'int8',
    files: Object.fromEntries(
      roles.map((r) => [r, { path: files[r], sha256: sha256Bytes(bytes[r]) }]),
    ) as ArVariant['files'],
    report: reportPath,
    providers: ['cpu'],
  };
  const raw = JSON.parse(await readFile(join(pkg.dir, 'manifest.json'), 'utf8')) as {
    variants: { name: string }[];
  };
  raw.variants = [...raw.variants.filter((v) => v.name !== VARIANT), variant];
  const manifestText = `${JSON.stringify(raw, null, 2)}\n`;

  // The candidate package is staged in a folder inside the package (same file system: the fp32
  // graphs are hard links) so that the runtime loads it exactly as it will load the result.
  const work = join(pkg.dir, `.compress-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  try {
    await mkdir(join(work, 'reports'), { recursive: true });
    // Every variant the manifest keeps must load there too.
    const kept = new Set(
      pkg.manifest.variants
        .filter((v) => v.name !== VARIANT)
        .flatMap((v) => roles.map((r) => (v.files[r] as { path: string }).path)),
    );
    for (const path of kept) {
      await mkdir(join(work, path, '..'), { recursive: true });
      await linkOrCopy(join(pkg.dir, path), join(work, path));
    }
    for (const role of roles) {
      await mkdir(join(work, files[role], '..'), { recursive: true });
      await writeFile(join(work, files[role]), bytes[role]);
    }
    await linkOrCopy(
      join(pkg.dir, pkg.manifest.tokenizer.file),
      join(work, pkg.manifest.tokenizer.file),
    );
    await writeFile(join(work, 'manifest.json'), manifestText);

    const m = await measure(work, options);
    const { fp32: f, int8: q } = m.closedLoop;
    const reasons: string[] = [];
    if (m.chunksEqual < options.chunkAgreement)
      reasons.push(
        `${round(100 * m.chunksEqual, 1)}% of held-out chunks equal fp32's (gate: >= ${round(100 * options.chunkAgreement, 1)}%)`,
      );
    m.meanAbs.forEach((e, i) => {
      if (e > options.errorThreshold)
        reasons.push(
          `mean action error ${e} in ${pkg.manifest.action.names[i] ?? i} (gate: <= ${options.errorThreshold})`,
        );
    });
    const drop = 100 * (f - q);
    if (drop > options.successTolerance)
      reasons.push(
        `success ${round(100 * q, 1)}% vs fp32 ${round(100 * f, 1)}% (gate: drop <= ${options.successTolerance} points)`,
      );
    const size = async (paths: readonly string[]): Promise<number> =>
      (await Promise.all(paths.map((p) => stat(join(work, p))))).reduce((a, s) => a + s.size, 0);
    const fp32Bytes = await size(roles.map(fp32Path));
    const int8Bytes = await size(roles.map((r) => files[r]));
    const report: ArCompressionReport = {
      format: 'vla-node/ar-compression-report@1',
      variant: VARIANT,
      precision: 'int8',
      mode: 'dynamic',
      excluded,
      quantized_nodes: quantized,
      held_out: {
        observations: options.heldOut,
        seed: options.seed,
        chunks_equal_to_fp32: round(m.chunksEqual, 4),
        tokens_equal_to_fp32: round(m.tokensEqual, 4),
      },
      action_error: { mean_abs: m.meanAbs, max_abs: m.maxAbs },
      closed_loop: {
        episodes: options.episodes,
        seed: options.seed,
        fp32_success_rate: f,
        int8_success_rate: q,
      },
      latency: {
        provider: 'cpu',
        rounds: options.latencyRounds,
        fp32_chunk_p50_ms: round(m.fp32Ms, 3),
        int8_chunk_p50_ms: round(m.int8Ms, 3),
        ratio: { total: round(m.int8Ms / m.fp32Ms, 3) },
      },
      size_bytes: { fp32: fp32Bytes, int8: int8Bytes, ratio: round(int8Bytes / fp32Bytes, 3) },
      gate: {
        provider: 'cpu',
        passed: reasons.length === 0,
        reasons,
        chunk_agreement: options.chunkAgreement,
        error_threshold: options.errorThreshold,
        success_tolerance_points: options.successTolerance,
      },
    };
    // Commit: graphs and report first, the manifest that names them last.
    await writeFile(join(work, reportPath), `${JSON.stringify(report, null, 2)}\n`);
    await mkdir(join(pkg.dir, 'reports'), { recursive: true });
    for (const role of roles) await rename(join(work, files[role]), join(pkg.dir, files[role]));
    await rename(join(work, reportPath), join(pkg.dir, reportPath));
    await rename(join(work, 'manifest.json'), join(pkg.dir, 'manifest.json'));
    return report;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface Measured {
  readonly chunksEqual: number;
  readonly tokensEqual: number;
  readonly meanAbs: number[];
  readonly maxAbs: number[];
  readonly fp32Ms: number;
  readonly int8Ms: number;
  readonly closedLoop: { readonly fp32: number; readonly int8: number };
}

/** Held-out agreement and error, time per chunk, and both closed loops of the staged package. */
async function measure(dir: string, options: ArCompressOptions): Promise<Measured> {
  const fp32 = await ArPolicy.load(dir, THREADS, { precision: 'fp32' });
  const int8 = await ArPolicy.load(dir, THREADS, { precision: 'int8' }).catch(
    async (error: unknown) => {
      await fp32.close();
      throw error;
    },
  );
  try {
    const { image, normalisation, actionDim } = fp32.pkg;
    const ingest = new FrameIngest({ width: image.width, height: image.height, ...normalisation });
    const samples = options.evaluator.heldOut(options.heldOut, options.seed);
    const observations = [];
    for (const s of samples) {
      const rgb = await ingest.toRgb(s.frame);
      const pixels = new Float32Array(3 * image.width * image.height);
      ingest.normalise(rgb, pixels);
      observations.push({
        pixels,
        rgb,
        instruction: s.instruction,
        state: Float32Array.from(s.state),
      });
    }
    let chunksEqual = 0;
    let tokensEqual = 0;
    let tokens = 0;
    const sum = new Float64Array(actionDim);
    const maxAbs = new Float64Array(actionDim);
    let values = 0;
    for (const obs of observations) {
      const a = await fp32.act(obs, { strategy: 'greedy' });
      const b = await int8.act(obs, { strategy: 'greedy' });
      if (a.tokens.length === b.tokens.length && a.tokens.every((t, i) => t === b.tokens[i]))
        chunksEqual++;
      tokens += a.tokens.length;
      tokensEqual += a.tokens.filter((t, i) => t === b.tokens[i]).length;
      a.actions.forEach((v, i) => {
        const d = Math.abs(v - (b.actions[i] as number));
        const j = i % actionDim;
        sum[j] = (sum[j] as number) + d;
        maxAbs[j] = Math.max(maxAbs[j] as number, d);
      });
      values += a.actions.length / actionDim;
    }
    options.progress(`held out: ${chunksEqual}/${observations.length} chunks equal fp32's`);
    // Alternate the variants so that load on the machine falls on both alike.
    const times = { fp32: [] as number[], int8: [] as number[] };
    for (let i = 0; i < options.latencyRounds; i++) {
      const obs = observations[i % observations.length];
      if (obs === undefined) break;
      for (const [name, policy] of [
        ['fp32', fp32],
        ['int8', int8],
      ] as const) {
        const start = performance.now();
        await policy.act(obs, { strategy: 'greedy' });
        times[name].push(performance.now() - start);
      }
    }
    options.progress('closed loop: fp32');
    const run = { episodes: options.episodes, seed: options.seed };
    const f = await options.evaluator.closedLoop(dir, 'fp32', run);
    options.progress('closed loop: int8');
    const q = await options.evaluator.closedLoop(dir, 'int8', run);
    return {
      chunksEqual: chunksEqual / Math.max(1, observations.length),
      tokensEqual: tokensEqual / Math.max(1, tokens),
      meanAbs: Array.from(sum, (s) => round(s / Math.max(1, values), 6)),
      maxAbs: Array.from(maxAbs, (v) => round(v, 6)),
      fp32Ms: median(times.fp32),
      int8Ms: median(times.int8),
      closedLoop: { fp32: f.rate, int8: q.rate },
    };
  } finally {
    await Promise.all([fp32.close(), int8.close()]);
  }
}
