import { parseArgs } from 'node:util';
// First: ONNX Runtime's telemetry off before any command creates a session.
import '../backend/telemetry.js';
import { printable, VlaError } from '../errors.js';
import {
  commandHelp,
  parseArgsOptions,
  type CommandIo,
  type CommandSpec,
  type OptionValues,
} from './command.js';
import { benchDecodeCommand } from './bench-decode.js';
import { benchIngestCommand } from './bench-ingest.js';
import { benchKernelsCommand } from './bench-kernels.js';
import { benchPruningCommand } from './bench-pruning.js';
import { benchReportCommand } from './bench-report.js';
import { benchServeCommand } from './bench-serve.js';
import { benchSoakCommand } from './bench-soak.js';
import { benchFoxgloveCommand } from './bench-foxglove.js';
import { benchFlowCommand } from './bench-flow.js';
import { foxglovePictureCommand } from './foxglove-picture.js';
import { compressCommand } from './compress.js';
import { datasetCommand } from './dataset.js';
import { overlayCommand } from './overlay.js';
import { bareFoxgloveFlag } from './foxglove.js';
import { recordSimCommand } from './record-sim.js';
import { replayCommand } from './replay.js';
import { serveCommand } from './serve.js';
import { infoCommand } from './info.js';
import { simCommand } from './sim.js';
import { rosCommand, startCommand } from './start.js';

const COMMANDS: readonly CommandSpec[] = [
  startCommand,
  rosCommand,
  simCommand,
  infoCommand,
  benchPruningCommand,
  benchKernelsCommand,
  benchIngestCommand,
  benchDecodeCommand,
  benchReportCommand,
  serveCommand,
  benchServeCommand,
  benchSoakCommand,
  benchFoxgloveCommand,
  benchFlowCommand,
  foxglovePictureCommand,
  overlayCommand,
  replayCommand,
  compressCommand,
  recordSimCommand,
  datasetCommand,
];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'vla-node: run a vision-language-action policy on ONNX Runtime and publish action chunks',
    '',
    'Usage: vla-node <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Run `vla-node <command> --help` for the options of a command.',
  ].join('\n');
}

function makeIo(json: boolean): CommandIo {
  return {
    json,
    progress: (message) => process.stderr.write(`${message}\n`),
    result: (value, human) => {
      if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
      else process.stdout.write(`${human ?? JSON.stringify(value, null, 2)}\n`);
    },
  };
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, second] = argv;
  const twoWords = COMMANDS.find((c) => c.name === `${first ?? ''} ${second ?? ''}`);
  const [name, ...rest] = twoWords ? [twoWords.name, ...argv.slice(2)] : argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 1 : 0;
  }
  const command = twoWords ?? COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    process.stderr.write(`vla-node: unknown command ${JSON.stringify(name)}\n\n${usage()}\n`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: 'foxglove' in command.options ? bareFoxgloveFlag(rest) : [...rest],
      options: parseArgsOptions(command),
      allowPositionals: command.positionals !== undefined,
      strict: true,
    });
  } catch (error) {
    process.stderr.write(
      `vla-node ${name}: ${(error as Error).message}\n\n${commandHelp(command)}\n`,
    );
    return 2;
  }
  const values = parsed.values as OptionValues;
  if (values.help === true) {
    process.stdout.write(`${commandHelp(command)}\n`);
    return 0;
  }
  try {
    return await command.run(values, makeIo(values.json === true), parsed.positionals);
  } catch (error) {
    if (error instanceof VlaError) {
      // Any family's code (the library's, the bridge's wire codes) is a string.
      const code: string = (error as VlaError<string>).code;
      // Messages quote external data already escaped; this is the last line of defence for the
      // terminal (multi-line messages keep their line breaks, nothing else gets through raw).
      const message = error.message
        .split('\n')
        .map((line) => printable(line, Infinity))
        .join('\n');
      process.stderr.write(`vla-node ${name}: ${error.name} [${code}]: ${message}\n`);
      if (values.json === true) {
        process.stdout.write(
          `${JSON.stringify({ error: { code, field: error.field ?? null, message: error.message } })}\n`,
        );
      }
      return 1;
    }
    throw error;
  }
}
