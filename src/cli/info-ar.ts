import { performance } from 'node:perf_hooks';
import { resolvePackagePath, type VlaConfig } from '../config/index.js';
import { printable } from '../errors.js';
import { arRoles, loadArManifest, type ArGraphRole } from '../model/ar-manifest.js';
import { INSTRUCTION_CACHE_SIZE } from '../policy/autoregressive/instruction-cache.js';
import { ArPolicy } from '../policy/autoregressive/policy.js';
import type { CommandIo } from './command.js';
import { checkEachVariant } from './info-variant.js';
import { v2Human, v2Info } from './info-v2.js';

/**
 * `vla-node info` for an autoregressive package: the manifest validated against the schema (v2,
 * family autoregressive), every file confined and hashed, then each variant's graphs opened and
 * checked against the manifest's roles (encoder; the optional instruction graph; prefill; decoder
 * with Optimum's decoder-with-past signature) and one greedy chunk decoded from a grey frame.
 * Errors keep their class and code and name the variant and the field.
 */
export async function arInfo(config: Readonly<VlaConfig>, io: CommandIo): Promise<number> {
  const pkg = await loadArManifest(resolvePackagePath(config.model.path));
  const m = pkg.manifest;
  const threads = config.backend.intra_op_threads;
  const roles = arRoles(m);
  const variants = await checkEachVariant(
    pkg.dir,
    // The optional instruction graph's file is among `roles` only when the manifest has one.
    m.variants.map((v) => ({
      ...v,
      files: v.files as Record<ArGraphRole, { path: string; sha256: string }>,
    })),
    roles,
    io,
    async (v) => {
      let policy: ArPolicy | undefined;
      try {
        policy = await ArPolicy.load(
          pkg.dir,
          { logSeverityLevel: 3, ...(threads > 0 ? { intraOpNumThreads: threads } : {}) },
          { precision: v.precision },
        );
        const { width, height } = policy.pkg.image;
        const { mean, std } = policy.pkg.normalisation;
        const pixels = new Float32Array(3 * width * height);
        for (let c = 0; c < 3; c++)
          pixels.fill(
            (128 / 255 - (mean[c] ?? 0)) / (std[c] ?? 1),
            c * width * height,
            (c + 1) * width * height,
          );
        const start = performance.now();
        const r = await policy.act(
          {
            pixels,
            rgb: new Uint8Array(width * height * 3).fill(128),
            instruction: 'move to the red block',
            state: Float32Array.from(m.state.mean),
          },
          { strategy: 'greedy' },
        );
        return {
          ms: Math.round((performance.now() - start) * 1000) / 1000,
          tokens: r.tokens.length,
          decoder_calls: r.decoderCalls,
        };
      } finally {
        await policy?.close();
      }
    },
  );
  const [cam] = m.cameras;
  const tok = m.action_tokenizer;
  const tokDetail =
    tok.kind === 'uniform_bins'
      ? `${tok.bins} bins`
      : `scale ${tok.scale}, ${tok.alphabet} symbols, ${tok.merges.length} merges`;
  const info = v2Info(
    pkg.dir,
    m,
    {
      decoder: m.decoder,
      // The words' keys and values made once per instruction and kept across frames.
      instruction_graph: m.graphs.instruction !== undefined,
      action_tokenizer: { ...tok, ...(tok.kind === 'fast' ? { merges: tok.merges.length } : {}) },
    },
    variants,
  );
  const human = v2Human(
    pkg.dir,
    m,
    [
      `  camera ${printable(cam.name)} ${cam.image.width}×${cam.image.height} (${cam.patch_grid.width}×${cam.patch_grid.height} tokens); token dim ${m.token_dim}`,
      `  decoder: ${m.decoder.layers} layers × ${m.decoder.heads} heads × ${m.decoder.head_dim} (prefix attention ${m.decoder.instruction_attention}, first action position ${m.decoder.first_action_position})`,
      m.graphs.instruction === undefined
        ? '  instruction: recomputed by the prefill every frame (no instruction graph)'
        : `  instruction: its keys and values cached across frames (instruction graph, up to ${INSTRUCTION_CACHE_SIZE} instructions)`,
      `  action tokens: ${tok.kind} (${tokDetail}, offset ${tok.token_offset}, relative to ${tok.relative_to})`,
    ],
    variants,
    (w) => `${w.tokens} tokens in ${w.decoder_calls} decoder calls, ${w.ms} ms`,
  );
  io.result(info, human);
  return 0;
}
