/**
 * A flow package's pipeline as the node's {@link NodePipeline}: the node publishes its chunks as
 * it does a one-camera package's. What the node reads of the manifest for one image (the pruned
 * image overlay's geometry) is the first camera's; the overlay is not published for a flow
 * package (its pruning is per camera), so `lastSelection` stays undefined.
 */
import type { FlowPipeline } from '../../flow/pipeline.js';
import type { NodePipeline } from './node-pipeline.js';

/** The node's view of a {@link FlowPipeline} (it runs on the CPU provider). */
export function flowNodePipeline(flow: FlowPipeline): NodePipeline {
  const m = flow.model.manifest;
  const first = m.cameras[0];
  if (first === undefined)
    throw new Error(`Expected at least one camera in ${m.name}'s manifest but received none`);
  return {
    model: {
      manifest: {
        control_rate_hz: m.control_rate_hz,
        image: first.image,
        patch_grid: first.patch_grid,
        chunk: m.chunk,
        action: m.action,
        state: m.state,
      },
    },
    provider: 'cpu',
    cameras: flow.cameras,
    actionLimits: flow.actionLimits,
    lastSelection: undefined,
    latency: flow.latency,
    infer: (observation) => flow.infer(observation),
    release: () => flow.release(),
  };
}
