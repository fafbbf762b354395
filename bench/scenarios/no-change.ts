// No change: an active grant asked for again, against one query to a running workflow.
import { type Scenario, x, yes } from '../scenario';
import { measure } from '../load';
import { log } from '../settings';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'no-change',
  key: 'noChange',
  title: 'no-change ensure',
  run,
  rows: (noChange: any, s) => [
    ['no-change ensure: p99', `${noChange.ensure.p99} ms`, `${noChange.floor.p99} ms`, x(noChange.ensure.p99, noChange.floor.p99), '≤ 1.25x', yes(noChange.ensure.p99 <= 1.25 * noChange.floor.p99)],
    ['no-change ensure: throughput', `${noChange.ensure.rps} req/s`, `${noChange.floor.rps} req/s`, x(noChange.ensure.rps, noChange.floor.rps), '≥ 0.8x', yes(noChange.ensure.rps >= 0.8 * noChange.floor.rps)],
    ['no-change ensure: p50', `${noChange.ensure.p50} ms`, `${noChange.floor.p50} ms`, x(noChange.ensure.p50, noChange.floor.p50), '', ''],
  ],
  loadRuns: (noChange: any) => [
    { label: 'no-change ensure', run: noChange.ensure },
    { label: 'its floor: one query', run: noChange.floor },
  ],
};

async function run(b: Bench) {
  const { noChangeSpec, queryFloorSpec } = await b.noChangePool();
  log('no-change: floor');
  const floorResult = await measure(queryFloorSpec);
  log('no-change: ensure');
  return { ensure: await measure(noChangeSpec), floor: floorResult };
}
