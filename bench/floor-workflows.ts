// The floors' workflows: as little as a Temporal workflow can be. `floorWorkflow` answers a query
// with the state it was started with and accepts an empty update; that is all the no-change,
// extension and activation floors ask of Temporal. `floorTimerWorkflow` is what any expiry needs
// of it: a timer that fires, then the end; `floorEndAccessWorkflow` the least an expiry that ends
// access can be. Deterministic code only (bundled by the floor worker).
import { allHandlersFinished, condition, defineQuery, defineUpdate, proxyActivities, proxyLocalActivities, setHandler, sleep } from '@temporalio/workflow';

/** The floor worker's activities (bench/floor.ts). */
export interface FloorActivities {
  /** One DeleteAccountAssignment of the bench user's assignment on `account`, on the `region`-th instance. */
  endAccess(region: number, account: string): Promise<void>;
}

const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });
const scheduled = proxyActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });

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

/**
 * Sleeps until `dueMs` (epoch ms), then ends access: one DeleteAccountAssignment, in a local
 * activity, so in the timer's own workflow task; then ends (that task completes the run).
 */
export async function floorEndAccessWorkflow(input: { dueMs: number; region: number; account: string }): Promise<void> {
  await sleep(Math.max(1, input.dueMs - Date.now()));
  await local.endAccess(input.region, input.account);
}

/**
 * The same with an ordinary activity: scheduled by the timer's task, its result seen by a second
 * task that ends the run. The least an expiry can be whose AWS call follows the task that decided
 * it (a local activity's runs before that task is accepted: lifecycle.ts, endAtExpiry).
 */
export async function floorEndAccessByActivityWorkflow(input: { dueMs: number; region: number; account: string }): Promise<void> {
  await sleep(Math.max(1, input.dueMs - Date.now()));
  await scheduled.endAccess(input.region, input.account);
}
