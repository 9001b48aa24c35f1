/**
 * `vla-node foxglove picture`: a picture of what the Foxglove live view shows, drawn from messages
 * captured through the live server by the protocol's own client during a real simulator run. It
 * is a rendering of the same data, not a screenshot of Foxglove (which is not available offline).
 */

import { resolve } from 'node:path';
import sharp from 'sharp';
import wsProtocol, { type Channel, type IWebSocket } from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';
import { VlaPipeline } from '../pipeline/pipeline.js';
import { observeInference } from '../pipeline/observer.js';
import { pipelineAgent, runEpisodes } from '../sim/runner.js';
import {
  FoxgloveView,
  overlayGeometry,
  LIVE_TOPICS,
  LiveServer,
} from '../transports/foxglove/index.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';
import { clockedTiming } from '../sim/configured-run.js';

const { FoxgloveClient } = wsProtocol;

interface Captured {
  readonly topic: string;
  readonly message: Record<string, unknown>;
}

/** Connect the protocol's client, subscribe to every channel, record what arrives. */
async function capture(url: string): Promise<{ messages: Captured[]; close: () => void }> {
  const ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  // ws's WebSocket is the IWebSocket the library is written against; only send()'s overloads differ.
  const client = new FoxgloveClient({ ws: ws as unknown as IWebSocket });
  const subscriptions = new Map<number, Channel>();
  const messages: Captured[] = [];
  client.on('message', (m) => {
    const channel = subscriptions.get(m.subscriptionId);
    if (channel === undefined) return;
    const text = Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength).toString();
    messages.push({ topic: channel.topic, message: JSON.parse(text) as Record<string, unknown> });
  });
  await new Promise<void>((done) => {
    client.on('advertise', (channels) => {
      for (const c of channels) subscriptions.set(client.subscribe(c.id), c);
      client.subscribe(2 ** 31);
    });
    // The status answering the subscription to a missing channel: the others are in.
    client.on('status', () => {
      done();
    });
  });
  return {
    messages,
    close: () => {
      client.close();
    },
  };
}

interface Series {
  readonly name: string;
  readonly colour: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
}

/** A compact line chart (SVG) with a handful of ticks, for long series. */
function chart(
  title: string,
  xLabel: string,
  series: readonly Series[],
  w: number,
  h: number,
): string {
  const m = { l: 46, r: 12, t: 28, b: 34 };
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1e-9);
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys, y0 + 1e-9) * 1.08;
  const px = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * (w - m.l - m.r);
  const py = (y: number): number => h - m.b - ((y - y0) / (y1 - y0)) * (h - m.t - m.b);
  const parts = [
    `<rect width="${w}" height="${h}" fill="#1e1e24"/>`,
    `<text x="10" y="18" fill="#ddd" font-size="13">${title}</text>`,
    `<text x="${w / 2}" y="${h - 6}" fill="#aaa" font-size="11" text-anchor="middle">${xLabel}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    const x = x0 + ((x1 - x0) * i) / 4;
    parts.push(
      `<line x1="${m.l}" y1="${py(y)}" x2="${w - m.r}" y2="${py(y)}" stroke="#3a3a44"/>`,
      `<text x="${m.l - 5}" y="${py(y) + 4}" fill="#aaa" font-size="10" text-anchor="end">${y.toFixed(2)}</text>`,
      `<text x="${px(x)}" y="${h - m.b + 13}" fill="#aaa" font-size="10" text-anchor="middle">${x.toFixed(x1 - x0 < 10 ? 1 : 0)}</text>`,
    );
  }
  series.forEach((s, i) => {
    parts.push(
      `<polyline fill="none" stroke="${s.colour}" stroke-width="1.8"${s.dashed === true ? ' stroke-dasharray="5 3"' : ''} points="${s.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}"/>`,
      `<rect x="${w - m.r - 170}" y="${m.t + 2 + i * 14}" width="12" height="3" fill="${s.colour}"/>`,
      `<text x="${w - m.r - 154}" y="${m.t + 7 + i * 14}" fill="#ddd" font-size="10">${s.name}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">${parts.join('')}</svg>`;
}

