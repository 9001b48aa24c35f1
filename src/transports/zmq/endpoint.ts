/** Checks of the address the bridge binds and of its CURVE key, before any socket exists. */

import { createServer, isIP, isIPv4 } from 'node:net';
import { ConfigError, describe } from '../../errors.js';
import { printable } from '../../util/printable.js';

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
 * One address, nothing ZeroMQ would read as more: `;` separates a source from a destination in
 * ZeroMQ endpoints, and no transport's address holds whitespace or control characters.
 */
function wellFormed(endpoint: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (/[;\s\u0000-\u001f\u007f]/.test(endpoint)) return false;
  const tcp = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-_*]+):(\*|\d{1,5})$/.exec(endpoint);
  if (endpoint.startsWith('tcp://')) {
    if (tcp === null) return false;
    const port = tcp[2] as string;
    return port === '*' || (Number(port) >= 1 && Number(port) <= 65535);
  }
  return true;
}

/**
 * Refuse a bind the bridge must not make: a transport other than tcp/ipc/inproc, or an address
 * reachable from other machines without a CURVE secret key. Returns the validated key.
 *
 * @throws {ConfigError} naming `bind` or `curve_secret_key`.
 */
export function checkBind(endpoint: string, curveSecretKey: string | undefined): void {
  if (!/^(tcp|ipc|inproc):\/\/.+/.test(endpoint) || !wellFormed(endpoint)) {
    throw new ConfigError(
      `Expected a bind address tcp://HOST:PORT (PORT 1-65535 or *), ipc://PATH or inproc://NAME without spaces, control characters or ';' but received ${describe(printable(endpoint))}`,
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

/** The error of a bind that failed: the address is taken, not on this machine, or not allowed. */
export function bindError(endpoint: string, cause: unknown): ConfigError {
  const code = (cause as { code?: unknown } | null)?.code;
  const errno = typeof code === 'string' ? code : undefined;
  const why =
    errno === 'EADDRINUSE'
      ? 'it is in use by another process'
      : errno === 'EADDRNOTAVAIL'
        ? 'no interface of this machine has that address'
        : errno === 'EACCES'
          ? 'this user may not bind it'
          : `the bind failed (${printable(cause instanceof Error ? cause.message : String(cause), 200)})`;
  return new ConfigError(
    `Expected a free local address for bind but received ${describe(printable(endpoint))}: ${why}`,
    { field: 'bind', cause },
  );
}

/**
 * Check, before the model loads, that a `tcp://HOST:PORT` bind with a fixed port can be made: a
 * plain TCP listener takes the address and lets it go. Other transports, `*` ports and interface
 * names pass (the bind itself reports them, through {@link bindError}).
 *
 * @throws {ConfigError} naming `bind`.
 */
export async function probeBind(endpoint: string): Promise<void> {
  const tcp = /^tcp:\/\/(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(endpoint);
  if (tcp === null) return;
  const host = tcp[1] ?? tcp[2] ?? '';
  // Interface names and wildcards are ZeroMQ's to resolve: its own bind reports them.
  if (isIP(host) === 0 && host !== 'localhost') return;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: Number(tcp[3]), exclusive: true }, () => {
      server.close(() => {
        resolve();
      });
    });
  }).catch((error: unknown) => {
    throw bindError(endpoint, error);
  });
}
