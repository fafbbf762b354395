// Activation: a new grant key each time, until its assignment exists.
import { type Scenario, x, yes } from '../scenario';
import { closedLoop } from '../load';
import { account, log, settings } from '../settings';
import { round, summary } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'activation',
  key: 'activation',
  title: 'activation',
  run,
  rows: (activation: any, s) => [
    ['activation: time to active, p50', `${activation.timeToActiveMs.p50} ms`, `${round(activation.floorMs.p50)} ms`, x(activation.timeToActiveMs.p50, activation.floorMs.p50), '≤ 1.5x', yes(activation.timeToActiveMs.p50 <= 1.5 * activation.floorMs.p50)],
    ['activation: time to active, p99', `${activation.timeToActiveMs.p99} ms`, `${round(activation.floorMs.p99)} ms`, x(activation.timeToActiveMs.p99, activation.floorMs.p99), '', ''],
    ['activation: ensure response, p50', `${activation.ensureResponseMs.p50} ms`, `${round(activation.floorMs.p50)} ms`, x(activation.ensureResponseMs.p50, activation.floorMs.p50), '', ''],
  ],
};

async function run(b: Bench) {
  const { floor, tenants, ensure, untilActive } = b;
const toActive: number[] = [];
  log(`activation: ${settings.activations} floor activations, then ${settings.activations} ensures`);
  const floorActivation: number[] = [];
  await closedLoop(settings.activations, settings.activationConcurrency, async (i) => {
    const t0 = performance.now();
    const res = await fetch(`${floor}/floor/activate/${i % tenants.length}/${account(7, i)}`, { method: 'POST' });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`floor activation: HTTP ${res.status}`);
    floorActivation.push(performance.now() - t0);
  });
  const ensureMs: number[] = [];
  await closedLoop(settings.activations, settings.activationConcurrency, async (i) => {
    const t0 = Date.now();
    const first = await ensure(i, account(3, i), 3600);
    ensureMs.push(Date.now() - t0);
    if (first.change !== 'activated') throw new Error(`activation answered ${first.change}`);
    // Polling (every ensure is a query) loads the machine the grant is provisioned on; activated_at,
    // not the poll, dates the activation, so a 250 ms poll costs the measurement nothing.
    const active = await untilActive(i, account(3, i), 3600, 250);
    toActive.push(Date.parse(active.activated_at!) - t0);
  });
  return {
    concurrency: settings.activationConcurrency,
    ensureResponseMs: summary(ensureMs),
    timeToActiveMs: summary(toActive),
    floorMs: summary(floorActivation),
  };
}