/** The camera frame, magnified, with the kept-token outlines and caption drawn over it. */
async function annotatedFrame(
  image: Record<string, unknown>,
  annotations: Record<string, unknown>,
  scale: number,
): Promise<Buffer> {
  const w = image.width as number;
  const h = image.height as number;
  const pixels = Buffer.from(image.data as string, 'base64');
  const base = await sharp(pixels, { raw: { width: w, height: h, channels: 3 } })
    .resize(w * scale, h * scale, { kernel: 'nearest' })
    .png()
    .toBuffer();
  const [outline] = annotations.points as { points: { x: number; y: number }[] }[];
  const [caption] = annotations.texts as { text: string }[];
  const pts = outline?.points ?? [];
  const lines: string[] = [];
  for (let i = 0; i + 1 < pts.length; i += 2) {
    const a = pts[i];
    const b = pts[i + 1];
    if (a === undefined || b === undefined) continue;
    lines.push(
      `<line x1="${a.x * scale}" y1="${a.y * scale}" x2="${b.x * scale}" y2="${b.y * scale}" stroke="#1aff33" stroke-width="1.5"/>`,
    );
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w * scale}" height="${h * scale}" font-family="sans-serif">${lines.join('')}<rect x="4" y="4" width="170" height="20" fill="black" fill-opacity="0.6"/><text x="10" y="19" fill="white" font-size="14">${caption?.text ?? ''}</text></svg>`;
  return sharp(base)
    .composite([{ input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer();
}

export const foxglovePictureCommand: CommandSpec = {
  name: 'foxglove picture',
  summary:
    'draw what the Foxglove live view shows (camera + kept tokens, planned vs sent actions, latency) from a run captured through the live server',
  options: {
    out: { type: 'string', default: 'docs/foxglove-view.png', help: 'PNG to write' },
    strategy: { type: 'string', default: 'saliency', help: 'pruning strategy (pruning.strategy)' },
    'keep-ratio': { type: 'string', default: '0.5', help: 'fraction of tokens kept' },
    seed: { type: 'string', help: 'episode seed (sim.seed)' },
    episodes: { type: 'string', default: '3', help: 'simulator episodes to run (sim.episodes)' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const config = await configFromArgs(values, {
      strategy: 'pruning.strategy',
      'keep-ratio': 'pruning.keep_ratio',
      seed: 'sim.seed',
      episodes: 'sim.episodes',
    });
    const model = await modelFromConfig(config);
    const m = model.manifest;
    const pipeline = await VlaPipeline.create(
      model,
      pipelineOptions(config, (line) => {
        io.progress(line);
      }),
    );
    const server = await LiveServer.start({
      host: '127.0.0.1',
      port: 0,
      maxClientBufferBytes: config.foxglove.max_client_buffer_bytes,
    });
    try {
      const view = FoxgloveView.create(server, {
        actionNames: m.action.names,
        overlay: overlayGeometry(m),
      });
      const viewer = await capture(server.url);
      const timing = clockedTiming(config, m, pipeline.actionLimits, 'rtc');
      // Paced at the control rate, as `sim --foxglove` runs, so the times are the robot's.
      await runEpisodes(pipelineAgent(observeInference(pipeline, view)), {
        episodes: config.sim.episodes,
        seed: config.sim.seed,
        executeSteps: 1,
        maxSteps: config.sim.max_steps,
        cameraWidth: config.sim.camera_width,
        cameraHeight: config.sim.camera_height,
        timing,
        observer: view,
        paceHz: m.control_rate_hz,
      });
      await new Promise((done) => setTimeout(done, 200));
      viewer.close();
      const on = (topic: string): Record<string, unknown>[] =>
        viewer.messages.filter((c) => c.topic === topic).map((c) => c.message);
      const images = on(LIVE_TOPICS.image);
      const overlays = on(LIVE_TOPICS.keptTokens);
      const pick = Math.min(2, images.length - 1);
      const image = images[pick];
      const overlay = overlays[pick];
      if (image === undefined || overlay === undefined) throw new Error('no frame was captured');
      const scale = 3;
      const frame = await annotatedFrame(image, overlay, scale);
      const side = (image.width as number) * scale;
      const sent = on(LIVE_TOPICS.sent) as { period: number; values: number[] }[];
      const chunks = on(LIVE_TOPICS.chunk) as { steps: { values: number[] }[] }[];
      const stats = on(LIVE_TOPICS.stats) as {
        latency_ms: number;
        stages_ms: Record<string, number>;
        commands: number;
      }[];
      const chartW = 560;
      const chartH = Math.floor(side / 2);
      const dot = (d: number): Series['points'] =>
        sent.map((s) => [s.period, s.values[d] ?? 0] as const);
      const planned = (d: number): Series['points'] =>
        chunks.map((c, i) => [stats[i]?.commands ?? i, c.steps[0]?.values[d] ?? 0] as const);
      const actions = chart(
        'Actions: planned (chunk, first action) vs sent',
        'control period',
        [
          { name: 'sent x', colour: '#4fa3ff', points: dot(0) },
          { name: 'planned x', colour: '#9fd0ff', points: planned(0), dashed: true },
          { name: 'sent y', colour: '#ff9f43', points: dot(1) },
          { name: 'planned y', colour: '#ffd29f', points: planned(1), dashed: true },
        ],
        chartW,
        chartH,
      );
      const latency = chart(
        'Latency per chunk (ms)',
        'chunk',
        [
          {
            name: 'frame → chunk',
            colour: '#ff5c8a',
            points: stats.map((s, i) => [i, s.latency_ms] as const),
          },
          {
            name: 'preprocess',
            colour: '#ffd166',
            points: stats.map((s, i) => [i, s.stages_ms.preprocess ?? 0] as const),
          },
          {
            name: 'encode',
            colour: '#6fdc8c',
            points: stats.map((s, i) => [i, s.stages_ms.encode ?? 0] as const),
          },
          {
            name: 'policy',
            colour: '#c59cff',
            points: stats.map((s, i) => [i, s.stages_ms.policy ?? 0] as const),
          },
        ],
        chartW,
        side - chartH,
      );
      const instruction = (on(LIVE_TOPICS.instruction)[pick]?.text as string | undefined) ?? '';
      const title = `<svg xmlns="http://www.w3.org/2000/svg" width="${side + chartW}" height="30" font-family="sans-serif"><rect width="100%" height="30" fill="#111"/><text x="10" y="20" fill="#eee" font-size="14">vla-node live view (rendered from the live server's messages, not a Foxglove screenshot): "${instruction}"</text></svg>`;
      const out = resolve(String(values.out));
      await sharp({
        create: { width: side + chartW, height: side + 30, channels: 3, background: '#111' },
      })
        .composite([
          { input: Buffer.from(title), left: 0, top: 0 },
          { input: frame, left: 0, top: 30 },
          { input: Buffer.from(actions), left: side, top: 30 },
          { input: Buffer.from(latency), left: side, top: 30 + chartH },
        ])
        .png()
        .toFile(out);
      const result = {
        file: out,
        messages: viewer.messages.length,
        frames: images.length,
        actions_sent: sent.length,
        chunks: chunks.length,
        dropped: server.stats().dropped,
      };
      io.result(
        result,
        `wrote ${out} from ${result.messages} captured messages (${result.frames} frames, ${result.chunks} chunks, ${result.actions_sent} actions sent)`,
      );
      return 0;
    } finally {
      await server.close();
      await pipeline.release();
    }
  },
};
