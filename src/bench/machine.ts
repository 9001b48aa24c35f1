import { readFileSync } from 'node:fs';
import os from 'node:os';
import * as ort from 'onnxruntime-node';
// ONNX Runtime's telemetry off before this module's first session (see backend/telemetry.ts).
import '../backend/telemetry.js';

/** What the figures were measured on. */
export interface MachineInfo {
  readonly cpu: string;
  readonly logical_cores: number;
  /** SIMD flags that matter to ONNX Runtime's kernels (x86: AVX2, FMA, AVX-512, VNNI…). */
  readonly flags: readonly string[];
  readonly memory_gib: number;
  readonly os: string;
  readonly node: string;
  readonly onnxruntime: string;
}

const INTERESTING =
  /^(sse4_2|avx|avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|avx512_bf16|avx512_fp16|amx_tile|amx_int8|amx_bf16|neon|asimd|asimddp|sve)$/;

/** The CPU's flags from /proc/cpuinfo (Linux); empty elsewhere. */
export function cpuFlags(cpuinfo = readCpuinfo()): string[] {
  const line = cpuinfo.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (line === undefined) return [];
  return line
    .replace(/^[^:]*:\s*/, '')
    .split(/\s+/)
    .filter((f) => INTERESTING.test(f));
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    logical_cores: os.availableParallelism(),
    flags: cpuFlags(),
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntime: ort.env.versions.common,
  };
}
