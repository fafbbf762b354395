// 200 activations at once for one Identity Center instance: every grant ends active, and the
// provider (the fault proxy in front of moto) never sees more than the configured limits.
// Long: runs under `npm run test:reliability`, not `npm test`.
import assert from 'node:assert/strict';
import { activateAtOnce, assignmentCounts } from '../support/activations';
import { current } from '../support/world';
import { countFromEnv } from '../support/env';

const ACTIVATIONS = countFromEnv('RELIABILITY_ACTIVATIONS', 200);

describe(`${ACTIVATIONS} activations at once`, function () {
  this.timeout(15 * 60_000);

  it('all end active with one assignment each, never over 20 calls per second or 10 creations in flight', async () => {
    const proxy = current().faults;
    await proxy.reset();
    // Every creation stays IN_PROGRESS for two status polls, as on AWS, so creations overlap.
    await proxy.on('CreateAccountAssignment', { inProgressPolls: 2 });
    const t0 = performance.now();
    const { accounts } = await activateAtOnce(ACTIVATIONS, 10 * 60_000);
    const seconds = (performance.now() - t0) / 1000;
    const seen = await proxy.stats();
    console.log(
      `      ${ACTIVATIONS} active in ${seconds.toFixed(1)} s; ${seen.calls} admin API calls, at most ${seen.maxCallsInOneSecond} in one second, ` +
        `at most ${seen.maxCreationsInFlight} creations in flight`,
    );
    assert.ok(seen.maxCallsInOneSecond <= 20, `${seen.maxCallsInOneSecond} calls in one second`);
    assert.ok(seen.maxCreationsInFlight <= 10, `${seen.maxCreationsInFlight} creations in flight`);
    assert.equal(seen.counts.CreateAccountAssignment, ACTIVATIONS, 'one creation per grant');
    assert.deepEqual(await assignmentCounts(accounts), accounts.map(() => 1));
  });
});
