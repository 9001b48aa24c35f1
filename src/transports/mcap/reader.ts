/**
 * Reading rosbag2 MCAP storage: a single `.mcap` file or a bag folder (metadata.yaml plus its
 * files), indexed when the file has a summary, streamed (as far as it goes) when it has not.
 */

import { createHash } from 'node:crypto';
import { open, readdir, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as zlib from 'node:zlib';
import { decompress } from 'fzstd';
import {
  McapIndexedReader,
  McapStreamReader,
  type DecompressHandlers,
  type IReadable,
  type McapTypes,
} from '@mcap/core';
import { parse as parseYaml } from 'yaml';
import { describe, printable } from '../../errors.js';
import { BagError } from './errors.js';

/** A topic of a bag file as its Channel and Schema records describe it. */
export interface BagChannel {
  readonly id: number;
  readonly topic: string;
  /** Schema name, e.g. `sensor_msgs/msg/Image`; empty when the channel has no schema. */
  readonly type: string;
  /** e.g. `ros2msg`; empty when the channel has no schema. */
  readonly schemaEncoding: string;
  /** e.g. `cdr`. */
  readonly messageEncoding: string;
  readonly schemaData: Uint8Array;
}

/** What reading a bag produces, in order: channels before their messages. */
export type BagEvent =
  | { readonly kind: 'channel'; readonly file: string; readonly channel: BagChannel }
  | {
      readonly kind: 'message';
      readonly file: string;
      readonly channel: BagChannel;
      readonly logTime: bigint;
      readonly data: Uint8Array;
    }
  | {
      readonly kind: 'warning';
      readonly file: string;
      /**
       * `truncated`: a file with no footer, read up to its last complete record.
       * `duplicate_message`: a message identical to one already read (same channel, sequence, log
       * and publish time, same bytes), e.g. from a chunk written twice; it is not yielded.
       */
      readonly warning: 'truncated' | 'duplicate_message';
      readonly detail: string;
    };

export interface BagReadOptions {
  /** Chunk decompressors by compression name (`zstd`, `lz4`), merged over the built-in ones. */
  readonly decompressHandlers?: DecompressHandlers;
  /** Validate chunk CRCs (default true). */
  readonly validateCrcs?: boolean;
}

type ZstdZlib = { zstdDecompressSync?: (buffer: Uint8Array) => Buffer };

/**
 * Decompressors available without configuration: zstd from Node's zlib (Node >= 22.15), else the
 * pure-JavaScript fzstd. Pass others (lz4) through {@link BagReadOptions.decompressHandlers}.
 */
export function builtinDecompressHandlers(): Promise<DecompressHandlers> {
  const native = (zlib as ZstdZlib).zstdDecompressSync;
  if (native !== undefined) {
    return Promise.resolve({ zstd: (buffer) => new Uint8Array(native(buffer)) });
  }
  return Promise.resolve({
    zstd: (buffer, size) => decompress(buffer, new Uint8Array(Number(size))),
  });
}

/**
 * The storage files of a bag, in playback order: the file itself, or the folder's
 * metadata.yaml `relative_file_paths` (all `.mcap` files, sorted, when it has none). Every file
 * must be a regular file (not a FIFO or a device), listed once.
 *
 * @throws {BagError} when the bag, or a file its metadata lists, is missing or not a regular file.
 */
export async function bagFiles(path: string): Promise<string[]> {
  const shown = printable(path);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw new BagError(`Expected a bag file or folder at ${shown} but it does not exist`, {
      field: 'bag',
      cause: error,
    });
  }
  if (!info.isDirectory()) {
    if (!info.isFile()) {
      throw new BagError(
        `Expected a bag file or folder at ${shown} but it is neither a regular file nor a folder`,
        { field: 'bag' },
      );
    }
    return [path];
  }
  let metadata: unknown;
  try {
    metadata = parseYaml(await readFile(join(path, 'metadata.yaml'), 'utf8'));
  } catch {
    metadata = undefined;
  }
  const listed = relativeFilePaths(metadata);
  if (listed !== undefined) {
    const files: string[] = [];
    const seen = new Set<string>();
    for (const [i, p] of listed.entries()) {
      const file = join(path, basename(p));
      const field = `bag.metadata.relative_file_paths[${i}]`;
      let split;
      try {
        split = await stat(file);
      } catch (error) {
        throw new BagError(
          `Expected the split file ${printable(p)} listed in ${shown}/metadata.yaml but it does not exist in ${shown}`,
          { field, cause: error },
        );
      }
      if (!split.isFile()) {
        throw new BagError(
          `Expected the split file ${printable(p)} listed in ${shown}/metadata.yaml to be a regular file but it is not`,
          { field },
        );
      }
      const real = await realpath(file);
      if (seen.has(real)) {
        throw new BagError(
          `Expected each split file once in ${shown}/metadata.yaml but ${printable(p)} is listed twice (its messages would replay twice)`,
          { field },
        );
      }
      seen.add(real);
      files.push(file);
    }
    return files;
  }
  const names = (await readdir(path)).filter((n) => n.endsWith('.mcap')).sort();
  if (names.length === 0) {
    throw new BagError(`Expected .mcap files or a metadata.yaml in ${shown} but found none`, {
      field: 'bag',
    });
  }
  return names.map((n) => join(path, n));
}

