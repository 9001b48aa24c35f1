/**
 * The bridge's CURVE client allow-list: a ZAP handler (ZeroMQ RFC 27) on a REP socket bound at
 * `inproc://zeromq.zap.01` of the server's own context, which libzmq asks about every CURVE
 * handshake. A client whose long-term public key is listed is admitted (200); any other is refused
 * (400) and libzmq drops the connection before a message reaches the server.
 */

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Reply, type Context } from 'zeromq';
import { ConfigError, describe } from '../../errors.js';
import { printable } from '../../util/printable.js';

/** The Z85 alphabet (ZeroMQ RFC 32), value = index. */
const Z85_CHARS =
  '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUES = new Map(
  Array.from({ length: Z85_CHARS.length }, (_, i) => [Z85_CHARS.charAt(i), i] as const),
);
const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** The endpoint libzmq sends ZAP requests to (fixed by RFC 27). */
export const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

/** Whether `key` is a 40-character Z85 CURVE key (every 5-character group within 32 bits). */
export function isZ85Key(key: string): boolean {
  if (!Z85_KEY.test(key)) return false;
  try {
    z85Decode(key);
    return true;
  } catch {
    return false;
  }
}

/** Decode Z85 text (length a multiple of 5) into bytes. */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) {
    throw new RangeError(
      `Expected Z85 text of a multiple of 5 characters but received ${text.length}`,
    );
  }
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = i; j < i + 5; j++) {
      const digit = Z85_VALUES.get(text[j] ?? '');
      if (digit === undefined) {
        throw new RangeError(`Expected Z85 characters but received ${JSON.stringify(text[j])}`);
      }
      value = value * 85 + digit;
    }
    if (value > 0xffffffff)
      throw new RangeError(`Expected Z85 text but ${text.slice(i, i + 5)} overflows`);
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}

/** Encode bytes (length a multiple of 4) as Z85 text. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) {
    throw new RangeError(`Expected a multiple of 4 bytes but received ${bytes.length}`);
  }
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let text = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = view.readUInt32BE(i);
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(Z85_CHARS[value % 85] ?? '');
      value = Math.floor(value / 85);
    }
    text += chunk.join('');
  }
  return text;
}

/**
 * Parse an allow-list file: one Z85 client public key (40 characters) per line, optionally
 * followed by whitespace and a label; blank lines and lines starting with `#` that are not a key
 * are ignored. Returns the keys in file order, without duplicates.
 *
 * @throws {ConfigError} naming the line of anything else, or when the file lists no key.
 */
export function parseClientKeys(text: string, source: string): string[] {
  const keys = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const [first = ''] = line.split(/\s+/, 1);
    if (isZ85Key(first)) {
      keys.add(first);
      return;
    }
    if (line.startsWith('#')) return;
    throw new ConfigError(
      // Never the token itself: a wrong file (a private key, a password file) must not be echoed.
      `Expected a 40-character Z85 CURVE public key (optionally followed by a label) on line ${i + 1} of ${printable(source)} but received a ${first.length}-character token that is not one (not shown)`,
      { field: 'serve.curve_client_keys_file' },
    );
  });
  if (keys.size === 0) {
    throw new ConfigError(
      `Expected at least one Z85 CURVE public key in ${source} but it lists none (an empty allow-list would refuse every client)`,
      { field: 'serve.curve_client_keys_file' },
    );
  }
  return [...keys];
}

/** The largest allow-list file read: 1 MiB, some 25,000 keys with their labels. */
const MAX_KEYS_FILE_BYTES = 1 << 20;

/**
 * Read and parse an allow-list file (see {@link parseClientKeys}). Only a regular file of at most
 * 1 MiB is read: a FIFO in its place would block the read (and with it every later SIGHUP reload
 * and the server's exit) until something wrote to it.
 */
export async function readClientKeys(file: string): Promise<string[]> {
  const refuse = (what: string, cause?: unknown): ConfigError =>
    new ConfigError(
      `Expected a readable regular file of at most ${MAX_KEYS_FILE_BYTES} bytes of client public keys for serve.curve_client_keys_file but ${describe(file)} ${what}`,
      { field: 'serve.curve_client_keys_file', ...(cause === undefined ? {} : { cause }) },
    );
  let handle: FileHandle;
  try {
    // Non-blocking: opening a FIFO to read otherwise waits for a writer.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw refuse('cannot be opened', cause);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw refuse('is not a regular file');
    if (info.size > MAX_KEYS_FILE_BYTES) throw refuse(`has ${info.size} bytes`);
    return parseClientKeys(await handle.readFile('utf8'), file);
  } finally {
    await handle.close();
  }
}

