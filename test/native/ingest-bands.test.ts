/**
 * `ingestFrames`'s band threads batch after batch. A batch lives on its caller's stack; a thread
 * that joined one after its caller had returned once ran bands of the next batch with the old
 * batch's task and context: a crash, a hang, or a frame given bytes computed from another's plan.
 * The sizes of the batches and the depth of the JavaScript stack change from call to call here, as
 * they do in a node serving several robots, and every output must stay its own frame's.
 */
import { describe, expect, it } from 'vitest';
import type { IngestJob } from '../../src/native/index.js';
import { referenceKernels } from '../../src/native/index.js';
import { Rng } from '../../src/util/rng.js';
import { NATIVE_BUILDS, skipWithoutNative } from './builds.js';
import { firstDifference, frameOf, LUT, run } from './ingest-frames.js';

const skip = skipWithoutNative('ingestFrames band threads');

const CASES = [
  { encoding: 'rgb8', src: [64, 48], out: [16, 12, 'stretch'] },
  { encoding: 'yuv422', src: [66, 50], out: [9, 7, 'pad'] },
  { encoding: 'bayer_rggb8', src: [40, 30], out: [12, 10, 'crop'] },
  { encoding: 'mono8', src: [50, 40], out: [20, 13, 'stretch'] },
  { encoding: 'nv12', src: [40, 30], out: [32, 24, 'pad'] },
] as const;

/** Calls `f` under `depth` more JavaScript frames (each call's stack is elsewhere). */
function deeper(depth: number, f: () => void): void {
  if (depth === 0) f();
  else deeper(depth - 1, f);
}

describe.skipIf(skip)('ingestFrames band threads, batch after batch', () => {
  for (const [build, native] of NATIVE_BUILDS) {
    it(`gives every frame its own bytes whatever the batches around it (${build} build)`, () => {
      const frames = CASES.map(({ encoding, src, out }, i) => {
        const { frame, step } = frameOf(encoding, src[0], src[1], i % 2 === 0 ? 0 : 3, 70 + i);
        const want = run(referenceKernels, frame, step, {
          width: out[0],
          height: out[1],
          resize: out[2],
        });
        return { frame, want };
      });
      const rng = new Rng(5);
      let wrong = '';
      for (let call = 0; call < 20_000 && wrong === ''; call++) {
        const size = 2 + Math.floor(rng.next() * (frames.length - 1));
        const first = Math.floor(rng.next() * frames.length);
        const batch = Array.from({ length: size }, (_, k) => {
          const { frame, want } = frames[(first + k) % frames.length] as (typeof frames)[number];
          return { want, rgb: new Uint8Array(want.rgb.length), frame };
        });
        const jobs = batch.map(({ frame, want, rgb }): IngestJob => [
          frame.data,
          want.plan.header,
          want.plan.vTaps,
          want.plan.hTaps,
          rgb,
          LUT,
          new Float32Array(0),
        ]);
        deeper(Math.floor(rng.next() * 24), () => {
          native.ingestFrames(jobs);
        });
        batch.forEach(({ want, rgb, frame }) => {
          const at = firstDifference(rgb, want.rgb);
          if (at >= 0 && wrong === '')
            wrong = `call ${call}: ${frame.encoding} differs at byte ${at} of ${rgb.length}`;
        });
      }
      expect(wrong).toBe('');
    });
  }
});
