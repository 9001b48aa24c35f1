/** The text of `vla-node bench report`: report.md and the summary printed at the end. */

import { arReferenceMarkdown } from './ar-reference.js';
import { cameraIngestMarkdown } from './ingest.js';
import { flowReferenceMarkdown } from './flow-reference.js';
import type { Repeated } from './overhead.js';
import type { PerformanceReport } from './report-types.js';

const fmt = (r: Repeated): string =>
  `${r.median.p50} / ${r.median.p95} / ${r.median.p99} / ${r.median.max}`;

/** The report as Markdown. */
export function reportMarkdown(r: PerformanceReport): string {
  const out: string[] = [];
  const mc = r.machine;
  out.push(
    '# vla-node performance report',
    '',
    `Made by \`npm run bench\` on ${r.created}. Machine: ${mc.cpu}, ${mc.logical_cores} logical cores (${mc.flags.join(', ')}), ${mc.memory_gib} GiB; ${mc.os}; Node ${mc.node}; ONNX Runtime ${mc.onnxruntime} (${r.models[0]?.pipeline_overhead.provider ?? 'cpu'} execution provider). ${r.settings.intra_op_threads} intra-op thread(s) for ONNX Runtime and PyTorch alike; ${r.settings.frames} frames × ${r.settings.repeats} repeats per latency figure (median of the repeats; spread = (max − min) / median of the per-repeat p50).`,
    '',
    '## 1. Pipeline overhead (frame → chunk vs the bare ONNX Runtime sessions)',
    '',
    '| model | node p50 / p95 / p99 / max (ms) | bare sessions p50 / p95 / p99 / max (ms) | node / bare at p50 | spread node, bare |',
    '|---|---|---|---:|---|',
  );
  for (const m of r.models) {
    const o = m.pipeline_overhead;
    out.push(
      `| ${m.model} | ${fmt(o.node)} | ${fmt(o.bare)} | **${o.ratio_p50.median}×** | ${o.node.p50_spread_pct}%, ${o.bare.p50_spread_pct}% |`,
    );
    const c = m.pipeline_overhead_camera_frames;
    if (c !== null)
      out.push(
        `| ${m.model}, 128×128 camera frames (resize in ingest) | ${fmt(c.node)} | ${fmt(c.bare)} | ${c.ratio_p50.median}× | ${c.node.p50_spread_pct}%, ${c.bare.p50_spread_pct}% |`,
      );
  }
  out.push(
    '',
    'The node is `VlaPipeline.infer` from an RGB8 frame to a clamped chunk in robot units (ingest, encoder, token selection, policy, de-normalisation, safety); the bare loop calls the same two sessions (same files and options) on tensors normalised beforehand and passes the encoder output straight to the policy. The two take turns call by call, so each runs right after the other’s work, its caches as the other left them.',
    '',
    'Node stage p50 (ms): ' +
      r.models
        .map(
          (m) =>
            `${m.model}: ${Object.entries(m.pipeline_overhead.node_stages_p50)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')}`,
        )
        .join('; '),
    '',
    '## 2. Against PyTorch eager (same weights, same frames, same threads)',
    '',
    '| model | PyTorch p50 / p95 / p99 / max (ms) | node p50 (ms) | node speed-up at p50 | max abs difference of the actions | spread |',
    '|---|---|---:|---:|---:|---|',
  );
  for (const m of r.models) {
    const t = m.pytorch;
    if (t.available)
      out.push(
        `| ${m.model} | ${fmt(t.latency)} | ${m.pipeline_overhead.node.median.p50} | **${t.node_speedup_p50 ?? ''}×** | ${t.max_abs_diff_vs_node.toExponential(1)} | ${t.latency.p50_spread_pct}% |`,
      );
    else out.push(`| ${m.model} | skipped: ${t.reason} | | | | |`);
  }
  out.push(
    '',
    'PyTorch runs the training recipe (`models/tiny-vla/train/model.py`) with the checkpoint the ONNX graphs were exported from, in eval mode under `torch.inference_mode()`, one frame at a time, with its own preprocessing and de-normalisation timed (`bench_torch.py`), every thread pool (OpenMP, OpenBLAS) limited to the same thread count, one Python process per repeat (its speed varies between processes more than within one). The action difference shows both computed the same thing.',
    '',
    `## 3. Compression × pruning (closed loop on the shipped model, ${r.settings.episodes_per_cell} episodes per cell × ${r.settings.repeats} runs, ${r.settings.strategy} pruning; the camera frames are resized by ingest)`,
    '',
    '| precision | keep ratio | tokens | success | end-to-end p50 / p95 (ms) | encoder p50 (ms) | policy p50 / p95 (ms) | spread of p50 |',
    '|---|---:|---:|---:|---|---:|---|---:|',
  );
  for (const c of r.matrix)
    out.push(
      `| ${c.precision} | ${c.keep_ratio} | ${c.tokens_kept} | ${(100 * c.success_rate).toFixed(0)}% | ${c.end_to_end_ms.p50} / ${c.end_to_end_ms.p95} | ${c.encode_ms.p50} | ${c.policy_ms.p50} / ${c.policy_ms.p95} | ${c.p50_spread_pct}% |`,
    );
  for (const m of r.models) {
    if (m.keep_ratios.length === 0) continue;
    out.push(
      '',
      `Open-loop latency by keep ratio, ${m.model} (fp32, ${r.settings.strategy}):`,
      '',
      '| keep ratio | tokens | end-to-end p50 / p95 (ms) | policy p50 / p95 (ms) |',
      '|---:|---:|---|---|',
      ...m.keep_ratios.map(
        (k) =>
          `| ${k.keep_ratio} | ${k.tokens_kept} | ${k.end_to_end_ms.p50} / ${k.end_to_end_ms.p95} | ${k.policy_ms.p50} / ${k.policy_ms.p95} |`,
      ),
    );
  }
  const peaks = Object.entries(r.matmul_peak.peak_gflops)
    .map(([t, g]) => `${g} GFLOP/s with ${t} thread${t === '1' ? '' : 's'}`)
    .join(', ');
  out.push(
    '',
    '## 4. Against the machine',
    '',
    `Measured peak: ${peaks} (${r.matmul_peak.method}).`,
    '',
    `| model | encoder MFLOP | policy MFLOP at 100% / 50% / 25% / 12.5% tokens | encoder GFLOP/s (share of the peak at ${r.settings.intra_op_threads} thread(s)) | policy GFLOP/s (share) |`,
    '|---|---:|---|---:|---:|',
  );
  for (const m of r.models) {
    const f = m.flops;
    out.push(
      `| ${m.model} | ${(f.encoder.total / 1e6).toFixed(1)} | ${f.policy_by_tokens.map((p) => (p.flops.total / 1e6).toFixed(1)).join(' / ')} | ${f.achieved.encoder_gflops} (${(100 * f.achieved.encoder_share_of_peak).toFixed(0)}%) | ${f.achieved.policy_gflops} (${(100 * f.achieved.policy_share_of_peak).toFixed(0)}%) |`,
    );
  }
  out.push(
    '',
    'FLOPs are 2 × the multiply-adds of every MatMul, Gemm and Conv node, from the shapes each node sees when the fp32 graph runs on a real frame at that token count; achieved = FLOPs / the node stage p50 at all tokens.',
    '',
    '## 5. Start-up and memory',
    '',
    '| model | process start → first chunk (ms) | imported / ready / first chunk, child clock (ms) | peak RSS (MiB) after N frames |',
    '|---|---:|---|---:|',
  );
  for (const m of r.models) {
    const s = m.startup;
    out.push(
      s.available
        ? `| ${m.model} | ${s.process_start_to_first_chunk_ms} | ${s.phases_ms.imported} / ${s.phases_ms.ready} / ${s.phases_ms.first_chunk} | ${s.peak_rss_mib} (N = ${s.inferences}) |`
        : `| ${m.model} | skipped: ${s.reason} | | |`,
    );
  }
  out.push(
    '',
    'A fresh `node` process imports the built library, loads the package, creates and warms the sessions (`backend.warmup_runs`) and computes a chunk from a 128×128 simulator frame.',
    '',
    '## 6. Realistic-scale model',
    '',
  );
  const real = r.models.find((m) => m.model !== 'tiny-vla');
  out.push(
    real === undefined
      ? `Not measured: ${r.skipped.find((s) => s.what === 'realistic model')?.reason ?? 'no realistic model'}.`
      : `${real.model}: ${(real.parameters / 1e6).toFixed(1)}M parameters, ${real.visual_tokens} visual tokens, random weights (\`/usr/bin/python3 models/tiny-vla/train/make_realistic.py --out models/realistic-vla\`); its rows are in the tables above.`,
  );
  out.push(
    '',
    '## 7. Camera-frame ingest (`vla-node bench ingest`)',
    '',
    ...cameraIngestMarkdown(r.ingest),
  );
  if (r.flow !== null) out.push('', ...flowReferenceMarkdown(r.flow));
  if (r.ar !== null) out.push('', ...arReferenceMarkdown(r.ar));
  if (r.skipped.length > 0)
    out.push('', '## Skipped', '', ...r.skipped.map((s) => `- ${s.what}: ${s.reason}`));
  return `${out.join('\n')}\n`;
}

