// Mocha root hooks: one real stack for the whole run.
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startWorld, stopWorld } from './world';

Runtime.install({ logger: new DefaultLogger('WARN') });
// The in-process API logs only what goes wrong; tests that read logs run their own processes.
process.env.LOG_LEVEL ??= 'warn';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(20 * 60_000); // the first run may build the Temporal CLI
    await startWorld();
  },
  async afterAll(this: Mocha.Context) {
    this.timeout(60_000);
    await stopWorld();
  },
};
