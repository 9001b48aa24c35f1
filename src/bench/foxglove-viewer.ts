/**
 * A Foxglove viewer in a process of its own, for `vla-node bench foxglove`: it connects with the
 * protocol's client, subscribes to every channel, prints `ready` once the subscriptions are in,
 * and then reads everything (`fast`) or stops reading its socket (`stalled`, a viewer whose
 * machine or network cannot keep up). On SIGTERM it prints what it received as one JSON line.
 *
 * Usage: node foxglove-viewer.js ws://127.0.0.1:PORT fast|stalled
 */

import wsProtocol, { type IWebSocket } from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';

const { FoxgloveClient } = wsProtocol;

const [url, mode] = process.argv.slice(2);
if (url === undefined || (mode !== 'fast' && mode !== 'stalled')) {
  process.stderr.write('usage: foxglove-viewer URL fast|stalled\n');
  process.exit(2);
}
const ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
// ws's WebSocket is the IWebSocket the library is written against; only send()'s overloads differ.
const client = new FoxgloveClient({ ws: ws as unknown as IWebSocket });
let messages = 0;
let bytes = 0;
let subscribed = false;
client.on('message', (m) => {
  messages++;
  bytes += m.data.byteLength;
});
client.on('advertise', (channels) => {
  if (subscribed) return;
  subscribed = true;
  for (const c of channels) client.subscribe(c.id);
  // A subscription to a channel that does not exist is answered with a status: once it is here,
  // the server has taken the subscriptions before it.
  client.subscribe(2 ** 31);
});
client.on('status', () => {
  process.stdout.write('ready\n');
  if (mode === 'stalled') ws.pause();
});
// A paused socket does not keep the process alive: this does, until SIGTERM.
const alive = setInterval(() => undefined, 1 << 30);
process.on('SIGTERM', () => {
  clearInterval(alive);
  process.stdout.write(`${JSON.stringify({ messages, bytes })}\n`);
  process.exit(0);
});
