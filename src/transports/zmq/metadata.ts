/** What a bridge server tells a client in its `welcome`: the model, the limits, the encodings. */

import { readFileSync } from 'node:fs';
import { SUPPORTED_ENCODINGS } from '../../ingest/index.js';
import type { Manifest } from '../../model/manifest.js';
import { COMPRESSED_ENCODINGS } from './image.js';
import { PROTOCOL_VERSION, SUPPORTED_VERSIONS, type WelcomeReply } from './protocol.js';
import type { BridgeServerOptions, OptionalOption } from './server-options.js';

/** A `welcome` without its per-client fields. */
export type BridgeMetadata = Omit<WelcomeReply, 'v' | 'type' | 'id' | 'client_id'>;

let version: string | undefined;
function serverVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(
        readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
      ) as { version?: unknown };
      version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/**
 * The metadata a `hello` returns (without the per-client fields).
 *
 * @param pipeline - the served pipeline's manifest and token counts.
 * @param o - the server's options (its limits).
 */
export function bridgeMetadata(
  pipeline: {
    readonly model: { readonly manifest: Manifest };
    readonly totalTokens: number;
    readonly tokenBudget: number;
  },
  o: Readonly<Required<Omit<BridgeServerOptions, OptionalOption>>>,
): BridgeMetadata {
  const m = pipeline.model.manifest;
  return {
    protocol: PROTOCOL_VERSION,
    supported_versions: SUPPORTED_VERSIONS,
    server: 'vla-node',
    server_version: serverVersion(),
    model: {
      name: m.name,
      image: { width: m.image.width, height: m.image.height, resize: m.image.resize },
      cameras: 1,
      action_dim: m.chunk.action_dim,
      chunk_length: m.chunk.horizon,
      control_rate_hz: m.control_rate_hz,
      action_names: m.action.names,
      state_names: m.state.names,
      visual_tokens: pipeline.totalTokens,
      keep_count: pipeline.tokenBudget,
    },
    limits: {
      max_message_bytes: o.maxMessageBytes,
      max_image_width: o.maxImageWidth,
      max_image_height: o.maxImageHeight,
      max_image_bytes: o.maxImageBytes,
      max_queue: o.maxQueue,
      max_request_age_ms: o.maxRequestAgeMs,
      max_instruction_length: o.maxInstructionLength,
    },
    encodings: [...SUPPORTED_ENCODINGS, ...COMPRESSED_ENCODINGS],
  };
}
