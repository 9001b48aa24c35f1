import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import sharp from 'sharp';
import { WebSocket } from 'ws';
import { loadModelPackage } from '../../../src/model/manifest.js';
import { VlaPipeline } from '../../../src/pipeline/pipeline.js';
import { observeInference } from '../../../src/pipeline/observer.js';
import { pipelineAgent, runEpisodes, type TimingOptions } from '../../../src/sim/runner.js';
import { TabletopSim } from '../../../src/sim/tabletop.js';
import { episodeSeed } from '../../../src/util/rng.js';
import { WORLD } from '../../../src/sim/world.js';
import { FoxgloveView, LIVE_TOPICS, LiveServer } from '../../../src/transports/foxglove/index.js';
import { ConfigError } from '../../../src/errors.js';
import { testPipelineOptions, TINY_VLA } from '../../helpers.js';
import { flush, TestViewer } from './client.js';

const ALL_TOPICS = Object.values(LIVE_TOPICS);
const SEED = 7;
const CAMERA = 128;

function timing(horizon: number): TimingOptions {
  return {
    mode: 'rtc',
    controlRateHz: 10,
    horizon,
    injectDelayMs: 0,
    injectJitterMs: 0,
    stallProbability: 0,
    stallSteps: 0,
    maxFrameAgeMs: 500,
    executor: {
      ensembleDecay: 0.5,
      rtcDecaySteps: 2,
      marginSteps: 1,
      safeAction: 'hold',
      limits: { min: [0, 0], max: [1, 1], maxDeltaPerStep: 0 },
    },
  };
}

let pipeline: VlaPipeline;

beforeAll(async () => {
  pipeline = await VlaPipeline.create(
    await loadModelPackage(TINY_VLA),
    testPipelineOptions({
      pruning: { strategy: 'saliency', keepRatio: 0.5, keepCount: 0, seed: 0, minKeepRatio: 0.1 },
    }),
  );
});

afterAll(async () => {
  await pipeline.release();
});

async function startView(maxClientBufferBytes = 1 << 20): Promise<{
  server: LiveServer;
  view: FoxgloveView;
}> {
  const server = await LiveServer.start({ host: '127.0.0.1', port: 0, maxClientBufferBytes });
  const m = pipeline.model.manifest;
  const view = FoxgloveView.create(server, {
    actionNames: m.action.names,
    overlay: {
      modelWidth: m.image.width,
      modelHeight: m.image.height,
      grid: m.patch_grid,
      resize: m.image.resize,
    },
  });
  return { server, view };
}

/** One timed episode of the model on the tabletop, shown in `view`; the actions the sim got. */
async function run(
  view: FoxgloveView,
  camera = CAMERA,
  episodes = 1,
): Promise<{ sent: number[][]; sources: string[]; chunks: number[] }> {
  const sent: number[][] = [];
  const sources: string[] = [];
  const chunks: number[] = [];
  const observed = observeInference(pipeline, view);
  await runEpisodes(
    pipelineAgent({
      infer: async (obs) => {
        const chunk = await observed.infer(obs);
        chunks.push(chunk.tokens.kept);
        return chunk;
      },
    }),
    {
      episodes,
      seed: SEED,
      executeSteps: 4,
      maxSteps: 40,
      cameraWidth: camera,
      cameraHeight: camera,
      timing: timing(pipeline.model.manifest.chunk.horizon),
      observer: view,
      onAction: (action, source) => {
        sent.push(Array.from(action));
        sources.push(source);
      },
    },
  );
  return { sent, sources, chunks };
}

