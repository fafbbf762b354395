// What a scenario is to the runner (bench/run.ts) and the report (bench/report.ts): a file under
// bench/scenarios/ that exports one of these.
import type { LoadResult } from './load';
import type { settings } from './settings';
import { round } from './stats';
import type { Bench } from './world';

/** The settings as results.json keeps them: the bench's, and the worker's pacing it read. */
export type ResultSettings = typeof settings & { callsPerSecond: number };

export interface Scenario<Result = any> {
  /** Its name in BENCH_SCENARIOS. */
  name: string;
  /** Its key in results.json. */
  key: string;
  /** Its name in the report's row when it failed. */
  title: string;
  run(bench: Bench): Promise<Result>;
  /** Its rows of the report's table: scenario, result, floor, ratio, target, met. */
  rows(result: Result, s: ResultSettings): string[][];
  /** A sentence under the table on how it was measured ('' when it did not run). */
  note?(result: Result, s: ResultSettings): string;
  /** Its autocannon runs: every one counts in the errors line; those with a label get a row of the CPU table. */
  loadRuns?(result: Result): { label?: string; run: LoadResult | undefined }[];
}

/** `a` to `b`, as the ratio column shows it. */
export const x = (a: number, b: number): string => `${round(a / b, 2)}x`;
export const yes = (ok: boolean): string => (ok ? 'met' : '**missed**');
