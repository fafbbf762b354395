// Mocha root hooks: one real stack for the whole run.
import { startWorld, stopWorld } from './world';

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
