// Load generation: autocannon runs (a warm-up, then the measured run with its CPU per request),
// and closed loops of tasks.
import autocannon from 'autocannon';
import { cpuByProcess } from './processes';
import { log, settings } from './settings';
import { round } from './stats';

export interface LoadResult {
  p50: number;
  p99: number;
  mean: number;
  /** Mean responses per second. */
  rps: number;
  total: number;
  errors: number;
  non2xx: number;
  /** 2xx answers that were not what the scenario expects (e.g. not `change: none`). */
  unexpected: number;
  /** CPU per request by process, in ms (measure() only). */
  cpuMsPerRequest?: Record<string, number>;
}

export interface LoadSpec {
  url: string;
  /** Path, headers and body of the i-th request. */
  request: (i: number) => { path: string; headers?: Record<string, string>; body?: string };
  /** Checks a 2xx body; false counts as unexpected. */
  expect?: (body: string) => boolean;
}

export async function load(spec: LoadSpec, seconds: number, counter = { i: 0 }, connections = settings.connections): Promise<LoadResult> {
  let unexpected = 0;
  const result = await autocannon({
    url: spec.url,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const r = spec.request(counter.i++);
          return { ...req, path: r.path, headers: { ...req.headers, 'content-type': 'application/json', ...r.headers }, body: r.body ?? '' };
        },
        onResponse: (status, body) => {
          if (status < 300 && spec.expect && !spec.expect(body)) unexpected++;
        },
      },
    ],
  });
  return {
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: round(result.latency.mean, 2),
    rps: round(result.requests.average),
    total: result.requests.total,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    unexpected,
  };
}

/** Warm-up, then the measured run. The counter carries on, so the warm-up's keys are not reused where that matters. */
export async function measure(spec: LoadSpec, connections = settings.connections): Promise<LoadResult> {
  const counter = { i: 0 };
  await load(spec, Math.max(2, Math.round(settings.durationSeconds / 3)), counter, connections);
  const before = cpuByProcess();
  const result = await load(spec, settings.durationSeconds, counter, connections);
  const after = cpuByProcess();
  const cpuMsPerRequest = Object.fromEntries(
    Object.entries(after)
      .map(([name, ms]) => [name, round((ms - (before[name] ?? ms)) / Math.max(1, result.total), 2)] as const)
      .filter(([, ms]) => ms > 0),
  );
  return { ...result, cpuMsPerRequest };
}

export async function closedLoop(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** `task` for 0..n-1, `concurrency` at once: how long it took, in s. */
export async function made(what: string, n: number, task: (i: number) => Promise<void>, concurrency = settings.readsConcurrency): Promise<number> {
  const t0 = Date.now();
  await closedLoop(n, concurrency, async (i) => {
    await task(i);
    if (i % 5000 === 4999) log(`${i + 1} of ${n} ${what}`);
  });
  log(`${n} ${what} in ${round((Date.now() - t0) / 1000)} s`);
  return round((Date.now() - t0) / 1000);
}
