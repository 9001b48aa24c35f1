import { readFileSync } from 'node:fs';
import { McapIndexedReader, type McapTypes } from '@mcap/core';
import { MessageReader } from '@foxglove/rosmsg2-serialization';
import { ros2jazzy } from '@foxglove/rosmsg-msgs-common';

/** The manifest of the shipped model, as record-sim needs it. */
export const TINY = { controlRateHz: 10, horizon: 8 } as const;

export interface ReadBack {
  readonly header: McapTypes.Header;
  readonly schemas: McapTypes.Schema[];
  readonly channels: McapTypes.Channel[];
  /** Messages per topic, in log-time order. */
  readonly messages: Map<string, McapTypes.Message[]>;
}

/** Read a whole MCAP file back with @mcap/core's indexed reader. */
export async function readBack(file: string): Promise<ReadBack> {
  const bytes = readFileSync(file);
  const reader = await McapIndexedReader.Initialize({
    readable: {
      size: () => Promise.resolve(BigInt(bytes.length)),
      read: (offset, size) =>
        Promise.resolve(bytes.subarray(Number(offset), Number(offset + size))),
    },
  });
  const channels = [...reader.channelsById.values()];
  const messages = new Map<string, McapTypes.Message[]>();
  for await (const m of reader.readMessages()) {
    const topic = reader.channelsById.get(m.channelId)?.topic ?? '?';
    const list = messages.get(topic) ?? [];
    list.push(m);
    messages.set(topic, list);
  }
  return { header: reader.header, schemas: [...reader.schemasById.values()], channels, messages };
}

type Common = typeof ros2jazzy;

/** A CDR reader built from @foxglove/rosmsg-msgs-common's standard definitions. */
export function standardReader(...types: (keyof Common)[]): MessageReader {
  return new MessageReader(types.map((t) => ros2jazzy[t]));
}
