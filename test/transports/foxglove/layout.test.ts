import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as foxglove from '@foxglove/schemas/jsonschema.js';
import { LIVE_TOPICS, VLA_SCHEMAS } from '../../../src/transports/foxglove/index.js';
import { FOXGLOVE_LAYOUT } from '../../../src/cli/foxglove.js';
import { ROOT } from '../../helpers.js';

interface Layout {
  configById: Record<string, Record<string, unknown>>;
  layout: unknown;
}

const layout = JSON.parse(readFileSync(`${ROOT}${FOXGLOVE_LAYOUT}`, 'utf8')) as Layout;

/** Schema of each topic's messages, as the view advertises it. */
const SCHEMA_OF: Record<string, { properties: Record<string, unknown> }> = {
  [LIVE_TOPICS.image]: foxglove.RawImage,
  [LIVE_TOPICS.modelInput]: foxglove.RawImage,
  [LIVE_TOPICS.compressed]: foxglove.CompressedImage,
  [LIVE_TOPICS.keptTokens]: foxglove.ImageAnnotations,
  [LIVE_TOPICS.scene]: foxglove.SceneUpdate,
  [LIVE_TOPICS.log]: foxglove.Log,
  [LIVE_TOPICS.instruction]: VLA_SCHEMAS['vla.Instruction'],
  [LIVE_TOPICS.chunk]: VLA_SCHEMAS['vla.ActionChunk'],
  [LIVE_TOPICS.sent]: VLA_SCHEMAS['vla.ActionSent'],
  [LIVE_TOPICS.stats]: VLA_SCHEMAS['vla.Stats'],
};

/** Panel ids the layout tree places (strings in splits and tabs). */
function placed(node: unknown, out: string[] = []): string[] {
  if (typeof node === 'string') out.push(node);
  else if (node !== null && typeof node === 'object') {
    const n = node as { first?: unknown; second?: unknown };
    placed(n.first, out);
    placed(n.second, out);
  }
  return out;
}

/** Message paths (`/topic.field[0].sub`) and topics the panels read. */
function references(config: Record<string, unknown>): string[] {
  const refs: string[] = [];
  const image = config.imageMode as { imageTopic?: string; annotations?: object } | undefined;
  if (image?.imageTopic !== undefined) refs.push(image.imageTopic);
  refs.push(...Object.keys(image?.annotations ?? {}));
  refs.push(...Object.keys((config.topics as object | undefined) ?? {}));
  for (const p of (config.paths as { value: string }[] | undefined) ?? []) refs.push(p.value);
  for (const key of ['topicPath', 'topicToRender']) {
    if (typeof config[key] === 'string') refs.push(config[key]);
  }
  return refs;
}

describe(`the Foxglove layout ${FOXGLOVE_LAYOUT}`, () => {
  it('places every panel it configures, and configures every panel it places', () => {
    const tabs = Object.values(layout.configById).flatMap(
      (c) => (c.tabs as { layout: unknown }[] | undefined)?.flatMap((t) => placed(t.layout)) ?? [],
    );
    expect([...placed(layout.layout), ...tabs].sort()).toEqual(
      Object.keys(layout.configById).sort(),
    );
  });

  it('reads only topics the live view publishes, and fields their schemas have', () => {
    const topics = new Set<string>(Object.values(LIVE_TOPICS));
    const refs = Object.values(layout.configById).flatMap(references);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) {
      const match = /^(\/[a-z_/]+?)(?:\.([a-z_]+))?(?:[.[].*)?$/.exec(ref);
      const topic = match?.[1] ?? '';
      expect(topics.has(topic), `${ref}: topic`).toBe(true);
      const field = match?.[2];
      if (field !== undefined)
        expect(Object.keys(SCHEMA_OF[topic]?.properties ?? {}), ref).toContain(field);
    }
    // The panels the issue asks for: the image with the overlay, planned vs sent, latency.
    expect(refs).toContain(LIVE_TOPICS.keptTokens);
    expect(refs).toContain('/vla/action_sent.values[0]');
    expect(refs).toContain('/vla/action_chunk.first[0]');
    expect(refs).toContain('/vla/stats.latency_ms');
  });
});
