// Held: many active grants at once; memory and the no-change latency meanwhile.
import { heapOf, memoryOf } from '../processes';
import { GiB, account, log, settings, sleep } from '../settings';
import { type Scenario, x, yes } from '../scenario';
import { measure } from '../load';
import { round } from '../stats';
import type { Bench } from '../world';

export const scenario: Scenario = {
  name: 'held',
  key: 'held',
  title: 'held',
  run,
  rows: (held: any, s) => [
    [`${held.activeGrants} active grants: worker RSS (peak)`, `${held.workerRssMiB} MiB (${held.workerPeakRssMiB} MiB)`, '', '', '< 1 GiB', yes(held.workerPeakRssMiB * 2 ** 20 < GiB && held.activeGrants >= s.held)],
    [`${held.activeGrants} active grants: worker V8 heap used / heap total / external`, `${held.workerHeapUsedMiB} / ${held.workerHeapTotalMiB} / ${held.workerExternalMiB} MiB`, '', '', '', ''],
    [`${held.activeGrants} active grants: API RSS (peak)`, `${held.apiRssMiB} MiB (${held.apiPeakRssMiB} MiB)`, '', '', '', ''],
    [`${held.activeGrants} active grants: no-change p99`, `${held.noChangeEnsure.p99} ms`, `${held.floor.p99} ms`, x(held.noChangeEnsure.p99, held.floor.p99), '', ''],
    [`${held.activeGrants} active grants: no-change throughput`, `${held.noChangeEnsure.rps} req/s`, `${held.floor.rps} req/s`, x(held.noChangeEnsure.rps, held.floor.rps), '', ''],
  ],
  note: (held: any, s) => `Held: ${held.activeGrants} active grants (${s.held} asked), created in ${held.createSeconds} s (${held.createFailures} failed calls).`,
  loadRuns: (held: any) => [
    { label: 'no-change ensure, grants held', run: held.noChangeEnsure },
    { label: 'its floor, grants held', run: held.floor },
  ],
};

async function run(b: Bench) {
  const { temporal, ensure, worker, workerMetricsPort } = b;
  const { noChangeSpec, queryFloorSpec } = await b.noChangePool();
  const activeNow = async () => (await temporal.workflow.count(`WorkflowType = 'grantWorkflow' AND AccessStatus = 'active'`)).count;
  const createStarted = Date.now();
  let workerPeak = 0;
  const sampler = setInterval(() => (workerPeak = Math.max(workerPeak, memoryOf(worker.proc.pid).rss)), 2000);
  let failures = 0;
  let sent = 0;
  let active = await activeNow();
  // Grants of the earlier scenarios expire while these are made: top up until enough are held.
  for (let round = 1; round <= 3 && active < settings.held; round++) {
    const toCreate = settings.held - active;
    log(`held: ${active} active, creating ${toCreate} more at ${settings.createRate}/s`);
    const roundStarted = Date.now();
    const failedBefore = failures;
    const inFlight = new Set<Promise<void>>();
    for (let j = 0; j < toCreate; j++, sent++) {
      const due = roundStarted + (j * 1000) / settings.createRate;
      if (due > Date.now()) await sleep(due - Date.now());
      while (inFlight.size >= 50) await Promise.race(inFlight);
      const p: Promise<void> = ensure(sent, account(5, sent), 7200)
        .then(() => undefined)
        .catch(() => void failures++)
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (sent % 1000 === 999) log(`held: ${sent + 1} ensures sent, ${await activeNow()} active, worker RSS ${Math.round(memoryOf(worker.proc.pid).rss / 2 ** 20)} MiB`);
    }
    await Promise.all(inFlight);
    // Calls that failed (e.g. 503 on an overloaded machine) make no grant: do not wait for them.
    const expected = Math.min(settings.held, active + toCreate - (failures - failedBefore));
    const deadline = Date.now() + 15 * 60_000;
    let lastChange = Date.now();
    active = await activeNow();
    while (active < expected && Date.now() < deadline && Date.now() - lastChange < 60_000) {
      await sleep(5000);
      const now = await activeNow();
      if (now !== active) lastChange = Date.now();
      active = now;
      log(`held: ${active} active`);
    }
  }
  const createSeconds = (Date.now() - createStarted) / 1000;
  clearInterval(sampler);
  await sleep(5000); // let the dust settle before reading memory
  const workerMem = memoryOf(worker.proc.pid);
  const workerHeap = await heapOf(`http://127.0.0.1:${workerMetricsPort}/metrics`);
  const apiMem = memoryOf(b.apiProc.proc.pid);
  log('held: floor and no-change ensure while held');
  const floorHeld = await measure(queryFloorSpec);
  const noChangeHeld = await measure(noChangeSpec);
  const mib = (b: number) => round(b / 2 ** 20, 0);
  return {
    activeGrants: await activeNow(),
    createFailures: failures,
    createSeconds: round(createSeconds, 0),
    workerRssMiB: mib(workerMem.rss),
    workerPeakRssMiB: mib(Math.max(workerMem.peak, workerPeak)),
    workerHeapUsedMiB: mib(workerHeap.used),
    workerHeapTotalMiB: mib(workerHeap.total),
    workerExternalMiB: mib(workerHeap.external),
    apiRssMiB: mib(apiMem.rss),
    apiPeakRssMiB: mib(apiMem.peak),
    noChangeEnsure: noChangeHeld,
    floor: floorHeld,
  };
}
