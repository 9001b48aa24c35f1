/**
 * An autoregressive package's pipeline as the node's {@link NodePipeline}: the node publishes its
 * chunks as it does an encoder + policy package's. The package's one camera is a manifest camera
 * (`~/in/<camera>`, as a flow package's), and the control loop's observation carries the trigger
 * frame's stamp and the camera as its stream, which is what speculative decoding shifts its draft
 * by (the steps executed between two frames of one stream). ArPipeline keeps no per-chunk token
 * selection, so `~/debug/pruned_image` is not published for this family (`lastSelection` stays
 * undefined); the decoding strategy and its cost per chunk go to the diagnostics instead.
 */
import type { ArPipeline } from '../../policy/autoregressive/pipeline.js';
import type { NodePipeline } from './node-pipeline.js';

/** The node's view of an {@link ArPipeline} (its graphs run on the CPU provider). */
export function arNodePipeline(ar: ArPipeline): NodePipeline {
  const m = ar.model.manifest;
  // The manifest's schema gives this family exactly one camera.
  const [camera] = m.cameras;
  return {
    model: {
      manifest: {
        control_rate_hz: m.control_rate_hz,
        image: camera.image,
        patch_grid: camera.patch_grid,
        chunk: m.chunk,
        action: m.action,
        state: m.state,
      },
    },
    provider: 'cpu',
    cameras: ar.cameras,
    actionLimits: ar.actionLimits,
    lastSelection: undefined,
    latency: ar.latency,
    decoding: {
      strategy: ar.decoding.strategy,
      window: ar.decoding.window,
      // The live object: the diagnostics read it when they are published.
      totals: ar.decodeTotals,
    },
    infer: (observation) => ar.infer(observation),
    release: () => ar.release(),
  };
}
