/**
 * Speculative decoding's drafts: per stream, the previous chunk (absolute actions, as the model
 * decoded them) and its observation's stamp, shifted by the control steps executed since.
 */

/** Streams whose previous chunk is kept, at most (the oldest is dropped first). */
const MAX_STREAMS = 256;

/** A stream's previous chunk and the steps of it taken to be executed by now. */
export interface Draft {
  readonly actions: Float32Array;
  readonly stepsExecuted: number;
}

/** The previous chunk of each stream, for the next observation of that stream to draft from. */
export class DraftBook {
  readonly #previous = new Map<string, { actions: Float32Array; stamp: number | undefined }>();
  readonly #executeSteps: number;
  readonly #rateHz: number;

  /**
   * @param executeSteps steps taken to be executed between two observations that carry no stamps
   * @param rateHz the control rate the stamps' difference is counted in
   */
  constructor(executeSteps: number, rateHz: number) {
    this.#executeSteps = executeSteps;
    this.#rateHz = rateHz;
  }

  /** The draft for an observation of `stream` stamped `stamp` (ms), if the stream has a chunk. */
  draft(stream: string, stamp: number | undefined): Draft | undefined {
    const previous = this.#previous.get(stream);
    if (previous === undefined) return undefined;
    return { actions: previous.actions, stepsExecuted: this.#stepsSince(previous.stamp, stamp) };
  }

  /**
   * Keep `actions` (copied) as `stream`'s draft. They must be the model's own chunk, not clamped:
   * clamped values would not re-tokenise to its tokens.
   */
  keep(stream: string, actions: Float32Array, stamp: number | undefined): void {
    this.#previous.delete(stream);
    if (this.#previous.size >= MAX_STREAMS) {
      const oldest = this.#previous.keys().next().value;
      if (oldest !== undefined) this.#previous.delete(oldest);
    }
    this.#previous.set(stream, { actions: Float32Array.from(actions), stamp });
  }

  /** Forget one stream's chunk, or every stream's. */
  forget(stream?: string): void {
    if (stream === undefined) this.#previous.clear();
    else this.#previous.delete(stream);
  }

  /** Control steps executed since the previous chunk's observation, as far as the stamps tell. */
  #stepsSince(before: number | undefined, now: number | undefined): number {
    if (before === undefined || now === undefined || !(now > before)) return this.#executeSteps;
    return Math.max(0, Math.round(((now - before) * this.#rateHz) / 1000));
  }
}
