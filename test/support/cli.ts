// Runs the `access` CLI for real (the compiled bin from package.json) against the test stack's API.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../../scripts/stack';
import { current, TENANT, tokenFor, type USERS } from './world';

export const BIN = path.join(repoRoot, (require(path.join(repoRoot, 'package.json')) as { bin: { access: string } }).bin.access);

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

type User = keyof typeof USERS;

/** Runs `access <args>` as `as` (async: the API runs in this very process). */
export async function access(args: string[], opts: { as?: User; env?: Record<string, string | undefined> } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    ACCESS_URL: current().baseUrl,
    ACCESS_TENANT_ID: TENANT.id,
    ACCESS_TOKEN: await tokenFor(opts.as ?? 'alice'),
    ...opts.env,
  };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const show = (run: Run) => `exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;

