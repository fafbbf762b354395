// The one way the integrations call a provider's REST API: JSON over fetch, the caller's deadline
// (an AbortSignal) on every call, and a provider's refusal as a SourceError that says what
// happened, so FactSources turns it into an "unknown" fact with a note.

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

/**
 * GET `url` and answer its JSON body. `notFound`: what a 404 answers (a ticket that does not
 * exist is a fact, not a failure); without it a 404 is a SourceError like any other refusal.
 */
export async function getJson<T>(url: URL | string, init: { headers: Record<string, string>; signal: AbortSignal }, notFound?: () => T): Promise<T> {
  const where = new URL(url);
  let response: Response;
  try {
    response = await fetch(where, { headers: { accept: 'application/json', ...init.headers }, signal: init.signal, redirect: 'error' });
  } catch (err) {
    const reason = init.signal.aborted ? 'no answer within the deadline' : (err as Error).message;
    throw new SourceError(`${where.host}${where.pathname}: ${reason}`);
  }
  if (response.status === 404 && notFound) {
    await response.body?.cancel();
    return notFound();
  }
  if (!response.ok) {
    await response.body?.cancel();
    // PagerDuty says how long to wait in ratelimit-reset (seconds), not in Retry-After.
    const retryAfter = response.status === 429 ? (retryAfterSeconds(response.headers.get('retry-after')) ?? retryAfterSeconds(response.headers.get('ratelimit-reset'))) : undefined;
    throw new SourceError(`${where.host}${where.pathname}: HTTP ${response.status}${response.status === 429 ? ' (rate limited)' : ''}`, retryAfter);
  }
  try {
    return (await response.json()) as T;
  } catch (err) {
    throw new SourceError(`${where.host}${where.pathname}: ${init.signal.aborted ? 'no answer within the deadline' : `not JSON (${(err as Error).message})`}`);
  }
}
