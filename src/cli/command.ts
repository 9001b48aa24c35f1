import type { ParseArgsConfig } from 'node:util';

/** One option of a sub-command: parseArgs' definition plus its help line. */
export type OptionSpec = (
  | { readonly type: 'string'; readonly default?: string; readonly multiple?: false }
  | { readonly type: 'string'; readonly multiple: true }
  | { readonly type: 'boolean'; readonly default?: boolean; readonly multiple?: false }
) & { readonly help: string; readonly short?: string };

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** How a command talks to the user: progress and human text on stderr, results on stdout. */
export interface CommandIo {
  /** A human progress line (stderr). */
  progress(message: string): void;
  /** The command's result: one JSON object on stdout with --json, a readable summary otherwise. */
  result(value: object, human?: string): void;
  readonly json: boolean;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Positional arguments, described for --help; absent when the command takes none. */
  readonly positionals?: string;
  run(values: OptionValues, io: CommandIo, positionals: readonly string[]): Promise<number>;
}

/** parseArgs options of a command, with the shared --json and --help. */
export function parseArgsOptions(spec: CommandSpec): NonNullable<ParseArgsConfig['options']> {
  const options: NonNullable<ParseArgsConfig['options']> = {
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  };
  for (const [name, o] of Object.entries(spec.options)) {
    const { help: _help, ...rest } = o;
    options[name] = rest;
  }
  return options;
}

/** The --help text of a command. */
export function commandHelp(spec: CommandSpec): string {
  const lines = [
    `vla-node ${spec.name}${spec.positionals ? ` ${spec.positionals}` : ''} [options]`,
    '',
    spec.summary,
    '',
    'Options:',
  ];
  const entries: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
    const fallback = 'default' in o && typeof o.default === 'string' ? o.default : undefined;
    const extra =
      fallback !== undefined ? ` (default: ${fallback})` : o.multiple ? ' (repeatable)' : '';
    return [`--${name}${o.type === 'string' ? ' <value>' : ''}`, `${o.help}${extra}`];
  });
  entries.push(['--json', 'print one JSON object on stdout (human output goes to stderr)']);
  entries.push(['-h, --help', 'show this help']);
  const width = Math.max(...entries.map(([l]) => l.length)) + 2;
  for (const [l, r] of entries) lines.push(`  ${l.padEnd(width)}${r}`);
  return lines.join('\n');
}
