/** What a bridge server tells a client in its `welcome`: the model, the limits, the encodings. */

import { readFileSync } from 'node:fs';
import { SUPPORTED_ENCODINGS } from '../../ingest/index.js';
import { ConfigError } from '../../errors.js';
import { COMPRESSED_ENCODINGS } from './image.js';
import { PROTOCOL_VERSION, SUPPORTED_VERSIONS, type WelcomeReply } from './protocol.js';
import type { BridgeServerOptions, OptionalOption } from './server-options.js';
import type { BridgePipeline } from './served-pipeline.js';

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
  pipeline: Pick<BridgePipeline, 'model' | 'cameras' | 'totalTokens' | 'tokenBudget'>,
  o: Readonly<Required<Omit<BridgeServerOptions, OptionalOption>>>,
): BridgeMetadata {
  const m = pipeline.model.manifest;
  const cameras = pipeline.cameras;
  // Several cameras: the first one's input; flow packages give every camera the same today.
  const image = cameras?.[0]?.image ?? m.image;
  if (image === undefined) {
    throw new ConfigError(
      `Expected the served pipeline to describe its model's image input (manifest image or cameras) but ${m.name} has neither`,
      { field: 'model.image' },
    );
  }
  return {
    protocol: PROTOCOL_VERSION,
    supported_versions: SUPPORTED_VERSIONS,
    server: 'vla-node',
    server_version: serverVersion(),
    model: {
      name: m.name,
      image: { width: image.width, height: image.height, resize: image.resize },
      cameras: cameras?.length ?? 1,
      ...(cameras === undefined ? {} : { camera_names: cameras.map((c) => c.name) }),
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
