/**
 * The bridge server's infer requests on their way to the worker: admission against the model,
 * staleness, and decoding ahead of the batch that will run them.
 */

import { InputError } from '../../errors.js';
import { matchCameras } from '../../flow/cameras.js';
import type { Observation, PreparedObservation } from '../../pipeline/pipeline.js';
import type { ClientState } from './clients.js';
import { imageToFrame } from './image.js';
import { stateValues, type InferRequest } from './protocol.js';
import type { BridgePipeline, ServedCamera, ServedManifest } from './served-pipeline.js';

/** One infer request, queued or running. */
export interface Job {
  readonly client: ClientState;
  readonly route: readonly Buffer[];
  readonly request: InferRequest;
  readonly receivedAt: number;
  /**
   * The observation checked and decoded on arrival, or as it came when the pipeline's batch
   * converts its frames faster itself (batching worker only).
   */
  prepared?: Promise<Observation | PreparedObservation>;
  /** Whether `prepared` has settled. */
  ready?: boolean;
}

/**
 * The pipeline observation of a request: its image (every image, with its camera name, when it
 * carries several), state, stream and noise seed.
 */
export function observationOf(job: Job): Observation {
  const { request } = job;
  const image = request.images[0];
  if (image === undefined) throw new InputError('Expected 1 image', { field: 'images' });
  const cameras =
    request.images.length === 1
      ? undefined
      : request.images.map((img) => ({
          ...(img.camera === undefined ? {} : { camera: img.camera }),
          frame: imageToFrame(img),
        }));
  return {
    frame: imageToFrame(image),
    ...(cameras === undefined ? {} : { cameras }),
    instruction: request.instruction,
    state: stateValues(request.state),
    stamp: request.stamp,
    stream: job.client.id,
    ...(request.keep_count === undefined ? {} : { keepCount: request.keep_count }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
  };
}

/** Whether a queued job can run: decoded (or failed to), so batches never wait for a decode. */
export function isReady(job: Job): boolean {
  return job.ready === true;
}

/**
 * Why the model cannot take an infer request, as `[field, message]`, or undefined when it can.
 *
 * @param totalTokens - the model's visual tokens per frame (the largest `keep_count`).
 * @param cameras - the model's cameras when it takes several (their images are matched by name
 *   or order, as the flow pipeline does); absent: one image.
 */
export function admissionProblem(
  request: InferRequest,
  manifest: ServedManifest,
  totalTokens: number,
  cameras?: readonly ServedCamera[],
): [string, string] | undefined {
  const m = manifest;
  const stateLength = Array.isArray(request.state)
    ? request.state.length
    : stateValues(request.state).length;
  const cameraProblem = camerasProblem(request, m.name, cameras);
  if (cameraProblem !== undefined) {
    return cameraProblem;
  } else if (stateLength !== m.state.names.length) {
    return [
      'state',
      `Expected ${m.state.names.length} state values (${m.state.names.join(', ')}) but received ${stateLength}`,
    ];
  } else if (request.keep_count !== undefined && request.keep_count > totalTokens) {
    return [
      'keep_count',
      `Expected keep_count in [1, ${totalTokens}] (the model has ${totalTokens} visual tokens) but received ${request.keep_count}`,
    ];
  }
  return undefined;
}

/** Why the request's images do not fit the model's cameras, as `[field, message]`. */
function camerasProblem(
  request: InferRequest,
  model: string,
  cameras: readonly ServedCamera[] | undefined,
): [string, string] | undefined {
  if (cameras === undefined) {
    if (request.images.length === 1) return undefined;
    return [
      'images',
      `Expected 1 image (model ${model} takes one camera) but received ${request.images.length}`,
    ];
  }
  try {
    matchCameras(
      cameras.map((c) => c.name),
      request.images.map((img) => img.camera),
    );
    return undefined;
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    return [error.field ?? 'images', error.message];
  }
}

/**
 * The `stale` message of a request older than `maxAgeMs` (0 = never stale), else undefined.
 * Its age is measured now.
 */
export function staleMessage(job: Job, maxAgeMs: number): string | undefined {
  if (maxAgeMs <= 0) return undefined;
  const age = Date.now() - job.request.stamp;
  if (age <= maxAgeMs) return undefined;
  return `Expected a request at most ${maxAgeMs} ms old but its stamp ${job.request.stamp} is ${Math.round(age)} ms old`;
}

/**
 * Decodes queued requests ahead of their batch (libuv's thread pool), overlapping with the batch
 * that runs, at most `concurrency` at once. A request the pipeline gains nothing from preparing
 * (`benefitsFromPrepare` false: raw frames, which its batch converts in one native call) is ready
 * at once, as it came.
 */
export class DecodeAhead {
  /** Queued requests whose decode has not started. */
  #waiting: Job[] = [];
  #decoding = 0;
  readonly #concurrency: number;
  readonly #pipeline: Pick<BridgePipeline, 'prepare' | 'benefitsFromPrepare'>;
  readonly #settled: () => void;

  /**
   * @param pipeline - the pipeline whose `prepare` decodes (absent: nothing is decoded ahead).
   * @param settled - called each time a decode settles (to wake the worker).
   */
  constructor(
    concurrency: number,
    pipeline: Pick<BridgePipeline, 'prepare' | 'benefitsFromPrepare'>,
    settled: () => void,
  ) {
    this.#concurrency = concurrency;
    this.#pipeline = pipeline;
    this.#settled = settled;
  }

  /** Decode a queued request as soon as a slot is free, or mark it ready as it came. */
  add(job: Job): void {
    const asItCame = this.#asItCame(job);
    if (asItCame !== undefined) {
      job.prepared = Promise.resolve(asItCame);
      job.ready = true;
      this.#settled();
      return;
    }
    this.#waiting.push(job);
    this.#next();
  }

  /** The request's observation when the pipeline would gain nothing from preparing it. */
  #asItCame(job: Job): Observation | undefined {
    if (this.#pipeline.benefitsFromPrepare === undefined) return undefined;
    try {
      const obs = observationOf(job);
      return this.#pipeline.benefitsFromPrepare(obs) ? undefined : obs;
    } catch {
      return undefined; // prepared like any other, which rejects it with the reason
    }
  }

  /** Drop the requests whose decode has not started (on shutdown). */
  clear(): void {
    this.#waiting = [];
  }

  #next(): void {
    const pipeline = this.#pipeline;
    if (pipeline.prepare === undefined) return;
    while (this.#decoding < this.#concurrency) {
      const job = this.#waiting.shift();
      if (job === undefined) return;
      this.#decoding++;
      let prepared: Promise<Observation | PreparedObservation>;
      try {
        prepared = pipeline.prepare(observationOf(job));
      } catch (error) {
        prepared = Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      job.prepared = prepared;
      const settle = (): void => {
        job.ready = true;
        this.#decoding--;
        this.#next();
        this.#settled();
      };
      prepared.then(settle, settle);
    }
  }
}
