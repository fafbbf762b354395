// The floors' workflows: as little as a Temporal workflow can be. `floorWorkflow` answers a query
// with the state it was started with and accepts an empty update; that is all the no-change,
// extension and activation floors ask of Temporal. `floorTimerWorkflow` is what any expiry needs
// of it: a timer that fires, then the end. Deterministic code only (bundled by the floor worker).
import { allHandlersFinished, condition, defineQuery, defineUpdate, setHandler, sleep } from '@temporalio/workflow';

export const floorStateQuery = defineQuery<unknown>('state');
export const touchUpdate = defineUpdate<null>('touch');

export interface FloorInput {
  /** Answered by the query: the bench passes a real grant's state, so the payloads are alike. */
  state: unknown;
  /** Keep running (query and update floors), or end after the first update (activation floor). */
  hold: boolean;
}

export async function floorWorkflow(input: FloorInput): Promise<void> {
  let touched = false;
  setHandler(floorStateQuery, () => input.state);
  setHandler(touchUpdate, () => {
    touched = true;
    return null;
  });
  await condition(() => touched);
  if (input.hold) await condition(() => false);
  await condition(allHandlersFinished);
}

/** Sleeps until `dueMs` (epoch ms), then ends. */
export async function floorTimerWorkflow(dueMs: number): Promise<void> {
  await sleep(Math.max(1, dueMs - Date.now()));
}
