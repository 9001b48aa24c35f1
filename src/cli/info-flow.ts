import * as ort from 'onnxruntime-node';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { printable } from '../errors.js';
import { FlowPolicy } from '../flow/policy.js';
import { FLOW_ROLES, loadFlowPackage, type FlowPackage } from '../model/flow-manifest.js';
import { configuredLimits } from '../pipeline/from-config.js';
import type { CommandIo } from './command.js';
import { checkEachVariant, describeFiles } from './info-variant.js';
import { DEFAULT_FLOW_CACHES } from './sim-flow.js';

/**
 * `vla-node info` for a flow package: the manifest (v2) and every file checked as the runtime
 * loads them, each variant's four graphs opened and checked against the manifest's roles (names,
 * dtypes, ranks, fixed dimensions), then one warm-up inference on grey frames per variant.
 * Errors keep their class and code and name the variant and the field.
 */
export async function flowInfo(config: Readonly<VlaConfig>, io: CommandIo): Promise<number> {
  const pkg: FlowPackage = await loadFlowPackage(resolvePackagePath(config.model.path));
  const m = pkg.manifest;
  const checked = await checkEachVariant(pkg.dir, m.variants, FLOW_ROLES, io, async (v) => {
    const only: FlowPackage = { ...pkg, manifest: { ...m, variants: [v] } };
    let policy: FlowPolicy | undefined;
    try {
      policy = await FlowPolicy.create(only, {
        precision: v.precision,
        pruning: { strategy: 'none', keepRatio: 1, keepCount: 0, seed: 0 },
        caches: DEFAULT_FLOW_CACHES,
        limits: configuredLimits(config, m),
        intraOpThreads: config.backend.intra_op_threads,
      });
      const images = m.cameras.map((c) => ({
        kind: 'raw' as const,
        width: c.image.width,
        height: c.image.height,
        encoding: 'rgb8',
        data: new Uint8Array(c.image.width * c.image.height * 3).fill(128),
      }));
      const r = await policy.infer({
        images,
        instruction: 'move to the red block',
        state: m.state.mean,
        seed: 0,
      });
      return Math.round(r.timings.total * 1000) / 1000;
    } finally {
      await policy?.release();
    }
  });
  const variants = checked.map(({ warmup, files, ...v }) => ({ ...v, warmup_ms: warmup, files }));
  const info = {
    model: {
      name: m.name,
      path: pkg.dir,
      format: m.format,
      family: m.family,
      description: m.description ?? '',
      cameras: m.cameras,
      visual_tokens: m.cameras.reduce((n, c) => n + c.patch_grid.width * c.patch_grid.height, 0),
      token_dim: m.token_dim,
      chunk: m.chunk,
      prefix: m.prefix,
      denoising: m.denoising,
      control_rate_hz: m.control_rate_hz,
      action_names: m.action.names,
      state_names: m.state.names,
    },
    variants,
    onnxruntime: ort.env.versions,
    node: process.versions.node,
  };
  const human = [
    `${printable(m.name)} (${m.format}, family ${m.family}): ${printable(m.description ?? '')}`,
    `  ${printable(pkg.dir)}`,
    `  cameras: ${m.cameras.map((c) => `${printable(c.name)} ${c.image.width}×${c.image.height} (${c.patch_grid.width}×${c.patch_grid.height} tokens)`).join(', ')}; token dim ${m.token_dim}`,
    `  prefix: ${m.prefix.layers} layers × ${m.prefix.heads} heads × ${m.prefix.head_dim} (instruction attention ${m.prefix.instruction_attention}); denoising ${m.denoising.method} × ${m.denoising.steps} steps`,
    `  chunk ${m.chunk.horizon} × ${m.chunk.action_dim} [${printable(m.action.names.join(', '))}] at ${m.control_rate_hz} Hz`,
    'variants:',
    ...variants.map(
      (v) =>
        `  ${printable(v.name)} (${v.precision}): ${describeFiles(v.files)}; warm-up passed (${v.warmup_ms} ms)`,
    ),
  ].join('\n');
  io.result(info, human);
  return 0;
}
