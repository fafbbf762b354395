// `npm run bench`: starts the stack as the tests do (bench/world.ts), runs each scenario
// (bench/scenarios/, one file each) against the real worker and API (separate processes, so their
// memory can be read) and against the floor it stands on (bench/floor.ts), and writes
// bench/results/<BENCH_OUT or results>.{md,json} (bench/report.ts). Settings: bench/settings.ts.
// A new scenario is a file in bench/scenarios/ exporting a `Scenario`, and a line in each list below.
import os from 'node:os';
import { writeResults } from './report';
import type { Scenario } from './scenario';
import { scenario as activation } from './scenarios/activation';
import { scenario as consolePages } from './scenarios/console';
import { scenario as entitlements } from './scenarios/entitlements';
import { scenario as expiry } from './scenarios/expiry';
import { scenario as extension } from './scenarios/extension';
import { scenario as facts } from './scenarios/facts';
import { scenario as held } from './scenarios/held';
import { scenario as manyAccounts } from './scenarios/many-accounts';
import { scenario as noChange } from './scenarios/no-change';
import { scenario as organization } from './scenarios/organization';
import { scenario as reads } from './scenarios/reads';
import { scenario as reconcile } from './scenarios/reconcile';
import { scenario as scaleOut } from './scenarios/scale-out';
import { log, REGIONS, settings } from './settings';
import { round } from './stats';
import { type Bench, withBench } from './world';

/** The order they run in: the long ones that leave many grants behind (held, reads, reconcile) last. */
const RUN_ORDER: Scenario[] = [organization, consolePages, manyAccounts, entitlements, noChange, facts, extension, activation, scaleOut, expiry, held, reads, reconcile];
/** The order of the report's table. */
const REPORT_ORDER: Scenario[] = [noChange, activation, extension, scaleOut, expiry, held, reads, reconcile, entitlements, organization, facts, consolePages, manyAccounts];

/** A scenario's results, or what stopped it: one failing scenario does not lose the others. */
async function attempt(scenario: Scenario, bench: Bench): Promise<unknown> {
  try {
    const result = await scenario.run(bench);
    log(scenario.name, JSON.stringify(result));
    return result;
  } catch (err) {
    log(`${scenario.name} failed:`, err);
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

async function main(): Promise<void> {
  if (settings.instances < 1 || settings.instances > REGIONS.length) throw new Error(`BENCH_INSTANCES must be 1..${REGIONS.length}`);
  const known = RUN_ORDER.map((s) => s.name);
  if (settings.scenarios.length === 0) settings.scenarios.push(...known);
  const unknown = settings.scenarios.filter((s) => !known.includes(s));
  if (unknown.length > 0) throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${known.join(', ')})`);
  const started = Date.now();
  const selected = RUN_ORDER.filter((s) => settings.scenarios.includes(s.name));
  const save = (bench: Bench) => {
    const { results } = bench;
    results.settings = { ...settings, callsPerSecond: bench.callsPerSecond };
    results.machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavgAtEnd: os.loadavg().map((n) => round(n, 2)) };
    results.totalMinutes = round((Date.now() - started) / 60_000);
    writeResults(results, REPORT_ORDER);
  };
  await withBench(selected.map((s) => s.name), save, async (bench) => {
    for (const scenario of selected) bench.results[scenario.key] = await attempt(scenario, bench);
    bench.save();
  });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
