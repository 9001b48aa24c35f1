import * as ort from 'onnxruntime-node';
import { providerAvailability } from '../backend/onnx.js';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { isArPackage } from '../model/ar-manifest.js';
import { isFlowPackage } from '../model/flow-manifest.js';
import { arInfo } from './info-ar.js';
import { flowInfo } from './info-flow.js';
import { printable } from '../errors.js';
import { GRAPH_ROLES, type ModelPackage, type Variant } from '../model/manifest.js';
import { VlaPipeline } from '../pipeline/pipeline.js';
import type { CommandIo, CommandSpec } from './command.js';
import { checkEachVariant } from './info-variant.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

/** What `info` found when it ran a variant as `sim` would. */
interface VariantCheck {
  readonly provider: string;
  readonly kept_tokens: number;
  readonly total_tokens: number;
}

/**
 * Load one variant exactly as `sim`/`start` do (sessions on the configured providers, graph checks
 * against the manifest, the pruner and safety set up) and run a warm-up inference on a grey frame,
 * so that `info` exits 0 only for packages the node can run. Errors keep their class and code
 * ({@link checkEachVariant} names the variant in them).
 */
async function checkVariant(
  pkg: ModelPackage,
  variant: Variant,
  config: Readonly<VlaConfig>,
  io: CommandIo,
): Promise<VariantCheck> {
  const only: ModelPackage = { ...pkg, manifest: { ...pkg.manifest, variants: [variant] } };
  let pipeline: VlaPipeline | undefined;
  try {
    pipeline = await VlaPipeline.create(only, {
      ...pipelineOptions(config, (line) => {
        io.progress(line);
      }),
      precision: variant.precision,
      warmupRuns: Math.max(1, config.backend.warmup_runs),
    });
    return {
      provider: pipeline.provider,
      kept_tokens: pipeline.tokenBudget,
      total_tokens: pipeline.totalTokens,
    };
  } finally {
    await pipeline?.release();
  }
}

export const infoCommand: CommandSpec = {
  name: 'info',
  summary:
    'check a model package as the node would load it (manifest, confined files, hashes, graphs, one warm-up inference per variant) and print it with the execution providers available here; exits 1 with the typed error when any variant cannot run',
  options: {
    model: { type: 'string', help: 'model package folder (model.path)' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs(values, { model: 'model.path' });
    // Flow-matching packages (format vla-node/model@2): their own roles and runtime.
    if (await isFlowPackage(resolvePackagePath(config.model.path))) return flowInfo(config, io);
    // Autoregressive packages (format vla-node/model@2, family autoregressive): three roles, ArPolicy.
    if (await isArPackage(resolvePackagePath(config.model.path))) return arInfo(config, io);
    const pkg = await modelFromConfig(config);
    const m = pkg.manifest;
    const checked = await checkEachVariant(
      pkg.dir,
      m.variants,
      GRAPH_ROLES,
      io,
      (v) => checkVariant(pkg, v, config, io),
      'sessions, graphs, warm-up',
    );
    // `check` is this family's name for the warm-up's result (before `files`, as always).
    const variants = checked.map(({ warmup, files, ...v }) => ({ ...v, check: warmup, files }));
    const providers = providerAvailability();
    const info = {
      model: {
        name: m.name,
        path: pkg.dir,
        description: m.description ?? '',
        image: m.image,
        patch_grid: m.patch_grid,
        visual_tokens: m.patch_grid.width * m.patch_grid.height,
        token_dim: m.token_dim,
        chunk: m.chunk,
        control_rate_hz: m.control_rate_hz,
        action_names: m.action.names,
        state_names: m.state.names,
      },
      variants,
      execution_providers: providers,
      configured_providers: config.backend.execution_providers,
      onnxruntime: ort.env.versions,
      node: process.versions.node,
    };
    const human = [
      `${printable(m.name)}: ${printable(m.description ?? '')}`,
      `  ${printable(pkg.dir)}`,
      `  image ${m.image.width}×${m.image.height} (${m.image.resize}), ${info.model.visual_tokens} visual tokens (${m.patch_grid.width}×${m.patch_grid.height} grid, dim ${m.token_dim})`,
      `  chunk ${m.chunk.horizon} × ${m.chunk.action_dim} [${printable(m.action.names.join(', '))}] at ${m.control_rate_hz} Hz; state [${printable(m.state.names.join(', '))}]`,
      'variants:',
      ...variants.map(
        (v) =>
          `  ${printable(v.name)} (${v.precision}): ${printable(v.files.encoder.path)} ${(v.files.encoder.bytes / 1024).toFixed(0)} KiB, ${printable(v.files.policy.path)} ${(v.files.policy.bytes / 1024).toFixed(0)} KiB; ran on ${v.check.provider} (warm-up passed, ${v.check.kept_tokens}/${v.check.total_tokens} tokens)`,
      ),
      `execution providers (configured: ${config.backend.execution_providers.join(' → ')}):`,
      ...providers.map(
        (p) => `  ${p.provider.padEnd(9)}${p.available ? 'available' : 'unavailable'}: ${p.reason}`,
      ),
      `onnxruntime-node ${ort.env.versions.node ?? '?'}, Node.js ${process.versions.node}`,
    ].join('\n');
    io.result(info, human);
    return 0;
  },
};
