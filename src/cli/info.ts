import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { providerAvailability } from '../backend/onnx.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig } from './setup.js';

export const infoCommand: CommandSpec = {
  name: 'info',
  summary: 'print the model package, its variants and the execution providers available here',
  options: {
    model: { type: 'string', help: 'model package folder (model.path)' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs(values, { model: 'model.path' });
    const pkg = await modelFromConfig(config);
    const m = pkg.manifest;
    const variants = await Promise.all(
      m.variants.map(async (v) => ({
        name: v.name,
        precision: v.precision,
        files: Object.fromEntries(
          await Promise.all(
            (['encoder', 'policy'] as const).map(async (role) => [
              role,
              {
                path: v.files[role].path,
                sha256: v.files[role].sha256,
                bytes: (await stat(join(pkg.dir, v.files[role].path))).size,
              },
            ]),
          ),
        ) as Record<'encoder' | 'policy', { path: string; sha256: string; bytes: number }>,
      })),
    );
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
      `${m.name}: ${m.description ?? ''}`,
      `  ${pkg.dir}`,
      `  image ${m.image.width}×${m.image.height} (${m.image.resize}), ${info.model.visual_tokens} visual tokens (${m.patch_grid.width}×${m.patch_grid.height} grid, dim ${m.token_dim})`,
      `  chunk ${m.chunk.horizon} × ${m.chunk.action_dim} [${m.action.names.join(', ')}] at ${m.control_rate_hz} Hz; state [${m.state.names.join(', ')}]`,
      'variants:',
      ...variants.map(
        (v) =>
          `  ${v.name} (${v.precision}): ${v.files.encoder.path} ${(v.files.encoder.bytes / 1024).toFixed(0)} KiB, ${v.files.policy.path} ${(v.files.policy.bytes / 1024).toFixed(0)} KiB`,
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
