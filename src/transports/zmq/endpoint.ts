/** Checks of the address the bridge binds and of its CURVE key, before any socket exists. */

import { isIPv4 } from 'node:net';
import { ConfigError, describe } from '../../errors.js';

/** The Z85 alphabet (ZeroMQ RFC 32). */
const Z85 = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** Whether `endpoint` can only be reached from this machine (loopback TCP, ipc, inproc). */
export function isLocalEndpoint(endpoint: string): boolean {
  const match = /^(tcp|ipc|inproc):\/\/(.+)$/.exec(endpoint);
  if (match === null) return false;
  const [, transport, rest] = match as unknown as [string, string, string];
  if (transport !== 'tcp') return true;
  const colon = rest.lastIndexOf(':');
  if (colon < 0) return false;
  let host = rest.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  return isIPv4(host) && host.startsWith('127.');
}

/**
 * Refuse a bind the bridge must not make: a transport other than tcp/ipc/inproc, or an address
 * reachable from other machines without a CURVE secret key. Returns the validated key.
 *
 * @throws {ConfigError} naming `bind` or `curve_secret_key`.
 */
export function checkBind(endpoint: string, curveSecretKey: string | undefined): void {
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(endpoint)) {
    throw new ConfigError(
      `Expected a bind address tcp://HOST:PORT, ipc://PATH or inproc://NAME but received ${describe(endpoint)}`,
      { field: 'bind' },
    );
  }
  if (curveSecretKey !== undefined && !Z85.test(curveSecretKey)) {
    throw new ConfigError(
      `Expected a CURVE secret key of 40 Z85 characters for curve_secret_key but received ${curveSecretKey.length} characters`,
      { field: 'curve_secret_key' },
    );
  }
  if (curveSecretKey === undefined && !isLocalEndpoint(endpoint)) {
    throw new ConfigError(
      `Expected a loopback bind address (tcp://127.0.0.1:PORT, tcp://[::1]:PORT, ipc:// or inproc://) but received ${describe(endpoint)}, which other machines can reach: pass a CURVE secret key (--curve-secret-key, Z85) to bind it`,
      { field: 'bind' },
    );
  }
}
