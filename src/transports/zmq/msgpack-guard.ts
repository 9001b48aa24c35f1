/**
 * A structural check of MessagePack bytes before they reach the decoder: exactly one value, no
 * extension types (so nothing can be revived into a Date, Error, record or class instance), map
 * keys that are strings, bounded nesting and a bounded number of values, and declared lengths that
 * fit in the bytes that are actually there.
 */

import { BridgeError } from './errors.js';

/** Bounds on the shape of one message. */
export interface MsgpackBounds {
  /** Deepest nesting of maps and arrays (the top-level map is depth 1). */
  readonly maxDepth: number;
  /** Most values (map keys and values, array elements, scalars) in one message. */
  readonly maxValues: number;
}

export const MSGPACK_BOUNDS: MsgpackBounds = Object.freeze({ maxDepth: 16, maxValues: 10_000 });

function invalid(message: string): BridgeError {
  return new BridgeError('invalid', message, { field: 'message' });
}

/**
 * Walk `bytes` as one MessagePack value whose top level is a map.
 *
 * @throws {BridgeError} `invalid` naming the byte offset of the first problem.
 */
export function checkMsgpack(bytes: Uint8Array, bounds: MsgpackBounds = MSGPACK_BOUNDS): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  let values = 0;

  const need = (n: number, what: string): void => {
    if (n > end - pos) {
      throw invalid(
        `Expected ${n} more bytes for ${what} at offset ${pos} but the message has ${end - pos}`,
      );
    }
  };
  const length = (size: 1 | 2 | 4, what: string): number => {
    need(size, `the length of ${what}`);
    const n =
      size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return n;
  };
  const container = (count: number, perItem: number, depth: number, what: string): void => {
    if (depth > bounds.maxDepth) {
      throw invalid(`Expected at most ${bounds.maxDepth} levels of nesting but ${what} is deeper`);
    }
    // Every value takes at least one byte: a count the remaining bytes cannot hold is a lie.
    if (count * perItem > end - pos) {
      throw invalid(
        `Expected at least ${count * perItem} bytes for ${what} of ${count} entries at offset ${pos} but the message has ${end - pos}`,
      );
    }
  };

  const value = (depth: number, key: boolean): void => {
    if (++values > bounds.maxValues) {
      throw invalid(`Expected at most ${bounds.maxValues} values in one message`);
    }
    need(1, 'a value');
    const at = pos;
    const b = view.getUint8(pos++);
    const isString = (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
    if (key && !isString) {
      throw invalid(
        `Expected a string map key at offset ${at} but received type byte 0x${b.toString(16)}`,
      );
    }
    if (b <= 0x7f || b >= 0xe0) return; // fixint
    if (b <= 0x8f) {
      map(b & 0x0f, depth + 1);
      return;
    }
    if (b <= 0x9f) {
      array(b & 0x0f, depth + 1);
      return;
    }
    if (b <= 0xbf) {
      skip(b & 0x1f, 'a string');
      return;
    }
    switch (b) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return;
      case 0xc4:
        skip(length(1, 'bin'), 'bin');
        return;
      case 0xc5:
        skip(length(2, 'bin'), 'bin');
        return;
      case 0xc6:
        skip(length(4, 'bin'), 'bin');
        return;
      case 0xca:
        skip(4, 'a float32');
        return;
      case 0xcb:
        skip(8, 'a float64');
        return;
      case 0xcc:
      case 0xd0:
        skip(1, 'an integer');
        return;
      case 0xcd:
      case 0xd1:
        skip(2, 'an integer');
        return;
      case 0xce:
      case 0xd2:
        skip(4, 'an integer');
        return;
      case 0xcf:
      case 0xd3:
        skip(8, 'an integer');
        return;
      case 0xd9:
        skip(length(1, 'a string'), 'a string');
        return;
      case 0xda:
        skip(length(2, 'a string'), 'a string');
        return;
      case 0xdb:
        skip(length(4, 'a string'), 'a string');
        return;
      case 0xdc:
        array(length(2, 'an array'), depth + 1);
        return;
      case 0xdd:
        array(length(4, 'an array'), depth + 1);
        return;
      case 0xde:
        map(length(2, 'a map'), depth + 1);
        return;
      case 0xdf:
        map(length(4, 'a map'), depth + 1);
        return;
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        throw invalid(
          `Expected no MessagePack extension types but received one (type byte 0x${b.toString(16)}) at offset ${at}`,
        );
      default:
        throw invalid(
          `Expected a MessagePack value but received byte 0x${b.toString(16)} at offset ${at}`,
        );
    }
  };
  const skip = (n: number, what: string): void => {
    need(n, what);
    pos += n;
  };
  const array = (count: number, depth: number): void => {
    container(count, 1, depth, 'an array');
    for (let i = 0; i < count; i++) value(depth, false);
  };
  const map = (count: number, depth: number): void => {
    container(count, 2, depth, 'a map');
    for (let i = 0; i < count; i++) {
      value(depth, true);
      value(depth, false);
    }
  };

  if (end === 0) throw invalid('Expected a MessagePack map but received an empty frame');
  const first = view.getUint8(0);
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) {
    throw invalid(
      `Expected a MessagePack map at the top level but received type byte 0x${first.toString(16)}`,
    );
  }
  value(0, false);
  if (pos !== end) {
    throw invalid(`Expected one MessagePack value but ${end - pos} bytes follow it`);
  }
}
