// Where `access login` keeps a person's API, tenant and tokens: one file of named profiles, readable
// by its owner only ($XDG_CONFIG_HOME/access/profiles.json, else ~/.config/access/profiles.json).
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

const tokensSchema = z.object({
  access_token: z.string(),
  refresh_token: z.string().optional(),
  /** Seconds since the epoch. */
  expires_at: z.number(),
});

const profileSchema = z.object({
  url: z.string(),
  tenant: z.string(),
  /** From the API's sign-in route at login: where to refresh and revoke. */
  issuer: z.string(),
  client_id: z.string(),
  audience: z.string(),
  resource: z.string().nullable().optional(),
  tokens: tokensSchema.optional(),
});

const fileSchema = z.object({ profiles: z.record(z.string(), profileSchema) });

export type Profile = z.infer<typeof profileSchema>;
export type Tokens = z.infer<typeof tokensSchema>;

export const DEFAULT_PROFILE = 'default';

export function profilesFile(): string {
  const base = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'access', 'profiles.json');
}

function readAll(): z.infer<typeof fileSchema> {
  const file = profilesFile();
  if (!existsSync(file)) return { profiles: {} };
  const parsed = fileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file} is not a profiles file this CLI wrote; move it away and sign in again (access login).`);
  return parsed.data;
}

export function readProfile(name: string): Profile | undefined {
  return readAll().profiles[name];
}

/** Writes one profile (undefined: removes it), through a file only its owner may read, replaced whole. */
export function writeProfile(name: string, profile: Profile | undefined): void {
  const file = profilesFile();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const all = readAll();
  if (profile) all.profiles[name] = profile;
  else delete all.profiles[name];
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/** A lock held longer than this was left by a process that died. */
const STALE_LOCK_MS = 30_000;

/**
 * Runs `work` while holding the profiles' lock: two commands refreshing at once would each spend the
 * same refresh token, and a provider that rotates them ends the session on the second.
 */
export async function withProfilesLock<T>(work: () => Promise<T>): Promise<T> {
  const lock = `${profilesFile()}.lock`;
  mkdirSync(path.dirname(lock), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + 2 * STALE_LOCK_MS;
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (statSafe(lock)?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) unlinkSafe(lock);
      else if (Date.now() > deadline) throw new Error(`${lock} is held by another access command; remove it if none runs.`);
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await work();
  } finally {
    unlinkSafe(lock);
  }
}

function statSafe(file: string) {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

function unlinkSafe(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* gone already */
  }
}
