// The report: bench/results/<BENCH_OUT>.json (every figure) and .md (the table of rows against
// their floors and targets, how it was measured, and the CPU per request of every autocannon run).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../scripts/stack';
import type { LoadResult } from './load';
import type { Scenario } from './scenario';
import { ENGINE, settings } from './settings';

/** Writes `results`; the table lists `scenarios` in the order given. */
export function writeResults(results: Record<string, any>, scenarios: Scenario[]): void {
  const out = path.join(repoRoot, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, `${settings.out}.json`), JSON.stringify(results, null, 2) + '\n');
  const { scaleOut, settings: s, machine } = results;
  const ran = scenarios.filter((scenario) => results[scenario.key] !== undefined);
  const rows = ran.flatMap((scenario) => {
    const result = results[scenario.key];
    return result.error ? [[scenario.title, `failed: ${result.error}`, '', '', '', '**missed**']] : scenario.rows(result, s);
  });
  const notes = scenarios.flatMap((scenario) => {
    if (!scenario.note) return [];
    const result = results[scenario.key];
    return [!result || result.error ? '' : scenario.note(result, s)];
  });
  const loadRuns = ran.flatMap((scenario) => (scenario.loadRuns && !results[scenario.key].error ? scenario.loadRuns(results[scenario.key]) : []));
  const problems = loadRuns
    .map(({ run: r }) => (r ? r.errors + r.non2xx + r.unexpected : 0))
    .reduce((a, b) => a + b, 0);
  // Where the time went: CPU per request of each process, for every autocannon run.
  const measured = loadRuns
    .filter((r): r is { label: string; run: LoadResult } => r.label !== undefined && r.run?.cpuMsPerRequest !== undefined)
    .map(({ label, run }) => [label, run] as const);
  const names = [...new Set(measured.flatMap(([, r]) => Object.keys(r.cpuMsPerRequest!)))].sort();
  const cpuTable = measured.length === 0 ? [] : [
    '',
    'CPU per request, in ms, by process (user + system time over the measured run, divided by its requests):',
    '',
    `| run | ${names.join(' | ')} | all |`,
    `|---|${names.map(() => '---|').join('')}---|`,
    ...measured.map(([label, r]) => {
      const cpu = r.cpuMsPerRequest!;
      const all = Object.values(cpu).reduce((a, b) => a + b, 0);
      return `| ${label} | ${names.map((n) => cpu[n]?.toFixed(2) ?? '').join(' | ')} | ${all.toFixed(2)} |`;
    }),
  ];
  const md = [
    '# Benchmark results',
    '',
    `${new Date().toISOString()}; ${machine.cpus} × ${machine.cpu}; Node ${machine.node}; ${results.totalMinutes} min; load average at the end ${machine.loadavgAtEnd.join(' ')}.`,
    `Everything co-located: ${ENGINE}, moto, worker, API, floors and the load generator.`,
    '',
    '| scenario | result | floor | ratio | target | |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Settings: ${s.connections} connections × ${s.durationSeconds} s per autocannon run (after a warm-up); ` +
      `${s.instances} tenants, each on its own IAM Identity Center instance; activations: ${s.activations} at ${s.activationConcurrency} in flight` +
      (!scaleOut || scaleOut.error ? '.' : `; scale-out: ${s.scaleActivations} activations at ${s.scaleConcurrency} in flight per run, and the no-change load split over the two APIs (half the connections each).`),
    ...notes,
    `Errors, non-2xx and unexpected answers across the autocannon runs: ${problems}.`,
    ...cpuTable,
    '',
  ].join('\n');
  writeFileSync(path.join(out, `${settings.out}.md`), md);
  console.log('\n' + md);
}