function relativeFilePaths(metadata: unknown): string[] | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const info = (metadata as Record<string, unknown>).rosbag2_bagfile_information;
  if (typeof info !== 'object' || info === null) return undefined;
  const paths = (info as Record<string, unknown>).relative_file_paths;
  if (!Array.isArray(paths) || paths.length === 0) return undefined;
  return paths.map((p: unknown, i) => {
    if (typeof p === 'string' && p !== '') return p;
    throw new BagError(
      `Expected a file name in metadata.yaml relative_file_paths[${i}] but received ${describe(p)}`,
      { field: `bag.metadata.relative_file_paths[${i}]` },
    );
  });
}

/**
 * Drops messages identical to one already read in the same file: same channel, sequence, log and
 * publish time and bytes. A recorder never writes a message twice, so a repeat is a duplicated
 * chunk (a copy-paste or a broken merge) and replaying it would feed the same frame twice. Two
 * messages that differ in any byte are both kept. Indexed files come in log-time order, so only
 * the messages of the current log time are remembered; streamed (unindexed) files keep a digest
 * of every message.
 */
class Duplicates {
  readonly #indexed: boolean;
  readonly #seen = new Map<string, (Uint8Array | string)[]>();
  #time: bigint | undefined;

  constructor(indexed: boolean) {
    this.#indexed = indexed;
  }

  /** True when this message was already read. */
  repeated(
    channel: number,
    sequence: number,
    logTime: bigint,
    publishTime: bigint,
    data: Uint8Array,
  ) {
    if (this.#indexed && logTime !== this.#time) {
      this.#seen.clear();
      this.#time = logTime;
    }
    const key = `${channel}:${sequence}:${logTime}:${publishTime}:${data.length}`;
    const value = this.#indexed ? data : createHash('sha1').update(data).digest('base64');
    const list = this.#seen.get(key);
    if (list === undefined) {
      this.#seen.set(key, [value]);
      return false;
    }
    const same = (a: Uint8Array | string): boolean =>
      typeof a === 'string'
        ? a === value
        : Buffer.from(a.buffer, a.byteOffset, a.length).equals(data);
    if (list.some(same)) return true;
    list.push(value);
    return false;
  }
}

function duplicateWarning(file: string, topic: string, logTime: bigint): BagEvent {
  return {
    kind: 'warning',
    file,
    warning: 'duplicate_message',
    detail: `${printable(file)}: a second copy of the message on ${printable(topic)} at log time ${logTime} ns was skipped`,
  };
}

/** The most bytes one fs.read call is given (it takes an Int32 length). */
const READ_PIECE = 1 << 30;

