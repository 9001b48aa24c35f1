/**
 * `vla-node bench ingest`: camera-frame ingest figures (preprocess p50 by size and encoding,
 * the sharp resize it replaced, several cameras at once) and the node's end-to-end latency on
 * 640x480 camera frames against the bare ONNX Runtime sessions.
 */
import {
  cameraIngestMarkdown,
  measureCameraIngest,
  type CameraIngestReport,
} from '../bench/ingest.js';
import { ConfigError } from '../errors.js';
import type { CommandSpec } from './command.js';
import { CONFIG_OPTIONS, configFromArgs, modelFromConfig, pipelineOptions } from './setup.js';

export { INGEST_TARGETS } from '../bench/ingest.js';

/** What `vla-node bench ingest --json` prints. */
export type BenchIngestReport = CameraIngestReport;

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
  return cameraIngestMarkdown(r).join('\n');
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
    const report = await measureCameraIngest(
      model,
      pipelineOptions(config, () => undefined),
      { runs, repeats, frames },
      (line) => {
        io.progress(line);
      },
    );
    io.result(report, ingestTable(report));
    return 0;
  },
};
