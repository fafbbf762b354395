// The console is a client of the API's routes, like the CLI: each page calls them over HTTP with the
// person's token, so policy, rate limits and audit apply to it exactly as to any other client.
import type { z } from 'zod';
import { ApiError, callApi, type Connection } from '../cli/api';
import type {
  accessRequestSchema,
  auditPageSchema,
  entitlementListSchema,
  grantListSchema,
  grantSchema,
  reportSchema,
  requestsResponseSchema,
} from '../api/schemas';

export type Grant = z.infer<typeof grantSchema>;
export type GrantList = z.infer<typeof grantListSchema>;
export type AccessRequest = z.infer<typeof accessRequestSchema>;
export type RequestList = z.infer<typeof requestsResponseSchema>;
export type EntitlementList = z.infer<typeof entitlementListSchema>;
export type AuditPage = z.infer<typeof auditPageSchema>;
export type Report = z.infer<typeof reportSchema>;
/** The API's refusal as a page shows it: the contract's error body and the HTTP status (0: not reached). */
export type ApiProblem = ApiError['body'] & { status: number };
export const problemOf = (err: ApiError): ApiProblem => ({ ...err.body, status: err.status });

/** A query string of the given values, leaving out those not set or empty. */
export function searchOf(values: Record<string, string | undefined>): URLSearchParams {
  return new URLSearchParams(Object.entries(values).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

/** The person's calls to the API, with the CLI's client (one way to call it, for both). */
export class ConsoleApi {
  private readonly conn: Connection;

  /**
   * `base`: where this process's API listens, as seen from itself. `tenantId`: the console's tenant;
   * a token of another is refused (403 tenant_mismatch), never served.
   */
  constructor(base: string, token: string, tenantId: string) {
    this.conn = { url: base, token, tenant: tenantId };
  }

  get<T>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    const params = searchOf(query);
    return callApi<T>(this.conn, 'GET', `${path}${params.size ? `?${params}` : ''}`);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return callApi<T>(this.conn, 'POST', path, body);
  }
}

export { ApiError };