/** The raw keys (hex) of an allow-list, checked. */
function allowedSet(clientKeys: readonly string[]): Set<string> {
  if (clientKeys.length === 0) {
    throw new ConfigError(
      'Expected at least one client public key for the CURVE allow-list but received none',
      { field: 'serve.curve_client_keys_file' },
    );
  }
  const allowed = new Set<string>();
  clientKeys.forEach((key, i) => {
    if (!isZ85Key(key)) {
      throw new ConfigError(
        `Expected a 40-character Z85 CURVE public key for client key ${i} but received ${key.length} characters`,
        { field: 'serve.curve_client_keys_file' },
      );
    }
    allowed.add(z85Decode(key).toString('hex'));
  });
  return allowed;
}

/** Counts of ZAP decisions since the handler started. */
export interface ZapStats {
  readonly admitted: number;
  readonly refused: number;
}

/**
 * Answers libzmq's ZAP requests for one context: CURVE clients whose public key is in the list are
 * admitted, every other request is refused. Start it before the server socket binds.
 *
 * @example
 * const context = new Context();
 * const zap = await ZapHandler.start(context, ['rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'], console.log);
 * const router = new Router({ context, curveServer: true, curveSecretKey });
 */
export class ZapHandler {
  readonly #socket: Reply;
  #allowed: ReadonlySet<string>;
  readonly #log: (line: string) => void;
  /** Refused keys already logged (a refused client that retries is logged once). */
  readonly #logged = new Set<string>();
  #admitted = 0;
  #refused = 0;
  #loop: Promise<void> = Promise.resolve();

  private constructor(socket: Reply, allowed: ReadonlySet<string>, log: (line: string) => void) {
    this.#socket = socket;
    this.#allowed = allowed;
    this.#log = log;
  }

  /**
   * Bind the handler in `context`.
   *
   * @throws {ConfigError} for a key that is not 40 Z85 characters or an empty list.
   */
  static async start(
    context: Context,
    clientKeys: readonly string[],
    log: (line: string) => void = () => undefined,
  ): Promise<ZapHandler> {
    const allowed = allowedSet(clientKeys);
    const socket = new Reply({ context, linger: 0 });
    try {
      await socket.bind(ZAP_ENDPOINT);
    } catch (error) {
      socket.close();
      throw error;
    }
    const handler = new ZapHandler(socket, allowed, log);
    handler.#loop = handler.#serve();
    return handler;
  }

  /**
   * Replace the allow-list. It applies to the CURVE handshakes that follow: a client already
   * connected stays connected until it reconnects.
   *
   * @throws {ConfigError} (and keeps the current list) for a malformed key or an empty list.
   */
  replaceKeys(clientKeys: readonly string[]): void {
    this.#allowed = allowedSet(clientKeys);
    this.#logged.clear();
  }

  stats(): ZapStats {
    return { admitted: this.#admitted, refused: this.#refused };
  }

  /** Stop answering (close after the server socket). */
  async close(): Promise<void> {
    this.#socket.close();
    await this.#loop;
  }

  async #serve(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        await this.#socket.send(this.#answer(frames));
      }
    } catch (error) {
      if (!this.#socket.closed)
        this.#log(`bridge: ZAP handler failed: ${printable(String(error))}`);
    }
  }

  /** The ZAP reply to one request: [version, request id, status, text, user id, metadata]. */
  #answer(frames: Buffer[]): (Buffer | string)[] {
    const [version, requestId = Buffer.alloc(0), , address, , mechanism, key] = frames;
    const reply = (status: '200' | '400' | '500', text: string, user = ''): (Buffer | string)[] => [
      '1.0',
      requestId,
      status,
      text,
      user,
      '',
    ];
    if (version?.toString() !== '1.0') return reply('500', 'unsupported ZAP version');
    if (mechanism?.toString() !== 'CURVE' || key?.length !== 32) {
      this.#refused++;
      return reply('400', 'CURVE client key required');
    }
    const z85 = z85Encode(key);
    if (this.#allowed.has(key.toString('hex'))) {
      this.#admitted++;
      return reply('200', 'OK', z85);
    }
    this.#refused++;
    if (!this.#logged.has(z85) && this.#logged.size < 1000) {
      this.#logged.add(z85);
      this.#log(
        `bridge: refused CURVE client ${z85} from ${printable(address?.toString() ?? '?', 64)}: not in the allow-list`,
      );
    }
    return reply('400', 'client key not allowed');
  }
}
