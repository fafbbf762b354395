// Where `access login` keeps a person's API, tenant and tokens: one file of named profiles, readable
// by its owner only ($XDG_CONFIG_HOME/access/profiles.json, else ~/.config/access/profiles.json).
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
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
  /** From the API's sign-in lookup at login: where to refresh and revoke, and what for. */
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
/** A profile's name: a word people type, never one an object already has (`constructor`, `__proto__`). */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function profilesFile(): string {
  // The XDG spec: a relative XDG_CONFIG_HOME is ignored (tokens never land in the working folder).
  const xdg = process.env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
  return path.join(base, 'access', 'profiles.json');
}

/** The profiles folder, made if need be: this user's, and nobody else's to read or write. */
function ownFolder(): string {
  const dir = path.dirname(profilesFile());
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stat = lstatSync(dir);
  if (!stat.isDirectory() || (typeof process.getuid === 'function' && stat.uid !== process.getuid())) {
    throw new Error(`${dir} is not a folder of yours; the CLI keeps tokens only in one.`);
  }
  if ((stat.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}

function readAll(): z.infer<typeof fileSchema> {
  const file = profilesFile();
  if (!existsSync(file)) return { profiles: {} };
  let parsed;
  try {
    parsed = fileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw new Error(`${file} is not a profiles file this CLI wrote; move it away and sign in again (access login).`);
  return parsed.data;
}

export function readProfile(name: string): Profile | undefined {
  if (!PROFILE_NAME.test(name)) throw new Error(`"${name}" is not a profile name: letters, digits, _, . and -, starting with a letter or digit.`);
  const { profiles } = readAll();
  return Object.hasOwn(profiles, name) ? profiles[name] : undefined;
}

/**
 * Writes one profile (undefined: removes it) into a new file only its owner may read, which then
 * replaces the old one whole. Call it holding the lock (withProfilesLock).
 */
export function writeProfile(name: string, profile: Profile | undefined): void {
  const file = profilesFile();
  ownFolder();
  const all = readAll();
  if (profile) all.profiles[name] = profile;
  else delete all.profiles[name];
  // A name nobody can guess, made here and nowhere else (wx): no link or file of another is written through.
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(all, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Longer than any work done under the lock (a refresh gives up after 2 x 10 s): a lock older than this was left by a process that died. */
const STALE_LOCK_MS = 120_000;

/**
 * Runs `work` while holding the profiles' lock: two commands refreshing at once would each spend the
 * same refresh token (a provider that rotates them ends the session on the second), and a refresh
 * ending after a logout would write back a session the person ended.
 */
export async function withProfilesLock<T>(work: () => Promise<T>): Promise<T> {
  const lock = path.join(ownFolder(), 'profiles.lock');
  const mine = randomBytes(16).toString('hex');
  const deadline = Date.now() + 2 * STALE_LOCK_MS;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, mine);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (statSafe(lock)?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) {
        // Whoever held it is gone; of the waiters that see so, the one whose rename lands takes over.
        const taken = `${lock}.${mine}`;
        try {
          renameSync(lock, taken);
          unlinkSync(taken);
        } catch {
          /* another waiter took it first */
        }
      } else if (Date.now() > deadline) {
        throw new Error(`${lock} is held by another access command; remove it if none runs.`);
      } else {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  try {
    return await work();
  } finally {
    // Only our own lock: one taken over from us (we were too slow) is another's now.
    if (readSafe(lock) === mine) unlinkSafe(lock);
  }
}

function statSafe(file: string) {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

function readSafe(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
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
