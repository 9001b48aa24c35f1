/**
 * `vla-node bench ingest`: camera-frame ingest figures (preprocess p50 by size and encoding,
 * the sharp resize it replaced, several cameras at once) and the node's end-to-end latency on
 * 640x480 camera frames against the bare ONNX Runtime sessions.
 */
import { benchObservations } from '../bench/frames.js';
import { measureIngest, type IngestTimings } from '../bench/ingest.js';
import { measureOverhead, type OverheadResult } from '../bench/overhead.js';
import { ConfigError } from '../errors.js';
import { kernelBackend } from '../native/index.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

/** The targets on the 2-core reference machine. */
export const INGEST_TARGETS = {
  preprocess_640x480_raw_ms: 0.3,
  preprocess_1280x720_raw_ms: 0.6,
  end_to_end_640x480_ratio: 1.15,
  three_cameras_ratio: 2,
} as const;

export interface BenchIngestReport {
  readonly kernels: string;
  readonly model: string;
  readonly ingest: IngestTimings;
  /** VlaPipeline.infer on 640x480 rgb8 frames against the bare sessions (pre-made tensors). */
  readonly end_to_end_640x480: Omit<OverheadResult, 'actions'>;
  readonly targets: typeof INGEST_TARGETS;
}

function integerOption(values: Record<string, unknown>, name: string, min: number): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < min) {
    throw new ConfigError(
      `Expected an integer >= ${min} for --${name} but received ${String(values[name])}`,
      { field: name },
    );
  }
  return v;
}

/** The human table of a report. */
export function ingestTable(r: BenchIngestReport): string {
  const t = r.ingest.preprocess_p50_ms;
  const lines = [
    `kernels: ${r.kernels}; model ${r.model}; p50 of ${r.ingest.runs} calls, median of ${r.ingest.repeats} repeats`,
    '',
    '| frame | rgb8 | yuv422 | bayer_rggb8 | JPEG | rgb8 via sharp (before) |',
    '|---|---:|---:|---:|---:|---:|',
    ...Object.entries(t).map(
      ([size, row]) =>
        `| ${size} | ${row.rgb8} ms | ${row.yuv422} ms | ${row.bayer_rggb8} ms | ${row.jpeg} ms | ${r.ingest.sharp_rgb8_p50_ms[size] ?? ''} ms |`,
    ),
    '',
    `three 640x480 cameras at once: ${r.ingest.cameras.three_p50_ms} ms, one: ${r.ingest.cameras.one_p50_ms} ms (${r.ingest.cameras.ratio}x; one after another: ${r.ingest.cameras.three_sequential_p50_ms} ms)`,
    `end to end at 640x480 rgb8: node p50 ${r.end_to_end_640x480.node.median.p50} ms, bare sessions ${r.end_to_end_640x480.bare.median.p50} ms, ratio ${r.end_to_end_640x480.ratio_p50.median}x (preprocess stage p50 ${r.end_to_end_640x480.node_stages_p50.preprocess ?? ''} ms)`,
  ];
  return lines.join('\n');
}

export const benchIngestCommand: CommandSpec = {
  name: 'bench ingest',
  summary:
    'time camera-frame ingest (640x480 and 1280x720; rgb8, yuv422, Bayer, JPEG), three cameras at once, and end to end at 640x480 against the bare sessions',
  options: {
    runs: { type: 'string', default: '200', help: 'timed calls per figure and repeat' },
    repeats: {
      type: 'string',
      default: '5',
      help: 'repeats (the median of their p50 is reported)',
    },
    frames: { type: 'string', default: '30', help: 'observations per end-to-end repeat' },
    ...CONFIG_OPTIONS,
  },
  async run(values, io) {
    const runs = integerOption(values, 'runs', 1);
    const repeats = integerOption(values, 'repeats', 1);
    const frames = integerOption(values, 'frames', 1);
    const config = await configFromArgs(values);
    const model = await modelFromConfig(config);
    const m = model.manifest;
    const ingest = await measureIngest(m, m.image, runs, repeats, (line) => {
      io.progress(line);
    });
    io.progress(`end to end at 640x480 (${frames} frames x ${repeats} repeats)`);
    const camera = await measureOverhead(
      model,
      pipelineOptions(config, () => undefined),
      benchObservations(m, frames, 1, { width: 640, height: 480 }),
      repeats,
    );
    const { actions: _actions, ...endToEnd } = camera;
    const report: BenchIngestReport = {
      kernels: kernelBackend().name,
      model: m.name,
      ingest,
      end_to_end_640x480: endToEnd,
      targets: INGEST_TARGETS,
    };
    io.result(report, ingestTable(report));
    return 0;
  },
};
