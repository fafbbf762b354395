// The bench's child processes (the worker, the API, the floors), and what they use: memory, and
// CPU by process over a measured run.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Child, repoRoot, startChild, stopChild } from '../scripts/stack';
import { WORKER_ENV, WORKER_NODE_FLAGS } from '../src/worker-process';

export const procs: Child[] = [];

export function startNode(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, dir: string): Child {
  // BENCH_PROFILE=1: CPU profiles of every process, written to <work dir>/profiles when it ends.
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, 'profiles')}`] : [];
  const worker = script === 'src/worker.js';
  const flags = [...profile, ...(worker ? WORKER_NODE_FLAGS : [])];
  const child = startChild(name, process.execPath, [...flags, path.join(repoRoot, 'dist', script), ...args], { ...process.env, ...(worker ? WORKER_ENV : {}), ...env }, dir);
  procs.push(child);
  return child;
}

export const stopProcs = (): Promise<unknown> => Promise.all(procs.splice(0).map((child) => stopChild(child)));

/** Where a process's memory is, as its own /metrics (prom-client's Node.js defaults) says. */
export async function heapOf(metricsUrl: string): Promise<{ used: number; total: number; external: number }> {
  const text = await (await fetch(metricsUrl)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return { used: value('nodejs_heap_size_used_bytes'), total: value('nodejs_heap_size_total_bytes'), external: value('nodejs_external_memory_bytes') };
}

/** Resident and peak resident memory of a process, in bytes (Linux). */
export function memoryOf(pid: number | undefined): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/**
 * Where the time goes: CPU (user + system) each process of the run has used so far, in ms, by
 * name. The bench's own children, and the stack's Temporal server (its database is in the run's
 * folder, or its PostgreSQL folder), PostgreSQL (the postmaster and its backends) and moto (by its
 * port). Linux: /proc, in clock ticks of 10 ms.
 */
export const runOf = { dir: '', awsPort: '', temporalData: '' };
export function cpuByProcess(): Record<string, number> {
  const pids = procs.filter((c) => c.proc.pid !== undefined && !c.ended).map((c) => ({ name: c.name, pid: c.proc.pid! }));
  let postmaster: number | undefined;
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let command: string;
    try {
      command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (command.includes('start-dev') && command.includes(runOf.dir)) pids.push({ name: 'temporal', pid: Number(entry) });
    else if (runOf.temporalData && command.includes('temporal-server') && command.includes(runOf.temporalData)) pids.push({ name: 'temporal', pid: Number(entry) });
    else if (runOf.temporalData && command.includes(`postgres -D ${runOf.temporalData}/data`)) postmaster = Number(entry);
    else if (command.includes('moto_server') && command.includes(` -p ${runOf.awsPort}`)) pids.push({ name: 'moto', pid: Number(entry) });
  }
  if (postmaster !== undefined) {
    // A backend's command line is rewritten ("postgres: temporal temporal ..."): find them by parent.
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        const parent = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
        if (Number(entry) === postmaster || parent === postmaster) pids.push({ name: 'postgres', pid: Number(entry) });
      } catch {
        // gone meanwhile
      }
    }
  }
  const cpu: Record<string, number> = {};
  for (const { name, pid } of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpu[name] = (cpu[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // ended meanwhile
    }
  }
  return cpu;
}
