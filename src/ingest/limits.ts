/**
 * Limits on every camera frame and observation, checked before any pixel is decoded or any buffer
 * of the frame's size is allocated. The values are the `ingest.*` parameters; their defaults live
 * in the schema (read here, never repeated).
 */

import { describeParameter, type VlaConfig } from '../config/index.js';

/** Bounds on one frame and one observation (the `ingest.*` parameters). */
export interface IngestLimits {
  /** Most pixels (width × height) a frame may have, raw or encoded. */
  readonly maxPixels: number;
  /** Most bytes a JPEG or PNG frame may have. */
  readonly maxEncodedBytes: number;
  /** Largest |state − mean| / std accepted for one state value (manifest statistics). */
  readonly maxStateDeviation: number;
}

/** The limits of a validated configuration. */
export function ingestLimits(config: Pick<VlaConfig, 'ingest'>): IngestLimits {
  return Object.freeze({
    maxPixels: config.ingest.max_pixels,
    maxEncodedBytes: config.ingest.max_encoded_bytes,
    maxStateDeviation: config.ingest.max_state_deviation,
  });
}

let defaults: IngestLimits | undefined;

/** The schema's defaults of `ingest.*`: what a library user gets without a configuration. */
export function defaultIngestLimits(): IngestLimits {
  defaults ??= Object.freeze({
    maxPixels: describeParameter('ingest.max_pixels').default as number,
    maxEncodedBytes: describeParameter('ingest.max_encoded_bytes').default as number,
    maxStateDeviation: describeParameter('ingest.max_state_deviation').default as number,
  });
  return defaults;
}
