// Extension: each request extends an active grant, against one update (with and without an audit write).
import { type Scenario, x, yes } from '../scenario';
import { closedLoop, measure, type LoadSpec } from '../load';
import { account, log, settings } from '../settings';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'extension',
  key: 'extension',
  title: 'extension',
  run,
  rows: (extension: any, s) => {
    const { ensure, floor, emptyUpdateFloor: empty } = extension;
    return [
      ['extension ensure: p50', `${ensure.p50} ms`, `${floor.p50} ms (one update and one audit write)`, x(ensure.p50, floor.p50), '≤ 1.5x', yes(ensure.p50 <= 1.5 * floor.p50)],
      ['extension ensure: p99', `${ensure.p99} ms`, `${floor.p99} ms`, x(ensure.p99, floor.p99), '', ''],
      ['extension ensure: throughput', `${ensure.rps} req/s`, `${floor.rps} req/s`, x(ensure.rps, floor.rps), '≥ 0.7x', yes(ensure.rps >= 0.7 * floor.rps)],
      ['extension ensure: p50, ratio to one empty update', `${ensure.p50} ms`, `${empty.p50} ms (one empty update)`, x(ensure.p50, empty.p50), '', ''],
      ['extension ensure: p99, ratio to one empty update', `${ensure.p99} ms`, `${empty.p99} ms`, x(ensure.p99, empty.p99), '', ''],
      ['extension ensure: throughput, ratio to one empty update', `${ensure.rps} req/s`, `${empty.rps} req/s`, x(ensure.rps, empty.rps), '', ''],
    ];
  },
  loadRuns: (extension: any) => [
    { label: 'extension ensure', run: extension.ensure },
    { label: 'its floor: one update and one audit write', run: extension.floor },
    { label: 'its floor: one empty update', run: extension.emptyUpdateFloor },
  ],
};

async function run(b: Bench) {
  const { api, floor, tenantOf, ensureBody, headersOf, untilActive, changeIs } = b;
  await b.noChangePool();
const EXTEND_BASE = 600;
  log(`extension: creating ${settings.extendPool} grants`);
  await closedLoop(settings.extendPool, settings.activationConcurrency, async (i) => void (await untilActive(i, account(2, i), EXTEND_BASE)));
  // The k-th extension of a grant asks for 1.15^k times the base: always past the extension slack
  // (10% of the duration, at most 5 minutes), so every call really extends.
  const extendSpec: LoadSpec = {
    url: api,
    request: (i) => {
      const g = i % settings.extendPool;
      const k = Math.floor(i / settings.extendPool) + 1;
      return { path: '/v1/access/ensure', headers: headersOf(tenantOf(g)), body: ensureBody(account(2, g), Math.min(43200, Math.ceil(EXTEND_BASE * 1.15 ** k))) };
    },
    expect: changeIs('extended'),
  };
  const floorSpec = (route: string): LoadSpec => ({ url: floor, request: (i) => ({ path: `/floor/${route}/floor-hold%2F${i % settings.extendPool}` }) });
  log('extension: floors (one empty update; one update and one audit write)');
  const emptyUpdateFloor = await measure(floorSpec('update'));
  const updateAuditFloor = await measure(floorSpec('update-audit'));
  log('extension: ensure');
  return { ensure: await measure(extendSpec), floor: updateAuditFloor, emptyUpdateFloor };
}
