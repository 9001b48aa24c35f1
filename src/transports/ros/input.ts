/**
 * Checks of the messages arriving on the node's input topics, and a throttled warning log: a bad
 * message is dropped with at most one warning per problem kind per period, and a count per kind.
 */
import {
  encodingFrameBytes,
  encodingLayout,
  encodingRowBytes,
  encodingSizeProblem,
  SUPPORTED_ENCODINGS,
} from '../../ingest/frame.js';
import { MAX_INSTRUCTION_LENGTH } from '../../pipeline/types.js';
import type { RosCompressedImage, RosImage, RosJointState } from './messages.js';

/** The kinds of bad input the node drops, each with its own counter in the diagnostics. */
export const INPUT_PROBLEMS = [
  'image encoding',
  'image size',
  'compressed image',
  'joint names',
  'joint positions',
  'instruction',
] as const;
export type InputProblemKind = (typeof INPUT_PROBLEMS)[number];

export interface InputProblem {
  readonly kind: InputProblemKind;
  readonly detail: string;
}

/** Why a sensor_msgs/Image cannot be used (unknown encoding, inconsistent size), or undefined. */
export function imageProblem(m: RosImage): InputProblem | undefined {
  const layout = encodingLayout(m.encoding);
  if (layout === undefined) {
    return {
      kind: 'image encoding',
      detail: `encoding "${m.encoding}" is not one of ${SUPPORTED_ENCODINGS.join(', ')}`,
    };
  }
  const geometry = `${m.width}x${m.height} ${m.encoding}, step ${m.step}`;
  if (!(m.width > 0 && m.height > 0 && Number.isInteger(m.width) && Number.isInteger(m.height))) {
    return { kind: 'image size', detail: `${geometry}: width and height must be positive` };
  }
  const size = encodingSizeProblem(m.encoding, layout, m.width, m.height);
  if (size !== undefined) return { kind: 'image size', detail: `${geometry}: ${size}` };
  const rowBytes = encodingRowBytes(layout, m.width);
  if (m.step < rowBytes) {
    return {
      kind: 'image size',
      detail: `${geometry}: step is less than width x ${layout.bytesPerPixel} bytes = ${rowBytes}`,
    };
  }
  const bytes = encodingFrameBytes(layout, m.step, m.height);
  if (bytes !== m.data.length) {
    const what = layout.kind === 'semiplanar420' ? 'step x height x 3/2' : 'step x height';
    return {
      kind: 'image size',
      detail: `${geometry}: ${what} = ${bytes} bytes but data has ${m.data.length}`,
    };
  }
  return undefined;
}

/** Why a sensor_msgs/CompressedImage cannot be decoded (truncated JPEG, bad PNG), or undefined. */
export function compressedProblem(m: RosCompressedImage): InputProblem | undefined {
  const d = m.data;
  const format = m.format.toLowerCase();
  if (format.includes('png')) {
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    return d.length > signature.length && signature.every((b, i) => d[i] === b)
      ? undefined
      : { kind: 'compressed image', detail: `PNG of ${d.length} bytes has no PNG signature` };
  }
  if (format.includes('jpeg') || format.includes('jpg') || format === '') {
    if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8) {
      return {
        kind: 'compressed image',
        detail: `JPEG of ${d.length} bytes does not start with the SOI marker`,
      };
    }
    // Some encoders pad after the end marker: look for it in the last bytes.
    let end = d.length;
    while (end > 2 && d[end - 1] === 0) end--;
    if (d[end - 2] !== 0xff || d[end - 1] !== 0xd9) {
      return {
        kind: 'compressed image',
        detail: `JPEG of ${d.length} bytes is truncated (no EOI marker at the end)`,
      };
    }
    return undefined;
  }
  return { kind: 'compressed image', detail: `format "${m.format}" is neither jpeg nor png` };
}

/**
 * Why a sensor_msgs/JointState gives none of the model's state joints (`stateJoints`: the names in
 * the message of its state dimensions, each to its dimension), or undefined.
 */
export function jointStateProblem(
  m: RosJointState,
  stateJoints: ReadonlyMap<string, number>,
): InputProblem | undefined {
  if (m.name.length !== m.position.length) {
    return {
      kind: 'joint names',
      detail: `${m.name.length} joint names but ${m.position.length} positions`,
    };
  }
  if (stateJoints.size > 0 && !m.name.some((n) => stateJoints.has(n))) {
    return {
      kind: 'joint names',
      detail: `joint names [${m.name.join(', ')}] include none of the state joints [${[...stateJoints.keys()].join(', ')}] (ros.state_joint_names, else the manifest's state names)`,
    };
  }
  return undefined;
}

/** Why an instruction cannot be used (empty, blank or too long), or undefined. */
export function instructionProblem(text: string): InputProblem | undefined {
  if (text.length > MAX_INSTRUCTION_LENGTH)
    return {
      kind: 'instruction',
      detail: `the instruction has ${text.length} characters, more than ${MAX_INSTRUCTION_LENGTH}`,
    };
  return text.trim() === ''
    ? { kind: 'instruction', detail: 'the instruction is empty' }
    : undefined;
}

/**
 * Counts dropped inputs per kind and logs at most one warning per kind per `periodMs`; the next
 * warning of a kind says how many of that kind were suppressed since the previous one.
 */
export class InputProblemLog {
  readonly #counts = new Map<InputProblemKind, number>();
  readonly #lastLog = new Map<InputProblemKind, number>();
  readonly #suppressed = new Map<InputProblemKind, number>();

  constructor(
    readonly periodMs: number,
    private readonly warn: (line: string) => void,
    private readonly clock: () => number,
  ) {}

  /** Count a dropped input and warn unless this kind was warned about within the period. */
  drop(problem: InputProblem, what: string): void {
    const { kind, detail } = problem;
    this.#counts.set(kind, this.count(kind) + 1);
    const now = this.clock();
    const last = this.#lastLog.get(kind);
    if (last !== undefined && now - last < this.periodMs) {
      this.#suppressed.set(kind, (this.#suppressed.get(kind) ?? 0) + 1);
      return;
    }
    const suppressed = this.#suppressed.get(kind) ?? 0;
    const tail =
      suppressed > 0
        ? ` (${suppressed} more ${kind} problems suppressed in the last ${(this.periodMs / 1000).toFixed(0)} s)`
        : '';
    this.#lastLog.set(kind, now);
    this.#suppressed.set(kind, 0);
    this.warn(`dropped ${what}: ${kind}: ${detail}${tail}`);
  }

  count(kind: InputProblemKind): number {
    return this.#counts.get(kind) ?? 0;
  }
}