describe('Foxglove live view over a real WebSocket (FoxgloveClient)', () => {
  it('advertises every channel with its schema, and each message validates and matches the run', async () => {
    const { server, view } = await startView();
    const viewer = await TestViewer.connect(server.url, ALL_TOPICS.length);
    try {
      expect(server.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
      expect([...viewer.channels.values()].map((c) => c.topic).sort()).toEqual(
        [...ALL_TOPICS].sort(),
      );
      const byTopic = new Map([...viewer.channels.values()].map((c) => [c.topic, c]));
      expect(byTopic.get(LIVE_TOPICS.image)?.schemaName).toBe('foxglove.RawImage');
      expect(byTopic.get(LIVE_TOPICS.keptTokens)?.schemaName).toBe('foxglove.ImageAnnotations');
      expect(byTopic.get(LIVE_TOPICS.scene)?.schemaName).toBe('foxglove.SceneUpdate');
      expect(byTopic.get(LIVE_TOPICS.log)?.schemaName).toBe('foxglove.Log');
      for (const c of viewer.channels.values()) {
        expect(c.encoding).toBe('json');
        expect(c.schemaEncoding).toBe('jsonschema');
      }
      viewer.subscribe(...ALL_TOPICS);
      await flush(viewer);
      const { sent, sources, chunks } = await run(view);
      view.onLog('warn', 'a diagnostic line');
      const png = await sharp({
        create: { width: 8, height: 6, channels: 3, background: '#ff0000' },
      })
        .png()
        .toBuffer();
      view.onFrame({ kind: 'encoded', data: new Uint8Array(png) }, 'compressed', 'camera');
      await viewer.until(() => viewer.on(LIVE_TOPICS.compressed).length === 1);
      expect(viewer.on(LIVE_TOPICS.compressed)[0]).toMatchObject({
        format: 'png',
        data: png.toString('base64'),
      });
      await viewer.until(() => viewer.on(LIVE_TOPICS.log).length === 1);
      await flush(viewer);

      // Every message validates against the schema its channel advertised.
      const ajv = new Ajv({ strict: false, allErrors: true });
      for (const c of viewer.channels.values()) {
        const validate = ajv.compile(JSON.parse(c.schema) as object);
        const messages = viewer.on(c.topic);
        expect(messages.length, c.topic).toBeGreaterThan(0);
        for (const m of messages)
          expect(validate(m), `${c.topic}: ${ajv.errorsText(validate.errors)}`).toBe(true);
      }

      // The actions sent, in order, are what the simulator received.
      const actionSent = viewer.on(LIVE_TOPICS.sent);
      expect(actionSent.map((m) => m.values)).toEqual(sent);
      expect(actionSent.map((m) => m.source)).toEqual(sources);
      expect(actionSent.map((m) => m.period)).toEqual(sent.map((_, i) => i));
      expect(actionSent[0]?.names).toEqual(['x', 'y']);

      // Frames: as many as inferences, at the camera's size, the first one the episode's first frame.
      const images = viewer.on(LIVE_TOPICS.image);
      expect(images).toHaveLength(chunks.length);
      const first = images[0] as {
        width: number;
        height: number;
        encoding: string;
        data: string;
        step: number;
      };
      expect([first.width, first.height, first.encoding, first.step]).toEqual([
        CAMERA,
        CAMERA,
        'rgb8',
        3 * CAMERA,
      ]);
      const sim = new TabletopSim({
        seed: episodeSeed(SEED, 0),
        cameraWidth: CAMERA,
        cameraHeight: CAMERA,
      });
      expect(Buffer.from(first.data, 'base64').equals(Buffer.from(sim.observe().image.data))).toBe(
        true,
      );
      expect(viewer.on(LIVE_TOPICS.instruction)[0]).toEqual({
        text: sim.scene.task.instruction,
        stream: 'camera',
      });

      // Chunks as they arrived, and their stats: kept tokens as the pipeline kept.
      const chunkMessages = viewer.on(LIVE_TOPICS.chunk) as {
        horizon: number;
        steps: unknown[];
        dims: { values: number[] }[];
      }[];
      expect(chunkMessages).toHaveLength(chunks.length);
      expect(chunkMessages[0]?.steps).toHaveLength(pipeline.model.manifest.chunk.horizon);
      const stats = viewer.on(LIVE_TOPICS.stats) as {
        tokens_kept: number;
        tokens_total: number;
        latency_ms: number;
        keep_ratio: number;
      }[];
      expect(stats.map((s) => s.tokens_kept)).toEqual(chunks);
      expect(stats[0]?.tokens_total).toBe(144);
      expect(stats[0]?.keep_ratio).toBeCloseTo(0.5, 5);
      expect(stats.every((s) => s.latency_ms > 0)).toBe(true);

      // The overlay: four green segments per kept token, stamped like its frame.
      const overlays = viewer.received.filter((r) => r.topic === LIVE_TOPICS.keptTokens);
      expect(overlays).toHaveLength(chunks.length);
      const frames = viewer.received.filter((r) => r.topic === LIVE_TOPICS.image);
      overlays.forEach((o, i) => {
        const [outline] = o.message.points as {
          type: number;
          points: { x: number; y: number }[];
        }[];
        expect(outline?.type).toBe(4);
        expect(outline?.points).toHaveLength(8 * (chunks[i] as number));
        for (const q of outline?.points ?? []) {
          expect(q.x).toBeGreaterThanOrEqual(0);
          expect(q.x).toBeLessThanOrEqual(CAMERA);
        }
        expect((o.message.texts as { text: string }[])[0]?.text).toBe(
          `kept ${chunks[i] as number}/144 tokens`,
        );
        expect(o.stampNs).toBe(frames[i]?.stampNs);
      });
      const modelInput = viewer.on(LIVE_TOPICS.modelInput)[0] as { width: number; height: number };
      expect([modelInput.width, modelInput.height]).toEqual([96, 96]);

      // The scene: four blocks, the effector where the last action left it, the target.
      const scenes = viewer.on(LIVE_TOPICS.scene) as {
        entities: {
          id: string;
          cubes: unknown[];
          cylinders: { pose: { position: { x: number; y: number } } }[];
        }[];
      }[];
      expect(scenes).toHaveLength(sent.length + 1);
      const last = scenes[scenes.length - 1];
      expect(last?.entities.find((e) => e.id === 'blocks')?.cubes).toHaveLength(WORLD.blocks);
      const target = last?.entities.find((e) => e.id === 'target')?.cylinders[0]?.pose.position;
      expect(target).toEqual({ x: sim.scene.task.goal.x, y: -sim.scene.task.goal.y, z: 0.002 });

      expect(viewer.on(LIVE_TOPICS.log)[0]).toMatchObject({
        level: 3,
        message: 'a diagnostic line',
      });
      expect(server.stats()).toMatchObject({ clients: 1, dropped: 0 });
    } finally {
      await viewer.close();
      await server.close();
    }
  });

  it('builds no message for a channel nobody subscribes to', async () => {
    const { server, view } = await startView();
    const viewer = await TestViewer.connect(server.url, ALL_TOPICS.length);
    try {
      // A frame whose pixels cannot be read: touching them would throw.
      const frame = {
        kind: 'raw' as const,
        width: 4,
        height: 4,
        encoding: 'rgb8',
        get data(): Uint8Array {
          throw new Error('the frame was read with nobody subscribed');
        },
      };
      view.onFrame(frame, 'move', 'camera');
      view.onCommand([0.5, 0.5], 'plan');
      view.onChunk({ actions: new Float32Array(16), horizon: 8, actionDim: 2 }, frame, {
        rgb: new Uint8Array(96 * 96 * 3),
        positions: Int32Array.of(1, 2, 3),
      });
      expect(
        server.publish(viewer.channel(LIVE_TOPICS.stats).id, 0n, () => {
          throw new Error('built with nobody subscribed');
        }),
      ).toBe(false);
      expect(server.stats().encoded).toBe(0);
      // Once subscribed, the same call builds and sends.
      viewer.subscribe(LIVE_TOPICS.sent);
      await flush(viewer);
      view.onCommand([0.25, 0.75], 'safe');
      await viewer.until(() => viewer.on(LIVE_TOPICS.sent).length === 1);
      expect(viewer.on(LIVE_TOPICS.sent)[0]).toMatchObject({
        period: 1,
        source: 'safe',
        values: [0.25, 0.75],
      });
      expect(server.stats().encoded).toBe(1);
    } finally {
      await viewer.close();
      await server.close();
    }
  });

  it('drops messages for a stalled viewer while a reading viewer gets every chunk', async () => {
    // 256 KiB limit and 512×512 frames (1 MiB each in JSON): a viewer that stops reading fills
    // the kernel's socket buffers, then the server's, within a few frames.
    const { server, view } = await startView(256 * 1024);
    const fast = await TestViewer.connect(server.url, ALL_TOPICS.length);
    const slow = await TestViewer.connect(server.url, ALL_TOPICS.length);
    try {
      fast.subscribe(LIVE_TOPICS.chunk, LIVE_TOPICS.image);
      slow.subscribe(LIVE_TOPICS.chunk, LIVE_TOPICS.image);
      await flush(fast);
      await flush(slow);
      slow.ws.pause();
      const { chunks } = await run(view, 512, 4);
      await flush(fast);
      expect(fast.on(LIVE_TOPICS.chunk)).toHaveLength(chunks.length);
      expect(fast.on(LIVE_TOPICS.image)).toHaveLength(chunks.length);
      const stats = server.stats();
      expect(stats.dropped).toBeGreaterThan(0);
      // The server holds at most the limit plus one message for the stalled viewer.
      slow.ws.resume();
      await flush(slow);
      const got = slow.on(LIVE_TOPICS.image).length + slow.on(LIVE_TOPICS.chunk).length;
      expect(got + stats.dropped).toBe(2 * chunks.length);
      expect(got).toBeLessThan(2 * chunks.length);
    } finally {
      await fast.close();
      slow.ws.terminate();
      await server.close();
    }
  });

  it('builds nothing while every viewer is over its buffer limit', async () => {
    const { server, view } = await startView(256 * 1024);
    const slow = await TestViewer.connect(server.url, ALL_TOPICS.length);
    try {
      slow.subscribe(LIVE_TOPICS.image);
      await flush(slow);
      slow.ws.pause();
      const side = 512;
      const frame = {
        kind: 'raw' as const,
        width: side,
        height: side,
        encoding: 'rgb8',
        data: new Uint8Array(side * side * 3),
      };
      // Until the kernel's buffers and then the server's fill: bounded, a few MB at most.
      for (let i = 0; i < 400 && server.stats().unbuilt === 0; i++) {
        view.onFrame(frame, 'fill', 'camera');
        await new Promise((r) => setTimeout(r, 1));
      }
      expect(server.stats().unbuilt).toBeGreaterThan(0);
      const channel = slow.channel(LIVE_TOPICS.image).id;
      expect(
        server.publish(channel, 0n, () => {
          throw new Error('built for a viewer that cannot take it');
        }),
      ).toBe(false);
    } finally {
      slow.ws.terminate();
      await server.close();
    }
  });

  it('answers bad client messages with an error status and keeps serving', async () => {
    const { server, view } = await startView();
    const viewer = await TestViewer.connect(server.url, ALL_TOPICS.length);
    try {
      const bad = [
        'this is not JSON',
        JSON.stringify({ op: 'launchMissiles' }),
        JSON.stringify({ op: 'subscribe' }),
        Buffer.from([0xff, 0x00, 0x01]),
      ];
      for (const b of bad) viewer.ws.send(b);
      await viewer.until(() => viewer.statuses.length === bad.length);
      expect(viewer.statuses.map((s) => s.level)).toEqual([2, 2, 2, 2]);
      expect(viewer.statuses[0]?.message).toMatch(
        /^Expected a foxglove\.websocket\.v1 client message but received one that failed: .*JSON/,
      );
      expect(viewer.statuses[1]?.message).toMatch(/launchMissiles/);
      // A channel that does not exist: the library's own warning.
      viewer.client.subscribe(4242);
      await viewer.until(() => viewer.statuses.length === bad.length + 1);
      expect(viewer.statuses[bad.length]).toMatchObject({
        level: 1,
        message: expect.stringMatching(/4242/) as unknown,
      });
      expect(server.stats().client_errors).toBe(bad.length);
      // Still serving this viewer, and others.
      const other = await TestViewer.connect(server.url, ALL_TOPICS.length);
      viewer.subscribe(LIVE_TOPICS.instruction);
      other.subscribe(LIVE_TOPICS.instruction);
      await flush(viewer);
      await flush(other);
      view.onFrame(
        { kind: 'raw', width: 1, height: 1, encoding: 'mono8', data: Uint8Array.of(7) },
        'still here',
        'camera',
      );
      await viewer.until(() => viewer.on(LIVE_TOPICS.instruction).length === 1);
      await other.until(() => other.on(LIVE_TOPICS.instruction).length === 1);
      expect(other.statuses).toEqual([expect.objectContaining({ level: 1 })]);
      await other.close();
    } finally {
      await viewer.close();
      await server.close();
    }
  });

  it('closes a connection without the foxglove.websocket.v1 subprotocol', async () => {
    const { server } = await startView();
    try {
      const ws = new WebSocket(server.url);
      const code = await new Promise<number>((resolve) => {
        ws.on('close', (c) => {
          resolve(c);
        });
      });
      expect(code).toBe(1002);
      expect(server.stats().clients).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('says which port is taken', async () => {
    const { server } = await startView();
    try {
      const error = await LiveServer.start({
        host: '127.0.0.1',
        port: server.port,
        maxClientBufferBytes: 1024,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe('foxglove.port');
      expect((error as Error).message).toMatch(
        new RegExp(`^Expected a free port for the Foxglove live view but received ${server.port}`),
      );
    } finally {
      await server.close();
    }
  });
});
