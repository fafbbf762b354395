// The one way the integrations call a provider's REST API: JSON over the project's fetchCapped,
// the caller's deadline (an AbortSignal) on every call, and a provider's refusal as a SourceError
// that says what happened, so FactSources turns it into an "unknown" fact with a note.
import { fetchCapped } from '../net';

/** A provider did not answer usefully: down, slow, refused the credentials, or rate-limited (429). */
export class SourceError extends Error {
  constructor(
    message: string,
    /** From a 429's Retry-After: how long the provider asks to be left alone. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Retry-After as seconds (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** How much of a provider's answer is read: more than any one page or record; a longer one is a failure, not a stall. */
const ANSWER_LIMIT_BYTES = 4 * 1024 * 1024;

/** `path` with `query` on the provider's base URL, keeping a path the base has (a proxy's prefix). */
export function providerUrl(base: string, path: string, query: readonly (readonly [string, string])[] = []): URL {
  const url = new URL(path.replace(/^\/+/, ''), base.endsWith('/') ? base : `${base}/`);
  for (const [name, value] of query) url.searchParams.append(name, value);
  return url;
}

/**
 * GET `url` and answer its JSON body, through the project's one fetch for URLs others run
 * (fetchCapped: no redirects, a bounded answer). `notFound`: what a 404 answers (a ticket that
 * does not exist is a fact, not a failure); without it a 404 is a SourceError like any other refusal.
 */
export async function getJson<T>(url: URL, init: { headers: Record<string, string>; signal: AbortSignal }, notFound?: () => T): Promise<T> {
  const where = `${url.host}${url.pathname}`;
  let response: Awaited<ReturnType<typeof fetchCapped>>;
  try {
    response = await fetchCapped(url, { method: 'GET', headers: { accept: 'application/json', ...init.headers }, signal: init.signal, limitBytes: ANSWER_LIMIT_BYTES });
  } catch (err) {
    throw new SourceError(`${where}: ${init.signal.aborted ? 'no answer within the deadline' : (err as Error).message}`);
  }
  if (response.status === 404 && notFound) return notFound();
  if (!response.ok) {
    // PagerDuty says how long to wait in ratelimit-reset (seconds), not in Retry-After.
    const retryAfter = response.status === 429 ? (retryAfterSeconds(response.headers.get('retry-after')) ?? retryAfterSeconds(response.headers.get('ratelimit-reset'))) : undefined;
    const redirect = response.status >= 300 && response.status < 400 ? ' (redirects are not followed)' : '';
    throw new SourceError(`${where}: HTTP ${response.status}${response.status === 429 ? ' (rate limited)' : redirect}`, retryAfter);
  }
  if (response.truncated) throw new SourceError(`${where}: an answer over ${ANSWER_LIMIT_BYTES} bytes`);
  try {
    return JSON.parse(response.text) as T;
  } catch (err) {
    throw new SourceError(`${where}: not JSON (${(err as Error).message})`);
  }
}
