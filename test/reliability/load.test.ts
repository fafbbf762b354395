// 200 activations at once for one Identity Center instance: every grant ends active, and the
// provider (the fault proxy in front of moto) never sees more than the configured limits.
// Long: runs under `npm run test:reliability`, not `npm test`.
import assert from 'node:assert/strict';
import { activateAtOnce, assignmentCounts } from '../support/activations';
import { current } from '../support/world';

const ACTIVATIONS = Number(process.env.RELIABILITY_ACTIVATIONS ?? 200);

describe(`${ACTIVATIONS} activations at once`, function () {
  this.timeout(15 * 60_000);

  it('all end active with one assignment each, never over 20 calls per second or 10 creations in flight', async () => {
    const proxy = current().faults;
    proxy.reset();
    // Every creation stays IN_PROGRESS for two status polls, as on AWS, so creations overlap.
    proxy.on('CreateAccountAssignment', { inProgressPolls: 2 });
    const t0 = performance.now();
    const { accounts } = await activateAtOnce(ACTIVATIONS, 10 * 60_000);
    const seconds = (performance.now() - t0) / 1000;
    const calls = proxy.calls.length;
    console.log(
      `      ${ACTIVATIONS} active in ${seconds.toFixed(1)} s; ${calls} admin API calls, at most ${proxy.maxCallsInOneSecond()} in one second, ` +
        `at most ${proxy.maxCreationsInFlight} creations in flight`,
    );
    assert.ok(proxy.maxCallsInOneSecond() <= 20, `${proxy.maxCallsInOneSecond()} calls in one second`);
    assert.ok(proxy.maxCreationsInFlight <= 10, `${proxy.maxCreationsInFlight} creations in flight`);
    assert.equal(proxy.count('CreateAccountAssignment'), ACTIVATIONS, 'one creation per grant');
    assert.deepEqual(await assignmentCounts(accounts), accounts.map(() => 1));
  });
});
