// The suite runs on the engine it claims: CI runs it with TEMPORAL_PERSISTENCE=postgres, and a
// run that silently fell back to the dev server (SQLite) would pass without testing PostgreSQL.
import { current } from '../support/world';
import { assertEngine, claimedStore, engineOf } from '../support/engine';

describe('the Temporal engine of the run', () => {
  it(`is the one TEMPORAL_PERSISTENCE claims (${process.env.TEMPORAL_PERSISTENCE ?? 'sqlite'}), for persistence and visibility`, async () => {
    const { temporal, temporalStartedHere, stack } = current();
    const engine = await engineOf(temporal.connection);
    console.log(
      `      Temporal ${engine.version} at ${stack.temporalAddress} (${temporalStartedHere ? 'started by the run' : 'TEMPORAL_ADDRESS, TEST_REUSE_TEMPORAL=1'}): ` +
        `persistence ${engine.persistence}, visibility ${engine.visibility}`,
    );
    assertEngine(engine, claimedStore(temporalStartedHere), 'the shared stack');
  });
});