/** The few lines printed at the end and quoted in the README. */
export function reportSummary(r: PerformanceReport): string {
  const lines = [
    `${r.machine.cpu}, ${r.machine.logical_cores} cores, ONNX Runtime ${r.machine.onnxruntime}`,
  ];
  for (const m of r.models) {
    const o = m.pipeline_overhead;
    lines.push(
      `${m.model}: node p50 ${o.node.median.p50} ms vs bare sessions ${o.bare.median.p50} ms (${o.ratio_p50.median}×)` +
        (m.pytorch.available
          ? `; PyTorch eager ${m.pytorch.latency.median.p50} ms (node ${m.pytorch.node_speedup_p50 ?? ''}× faster)`
          : `; PyTorch skipped`) +
        `; policy ${m.flops.achieved.policy_gflops} GFLOP/s = ${(100 * m.flops.achieved.policy_share_of_peak).toFixed(0)}% of the ${r.settings.intra_op_threads}-thread peak` +
        (m.startup.available
          ? `; start → first chunk ${m.startup.process_start_to_first_chunk_ms} ms, peak RSS ${m.startup.peak_rss_mib} MiB`
          : ''),
    );
  }
  if (r.flow !== null)
    lines.push(
      `${r.flow.model} (${r.flow.steps} steps): node p50 ${r.flow.node.median.p50} ms` +
        (r.flow.pytorch.available
          ? `; PyTorch eager ${r.flow.pytorch.latency.median.p50} ms; largest action difference ${r.flow.pytorch.max_abs_diff_vs_node.toExponential(1)}`
          : '; PyTorch skipped'),
    );
  if (r.ar !== null) {
    const t = r.ar.pytorch;
    lines.push(
      `${r.ar.model} (greedy, ${r.ar.tokens_per_chunk} tokens): node chunk p50 ${r.ar.node.median.p50} ms` +
        (t.available
          ? `; PyTorch eager ${t.latency.median.p50} ms; greedy tokens equal ${t.tokens.tokens_equal} / ${t.tokens.tokens}; largest action difference ${t.max_abs_diff_vs_node.toExponential(1)}`
          : '; PyTorch skipped'),
    );
  }
  for (const c of r.matrix.filter((c) => c.keep_ratio === 1 || c.keep_ratio === 0.25))
    lines.push(
      `${c.precision} keep ${c.keep_ratio}: success ${(100 * c.success_rate).toFixed(0)}%, p50 ${c.end_to_end_ms.p50} ms`,
    );
  return lines.join('\n');
}
