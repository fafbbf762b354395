// Loop counts a run may set from the environment (FUZZ_RUNS, CRASH_ROUNDS, RELIABILITY_*): a 0 or
// a non-number would run nothing and pass, so it stops the run instead.
export function countFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const count = Number(text);
  if (!Number.isInteger(count) || count < 1) throw new Error(`${name}=${JSON.stringify(text)}: give a whole number of at least 1`);
  return count;
}
