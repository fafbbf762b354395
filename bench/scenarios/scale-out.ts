// Scale-out: no-change throughput (autocannon on the no-change pool) and activation throughput (a
// closed loop of new grants, each until active) with the worker and API already running, then with
// a second worker and a second API beside them, against the same Temporal dev server.
import { FLEET_REFRESH_MS, pollersOf, presenceQueueOf } from '../../src/activities/fleet';
import { env as workerEnv } from '../../src/config';
import { freePort, stopChild, waitFor } from '../../scripts/stack';
import { procs, startNode } from '../processes';
import type { Scenario } from '../scenario';
import { closedLoop, measure, type LoadResult } from '../load';
import { account, log, settings, sleep } from '../settings';
import { round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'scale-out',
  key: 'scaleOut',
  title: 'scale-out',
  run,
  rows: (scaleOut: any, s) => [
    ['scale-out, 2 workers + 2 APIs: no-change throughput', `${scaleOut.scaled.noChangeRps} req/s`, `${scaleOut.baseline.noChange.rps} req/s (1 + 1)`, `${scaleOut.noChangeRatio}x`, '', ''],
    ['scale-out, 2 workers + 2 APIs: activations per second', `${scaleOut.scaled.activationsPerSecond}/s`, `${scaleOut.baseline.activationsPerSecond}/s (1 + 1)`, `${scaleOut.activationRatio}x`, '', ''],
  ],
  loadRuns: (scaleOut: any) => [{ run: scaleOut.baseline?.noChange }, ...(scaleOut.scaled?.noChangeRuns ?? []).map((run: LoadResult) => ({ run }))],
};

async function run(b: Bench) {
  const { api, temporal, dir, env, untilActive, ok } = b;
  const { noChangeSpec } = await b.noChangePool();
  const k = settings.scaleActivations;
  /** Activations completed per second, calls spread over `bases`; accounts `from`.. are new. */
  const activationRate = async (bases: string[], from: number) => {
    const t0 = performance.now();
    await closedLoop(k, settings.scaleConcurrency, async (i) => void (await untilActive(i, account(0, from + i), 3600, 250, bases[i % bases.length])));
    return round(k / ((performance.now() - t0) / 1000), 2);
  };
  log('scale-out: 1 worker + 1 API');
  const baseline = { noChange: await measure(noChangeSpec), activationsPerSecond: await activationRate([api], 0) };
  log('scale-out: baseline', JSON.stringify(baseline));

  const api2Port = await freePort();
  const api2 = `http://127.0.0.1:${api2Port}`;
  // The first worker holds the default metrics port.
  const extra = [startNode('worker-2', 'src/worker.js', [], { ...env, WORKER_METRICS_PORT: '0' }, dir), startNode('api-2', 'src/api/server.js', [], { ...env, PORT: String(api2Port) }, dir)];
  const presence = presenceQueueOf(workerEnv.taskQueue);
  const workersSeen = async () => (await pollersOf(temporal, workerEnv.temporalNamespace, presence)).size;
  try {
    await waitFor('second API', ok(`${api2}/readyz`), 60_000, extra[1]);
    await waitFor('second worker', async () => (await workersSeen()) >= 2, 120_000, extra[0]);
    // Listed by Temporal; the new worker sees itself at its next count (within a refresh), and
    // then makes no AWS call for a refresh and a margin more, until the first worker has counted
    // it too (fleet.ts). No log or metric tells when that is over: three refresh periods cover it.
    await sleep(3 * FLEET_REFRESH_MS);
    const bases = [api, api2];
    log('scale-out: 2 workers + 2 APIs');
    // autocannon sends to one host: one run per API at once, each with half the connections.
    const half = Math.max(1, Math.floor(settings.connections / 2));
    const runs = await Promise.all(bases.map((url, j) => measure({ ...noChangeSpec, url }, j === 0 ? settings.connections - half : half)));
    const scaled = { noChangeRps: round(runs[0].rps + runs[1].rps), noChangeRuns: runs, activationsPerSecond: await activationRate(bases, k) };
    return {
      baseline,
      scaled,
      noChangeRatio: round(scaled.noChangeRps / baseline.noChange.rps, 2),
      activationRatio: round(scaled.activationsPerSecond / baseline.activationsPerSecond, 2),
    };
  } finally {
    for (const child of extra) procs.splice(procs.indexOf(child), 1);
    await Promise.all(extra.map((child) => stopChild(child)));
    // The first worker counts a stopped one until Temporal's record of its last poll is old
    // (fleet.ts, up to 2.5 min), and takes half the quota meanwhile: wait, so the scenarios
    // after (if any run) see 1 + 1.
    if (b.runsAfter('scale-out')) {
      log('scale-out: extra processes stopped; waiting until the worker counts only itself');
      await waitFor('the worker count back to 1', async () => (await workersSeen()) <= 1, 300_000)
        .then(() => sleep(FLEET_REFRESH_MS))
        .catch((err) => log('scale-out:', err instanceof Error ? err.message : err));
    }
  }
}
