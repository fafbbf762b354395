// The CLI's view of the HTTP API: one call, its answer or its error, and what that means as an exit code.
import type { GrantView } from '../domain/grant';
import type { AccessRequestView } from '../domain/request';

/** Exit codes (docs/api.md, "CLI"): the same meaning for every command. */
export const EXIT = {
  ok: 0,
  /** Bad flags, or the API refused the input (400, 404, 409). */
  usage: 1,
  /** Policy forbids it (403 forbidden or tenant_mismatch). */
  forbidden: 2,
  /** --wait ended without access: denied, expired, revoked, failed, or still not active at --timeout. */
  notActive: 3,
  /** No token, or the API did not accept it (401). */
  unauthenticated: 4,
  /** The API or Temporal could not be reached, or failed (5xx). */
  unavailable: 5,
  /** Too many calls (429 rate_limited): try again after the time the message says. */
  rateLimited: 6,
} as const;

export interface Connection {
  url: string;
  token?: string;
  tenant?: string;
}

/** An error answer of the API ({code, message, details?, notices?}), or one made up for a failed call. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { code: string; message: string; details?: unknown; notices?: string[] },
    /** The answer's Retry-After (429, 503): when the same call may succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(body.message);
  }

  get exitCode(): number {
    if (this.status === 401) return EXIT.unauthenticated;
    if (this.status === 403) return EXIT.forbidden;
    if (this.status === 429) return EXIT.rateLimited;
    if (this.status === 0 || this.status >= 500) return EXIT.unavailable;
    return EXIT.usage;
  }
}

/** Revoke answers once the assignment is gone (up to 30 s), so calls may take a while. */
const CALL_TIMEOUT_MS = 90_000;

export async function callApi<T>(conn: Connection, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  if (!conn.token) throw new ApiError(401, { code: 'unauthenticated', message: 'No token: pass --token or set ACCESS_TOKEN.' });
  if (!conn.tenant) throw new ApiError(400, { code: 'invalid_request', message: 'No tenant: pass --tenant or set ACCESS_TENANT_ID.' });
  const url = conn.url.replace(/\/+$/, '') + path;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${conn.token}`, 'x-tenant-id': conn.tenant, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  } catch (err) {
    const why = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
    throw new ApiError(0, { code: 'unavailable', message: `Cannot reach ${conn.url}: ${why}` });
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const error = parsed as ApiError['body'] | undefined;
    const retryAfter = Number(res.headers.get('retry-after') ?? NaN);
    throw new ApiError(
      res.status,
      error?.code ? error : { code: 'unavailable', message: `HTTP ${res.status} from ${url}` },
      Number.isInteger(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
    );
  }
  if (parsed === undefined) throw new ApiError(502, { code: 'unavailable', message: `${url} did not answer with JSON` });
  return parsed as T;
}

export type Grant = GrantView;

export type AccessRequest = AccessRequestView;
