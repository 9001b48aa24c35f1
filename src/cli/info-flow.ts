import { configuredLimits, resolvePackagePath, type VlaConfig } from '../config/index.js';
import { printable } from '../errors.js';
import { FlowPolicy } from '../flow/policy.js';
import { FLOW_ROLES, loadFlowPackage, type FlowPackage } from '../model/flow-manifest.js';
import type { CommandIo } from './command.js';
import { checkEachVariant } from './info-variant.js';
import { v2Human, v2Info } from './info-v2.js';
import { DEFAULT_FLOW_CACHES } from '../flow/from-config.js';

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
  const info = v2Info(
    pkg.dir,
    m,
    { prefix: m.prefix, denoising: m.denoising },
    checked.map(({ warmup, files, ...v }) => ({ ...v, warmup_ms: warmup, files })),
  );
  const human = v2Human(
    pkg.dir,
    m,
    [
      `  cameras: ${m.cameras.map((c) => `${printable(c.name)} ${c.image.width}×${c.image.height} (${c.patch_grid.width}×${c.patch_grid.height} tokens)`).join(', ')}; token dim ${m.token_dim}`,
      `  prefix: ${m.prefix.layers} layers × ${m.prefix.heads} heads × ${m.prefix.head_dim} (instruction attention ${m.prefix.instruction_attention}); denoising ${m.denoising.method} × ${m.denoising.steps} steps`,
    ],
    checked,
    (ms) => `${ms} ms`,
  );
  io.result(info, human);
  return 0;
}
