import { Dealer } from 'zeromq';
import type { ActionChunk, Observation } from '../../../src/pipeline/pipeline.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import type { BridgePipeline } from '../../../src/transports/zmq/index.js';
import {
  encodeMessage,
  parseReply,
  type InferRequest,
  type Reply,
  type WireArray,
} from '../../../src/transports/zmq/index.js';

/** A simulator observation (seeded) in pipeline and wire form. */
export function simObservation(seed = 3): {
  readonly obs: Observation;
  readonly wire: Omit<InferRequest, 'v' | 'id' | 'type'>;
} {
  const o = new TabletopSim({ seed }).observe();
  const data = o.image.data.slice();
  const state = Float64Array.from(o.state);
  const wireState: WireArray = { dtype: 'float64', shape: [2], data: new Uint8Array(state.buffer) };
  const stamp = Date.now();
  return {
    obs: {
      frame: { ...o.image, data },
      instruction: o.instruction,
      state: Array.from(o.state),
      stamp,
    },
    wire: {
      instruction: o.instruction,
      state: wireState,
      images: [{ encoding: 'rgb8', width: o.image.width, height: o.image.height, data }],
      stamp,
    },
  };
}

/** A full infer request (fresh stamp). */
export function inferRequest(seed = 3, id: number | string = 1): InferRequest {
  return { v: 1, id, type: 'infer', ...simObservation(seed).wire, stamp: Date.now() };
}

/** A pipeline double that waits `delayMs` before delegating (to fill queues). */
export function slowPipeline(real: BridgePipeline, delayMs: number): BridgePipeline {
  return {
    model: real.model,
    totalTokens: real.totalTokens,
    tokenBudget: real.tokenBudget,
    pruner: real.pruner,
    async infer(obs: Observation): Promise<ActionChunk> {
      await new Promise((r) => setTimeout(r, delayMs));
      return real.infer(obs);
    },
  };
}

/** A raw DEALER for sending arbitrary frames and reading raw replies. */
export class RawPeer {
  readonly socket: Dealer;
  constructor(endpoint: string) {
    this.socket = new Dealer({ linger: 0, receiveTimeout: 5000 });
    this.socket.connect(endpoint);
  }
  async send(frames: Uint8Array | Uint8Array[]): Promise<void> {
    await this.socket.send(
      Array.isArray(frames) ? frames.map((f) => Buffer.from(f)) : Buffer.from(frames),
    );
  }
  /** The next reply, decoded (last frame). */
  async receive(): Promise<Reply> {
    const frames = await this.socket.receive();
    const last = frames[frames.length - 1];
    if (last === undefined) throw new Error('empty reply');
    return parseReply(last);
  }
  async exchange(frames: Uint8Array | Uint8Array[]): Promise<Reply> {
    await this.send(frames);
    return this.receive();
  }
  async request(message: object): Promise<Reply> {
    return this.exchange(encodeMessage(message as InferRequest));
  }
  close(): void {
    this.socket.close();
  }
}
