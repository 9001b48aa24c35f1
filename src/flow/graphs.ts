import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import type { GraphSpec, TensorSpec } from '../model/manifest.js';
import {
  FLOW_ROLES,
  type FlowPackage,
  type FlowRole,
  type FlowVariant,
} from '../model/flow-manifest.js';

/** The four ONNX Runtime sessions of a flow variant, by role. */
export type FlowSessions = Readonly<Record<FlowRole, ort.InferenceSession>>;

export interface FlowSessionOptions {
  /** Intra-op threads per session (0: ONNX Runtime's default). */
  readonly intraOpThreads: number;
}

/**
 * Check a session's inputs and outputs against the manifest: names in order, dtypes, ranks and
 * fixed dimensions. Errors are typed MODEL_MISMATCH naming the manifest field.
 */
export function checkFlowGraph(
  role: FlowRole,
  session: ort.InferenceSession,
  spec: GraphSpec,
): void {
  const compare = (
    kind: 'inputs' | 'outputs',
    actual: readonly ort.InferenceSession.ValueMetadata[],
    expected: readonly TensorSpec[],
  ): void => {
    const field = `manifest.graphs.${role}.${kind}`;
    if (actual.length !== expected.length) {
      throw new ModelError(
        'MODEL_MISMATCH',
        `Expected the ${role} graph to have ${expected.length} ${kind} (${expected.map((t) => t.name).join(', ')}) but the ONNX file has ${actual.length} (${actual.map((t) => t.name).join(', ')})`,
        { field },
      );
    }
    expected.forEach((e, i) => {
      const a = actual[i];
      const at = `${field}[${i}]`;
      if (a?.name !== e.name) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${i} to be named ${JSON.stringify(e.name)} but the ONNX file names it ${JSON.stringify(a?.name)}`,
          { field: `${at}.name` },
        );
      }
      if (!a.isTensor || a.type !== e.dtype) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to be a ${e.dtype} tensor but the ONNX file says ${a.isTensor ? a.type : 'not a tensor'}`,
          { field: `${at}.dtype` },
        );
      }
      if (a.shape.length !== e.shape.length) {
        throw new ModelError(
          'MODEL_MISMATCH',
          `Expected ${role} ${kind} ${e.name} to have shape [${e.shape.join(', ')}] but the ONNX file has [${a.shape.join(', ')}]`,
          { field: `${at}.shape` },
        );
      }
      e.shape.forEach((dim, j) => {
        const g = a.shape[j];
        if (typeof g !== 'number') return; // open in the graph
        if (typeof dim === 'string' || dim !== g) {
          throw new ModelError(
            'MODEL_MISMATCH',
            `Expected ${role} ${kind} ${e.name} dimension ${j} to be ${String(dim)} but the ONNX file fixes it to ${g}`,
            { field: `${at}.shape[${j}]` },
          );
        }
      });
    });
  };
  compare('inputs', session.inputMetadata, spec.inputs);
  compare('outputs', session.outputMetadata, spec.outputs);
}

/**
 * Open the variant's four graphs on the CPU provider and check each against the manifest; all
 * or none (a failure releases the sessions already open).
 */
export async function openFlowSessions(
  pkg: FlowPackage,
  variant: FlowVariant & { readonly paths: Readonly<Record<FlowRole, string>> },
  options: FlowSessionOptions,
): Promise<FlowSessions> {
  const opened: Partial<Record<FlowRole, ort.InferenceSession>> = {};
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads > 0 ? { intraOpNumThreads: options.intraOpThreads } : {}),
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
  try {
    for (const role of FLOW_ROLES) {
      try {
        opened[role] = await ort.InferenceSession.create(variant.paths[role], sessionOptions);
      } catch (cause) {
        throw new ModelError(
          'MODEL_FILE',
          `Expected a valid ONNX model for the ${role} graph at ${variant.files[role].path} but ONNX Runtime could not load it: ${cause instanceof Error ? cause.message : String(cause)}`,
          { field: `manifest.variants[].files.${role}.path`, cause },
        );
      }
      checkFlowGraph(role, opened[role], pkg.manifest.graphs[role]);
    }
    return opened as FlowSessions;
  } catch (error) {
    await Promise.all(Object.values(opened).map((s) => s.release()));
    throw error;
  }
}
