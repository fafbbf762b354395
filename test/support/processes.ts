// The worker and the API as real child processes (the built `node dist/src/...` entry points), so
// crash tests can SIGKILL them and start them again, as a supervisor would.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type Child, freePort, repoRoot, startChild, stopChild, waitFor } from '../../scripts/stack';
import { WORKER_ENV, WORKER_NODE_FLAGS } from '../../src/worker-process';
import { workflowBundle } from './bundle';

const START_TIMEOUT_MS = 60_000;

export interface ServiceSettings {
  /** Folder for the logs (`worker.log`, `api.log`, appended across restarts). */
  dir: string;
  /** The tenants file (ACCESS_CONFIG). */
  configPath: string;
  temporalAddress: string;
  /**
   * The suite's own task queue: workers of other test runs on the same Temporal never pick up its
   * tasks, and its killed worker is really the only one.
   */
  taskQueue: string;
  /** TEMPORAL_NAMESPACE; default the environment's (default). */
  namespace?: string;
}

export class ServiceProcess {
  private child?: Child;
  /** How many times it was started, and killed with SIGKILL. */
  starts = 0;
  kills = 0;

  constructor(
    readonly name: 'worker' | 'api',
    private readonly entry: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly dir: string,
    private readonly ready: (startsLogged: number) => Promise<boolean>,
    private readonly nodeFlags: string[] = [],
  ) {}

  get running(): boolean {
    return this.child !== undefined && !this.child.ended;
  }

  get logFile(): string {
    return path.join(this.dir, `${this.name}.log`);
  }

  /** Starts it and waits until it is ready (the worker polls, the API answers /readyz). */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const before = this.startsLogged();
    this.child = startChild(this.name, process.execPath, [...this.nodeFlags, path.join(repoRoot, this.entry)], this.env, this.dir);
    this.starts += 1;
    await waitFor(`${this.name} (${this.entry})`, () => this.ready(before), START_TIMEOUT_MS, this.child);
  }

  /** SIGKILL: no shutdown of any kind, as in a crash or an OOM kill. */
  async kill(): Promise<void> {
    if (!this.child) return;
    await stopChild(this.child, 0, 'SIGKILL');
    this.kills += 1;
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
  }

  /** Lines the entry point logs once it is up: counts starts across restarts in one log file. */
  startsLogged(): number {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').filter((l) => /"msg":"(worker polling|access API listening)"/.test(l)).length;
    } catch {
      return 0;
    }
  }
}

function childEnv(s: ServiceSettings, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ACCESS_CONFIG: s.configPath,
    TEMPORAL_ADDRESS: s.temporalAddress,
    TEMPORAL_TASK_QUEUE: s.taskQueue,
    ...(s.namespace && { TEMPORAL_NAMESPACE: s.namespace }),
    // No fixed metrics port: restarts and other stacks on this machine must not collide on it.
    WORKER_METRICS_PORT: '0',
    // Readiness is read from the info lines (the test process itself logs at warn).
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/**
 * `env`: more of the worker's environment (LOG_LEVEL=debug logs when each AWS call was paced). The
 * workflow code is bundled once for every worker of the test process (bundle.ts).
 */
export async function workerProcess(s: ServiceSettings, env: Record<string, string> = {}): Promise<ServiceProcess> {
  // A restarted worker waits two fleet refreshes before its first AWS call: 2 s here, not 10 (the
  // default is test/fleet.test.ts's).
  const bundled = { WORKFLOW_BUNDLE: await workflowBundle(), WORKER_FLEET_REFRESH_SECONDS: '1', ...env };
  const worker: ServiceProcess = new ServiceProcess(
    'worker',
    'dist/src/worker.js',
    childEnv(s, { ...WORKER_ENV, ...bundled }),
    s.dir,
    async (before) => worker.startsLogged() > before,
    WORKER_NODE_FLAGS,
  );
  return worker;
}

/** The API on a port of its own, kept across restarts so clients can retry at the same URL. */
export async function apiProcess(s: ServiceSettings): Promise<ServiceProcess & { url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const api = new ServiceProcess('api', 'dist/src/api/server.js', childEnv(s, { PORT: String(port) }), s.dir, async () => {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  });
  return Object.assign(api, { url });
}
