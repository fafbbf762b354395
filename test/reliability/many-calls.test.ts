// 10,000 ensure calls on one grant through the HTTP API, a few at a time: every third one a real
// extension, the others a client ensuring what it already holds. The workflow continues as new to
// keep its history bounded, and the grant keeps its id, its activation and the latest expiry.
// (npm test runs a 600-extension variant on the workflow itself.) The variant that hammers
// extensions, run in a loop to reproduce issue 24:
//   RELIABILITY_CALLS=2000 RELIABILITY_EXTEND_EVERY=1 npx mocha --config .mocharc.reliability.yml dist/test/reliability/many-calls.test.js
import assert from 'node:assert/strict';
import { eventually } from '../support/world';
import { type CrashWorld, startCrashWorld } from '../support/crash-world';
import { countFromEnv } from '../support/env';

const CALLS = countFromEnv('RELIABILITY_CALLS', 10_000);
const CONCURRENCY = 8;
const EXTEND_EVERY = countFromEnv('RELIABILITY_EXTEND_EVERY', 3);
const STEP_SECONDS = 400; // more than the 300 s below which a longer ensure is no extension
/** The workflow continues as new past 2000 events; a few calls still in flight may add some. */
const HISTORY_BOUND = 2200;

describe('many calls on one grant (reliability)', function () {
  this.timeout(0);
  let world: CrashWorld;

  before(async () => {
    world = await startCrashWorld('many-calls', { max_duration_seconds: 3600 + STEP_SECONDS * (CALLS + 1) });
  });
  after(async () => {
    await world?.stop();
  });

  it(`keeps the grant's id, expiry and state, and a bounded history, through ${CALLS} ensure calls`, async () => {
    const account = world.freshAccount();
    const first = await world.ensure(account, 3600);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const id = first.body.grants[0].id;
    const active = await eventually('the grant to be active', async () => {
      const state = await world.state(account);
      return state?.status === 'active' ? state : undefined;
    });

    const changes: Record<string, number> = {};
    let latestExpiry = active.expiresAt!;
    let next = 1;
    const caller = async () => {
      for (let i = next++; i <= CALLS; i = next++) {
        const extend = i % EXTEND_EVERY === 0;
        const reply = await world.ensure(account, extend ? 3600 + STEP_SECONDS * i : 3600);
        assert.equal(reply.status, 200, `call ${i}: ${JSON.stringify(reply.body)}`);
        const grant = reply.body.grants[0];
        assert.equal(grant.id, id, `call ${i}: the same grant`);
        assert.equal(grant.status, 'active', `call ${i}`);
        assert.equal(grant.activated_at, active.activatedAt, `call ${i}: activated once`);
        if (!extend) assert.equal(grant.change, 'none', `call ${i}: nothing to extend`);
        changes[grant.change] = (changes[grant.change] ?? 0) + 1;
        if (Date.parse(grant.expires_at!) > Date.parse(latestExpiry)) latestExpiry = grant.expires_at!;
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, caller));
    assert.deepEqual(Object.keys(changes).sort().filter((c) => c !== 'extended' && c !== 'none'), []);

    const after = await world.get(`/${id}`);
    assert.equal(after.status, 200);
    assert.equal(after.body.id, id);
    assert.equal(after.body.status, 'active');
    assert.equal(after.body.expires_at, latestExpiry, 'the latest extension holds');
    assert.equal(after.body.activated_at, active.activatedAt);
    assert.equal(await world.assignments(account), 1);

    const runs: { status: string; historyLength: number }[] = [];
    for await (const run of world.temporal.workflow.list({ query: `WorkflowId = '${world.workflowId(account)}'` })) {
      runs.push({ status: run.status.name, historyLength: run.historyLength });
    }
    const continued = runs.filter((r) => r.status === 'CONTINUED_AS_NEW').length;
    const longest = Math.max(...runs.map((r) => r.historyLength));
    console.log(`      many calls: ${CALLS} ensure calls (${JSON.stringify(changes)}), ${runs.length} runs (${continued} continued as new), longest history ${longest} events`);
    assert.ok(continued >= 1, 'the workflow continued as new');
    assert.ok(longest < HISTORY_BOUND, `every run's history stays bounded (${longest} events)`);
    assert.deepEqual(runs.filter((r) => r.status !== 'CONTINUED_AS_NEW').map((r) => r.status), ['RUNNING'], 'one open run');
  });
});