/** An IReadable over an open file. */
function fileReadable(handle: FileHandle, size: number): IReadable {
  return {
    size: () => Promise.resolve(BigInt(size)),
    read: async (offset, length) => {
      // Lengths come from the file's own records: a corrupt one may claim more than the file
      // holds, or more than fs.read takes in one call (which then aborts the process, beyond any
      // catch). Only the bytes that exist are read; the reader finds the record short.
      const start = Math.min(Number(offset), size);
      const buffer = new Uint8Array(Math.min(Number(length), size - start));
      let filled = 0;
      while (filled < buffer.length) {
        const piece = Math.min(buffer.length - filled, READ_PIECE);
        const { bytesRead } = await handle.read(buffer, filled, piece, start + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return buffer.subarray(0, filled);
    },
  };
}

function channelOf(
  record: McapTypes.Channel,
  schemas: ReadonlyMap<number, McapTypes.Schema>,
): BagChannel {
  const schema = schemas.get(record.schemaId);
  return {
    id: record.id,
    topic: record.topic,
    type: schema?.name ?? '',
    schemaEncoding: schema?.encoding ?? '',
    messageEncoding: record.messageEncoding,
    schemaData: schema?.data ?? new Uint8Array(0),
  };
}

/**
 * Read every message of a bag in log-time order per file (file order for unindexed files).
 * A file without a summary (a recording cut short) is streamed up to its last complete record and
 * reported with a `truncated` warning.
 *
 * @throws {BagError} on a corrupt chunk or record, or a chunk compression with no decompressor.
 */
export async function* readBag(
  path: string,
  options: BagReadOptions = {},
): AsyncGenerator<BagEvent, void, void> {
  const handlers = { ...(await builtinDecompressHandlers()), ...options.decompressHandlers };
  for (const file of await bagFiles(path)) {
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      throw new BagError(
        `Expected a readable bag file ${printable(file)} but it cannot be opened`,
        {
          field: file,
          cause: error,
        },
      );
    }
    try {
      const size = (await handle.stat()).size;
      let reader: McapIndexedReader | undefined;
      try {
        reader = await McapIndexedReader.Initialize({
          readable: fileReadable(handle, size),
          decompressHandlers: handlers,
        });
      } catch {
        reader = undefined;
      }
      if (reader === undefined) {
        yield* streamFile(file, handle, handlers, options.validateCrcs ?? true);
      } else {
        yield* indexedFile(file, reader, handlers, options.validateCrcs ?? true);
      }
    } finally {
      await handle.close();
    }
  }
}

function checkCompression(file: string, compression: string, handlers: DecompressHandlers): void {
  if (compression === '' || compression in handlers) return;
  throw new BagError(
    `Expected chunk compression ${['none', ...Object.keys(handlers)].join('|')} in ${printable(file)} but received ${printable(compression)}; install fzstd, run on Node >= 22.15, or pass a decompressor in decompressHandlers`,
    { field: `${file}: chunk.compression` },
  );
}

async function* indexedFile(
  file: string,
  reader: McapIndexedReader,
  handlers: DecompressHandlers,
  validateCrcs: boolean,
): AsyncGenerator<BagEvent, void, void> {
  for (const chunk of reader.chunkIndexes) checkCompression(file, chunk.compression, handlers);
  const channels = new Map<number, BagChannel>();
  for (const record of reader.channelsById.values()) {
    const channel = channelOf(record, reader.schemasById);
    channels.set(channel.id, channel);
    yield { kind: 'channel', file, channel };
  }
  const messages = reader.readMessages({ validateCrcs });
  const duplicates = new Duplicates(true);
  for (;;) {
    let next;
    try {
      next = await messages.next();
    } catch (error) {
      throw new BagError(
        `Expected a readable MCAP chunk in ${printable(file)} but reading failed: ${printable(errorText(error))}`,
        { field: file, cause: error },
      );
    }
    if (next.done === true) return;
    const m = next.value;
    const channel = channels.get(m.channelId);
    if (channel === undefined) continue;
    if (duplicates.repeated(m.channelId, m.sequence, m.logTime, m.publishTime, m.data)) {
      yield duplicateWarning(file, channel.topic, m.logTime);
      continue;
    }
    yield {
      kind: 'message',
      file,
      channel,
      logTime: next.value.logTime,
      data: next.value.data,
    };
  }
}

const STREAM_READ_BYTES = 4 * 1024 * 1024;

async function* streamFile(
  file: string,
  handle: FileHandle,
  handlers: DecompressHandlers,
  validateCrcs: boolean,
): AsyncGenerator<BagEvent, void, void> {
  const reader = new McapStreamReader({ decompressHandlers: handlers, validateCrcs });
  const schemas = new Map<number, McapTypes.Schema>();
  const channels = new Map<number, BagChannel>();
  const buffer = new Uint8Array(STREAM_READ_BYTES);
  const duplicates = new Duplicates(false);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    position += bytesRead;
    reader.append(buffer.subarray(0, bytesRead));
    for (;;) {
      let record;
      try {
        record = reader.nextRecord();
      } catch (error) {
        const message = errorText(error);
        const compression = /Unsupported compression (\S+)/.exec(message)?.[1];
        if (compression !== undefined) checkCompression(file, compression, handlers);
        throw new BagError(
          `Expected a readable MCAP record in ${printable(file)} but reading failed: ${printable(message)}`,
          { field: file, cause: error },
        );
      }
      if (record === undefined) break;
      if (record.type === 'Schema') {
        schemas.set(record.id, record);
      } else if (record.type === 'Channel') {
        if (channels.has(record.id)) continue;
        const channel = channelOf(record, schemas);
        channels.set(channel.id, channel);
        yield { kind: 'channel', file, channel };
      } else if (record.type === 'Message') {
        const channel = channels.get(record.channelId);
        if (channel === undefined) continue;
        const r = record;
        if (duplicates.repeated(r.channelId, r.sequence, r.logTime, r.publishTime, r.data)) {
          yield duplicateWarning(file, channel.topic, r.logTime);
          continue;
        }
        yield { kind: 'message', file, channel, logTime: record.logTime, data: record.data };
      }
    }
    if (reader.done()) return;
  }
  if (!reader.done()) {
    yield {
      kind: 'warning',
      file,
      warning: 'truncated',
      detail: `${printable(file)} ends after ${position} bytes without a footer; read up to the last complete record (${reader.bytesRemaining()} bytes left unread)`,
    };
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
