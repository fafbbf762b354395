// The console is a client of the API's routes, like the CLI: each page calls them over HTTP with the
// person's token, so policy, rate limits and audit apply to it exactly as to any other client.
import type { z } from 'zod';
import type {
  accessRequestSchema,
  auditPageSchema,
  entitlementListSchema,
  errorSchema,
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
export type Entitlement = EntitlementList['entitlements'][number];
export type AuditPage = z.infer<typeof auditPageSchema>;
export type Report = z.infer<typeof reportSchema>;
export type ApiProblem = z.infer<typeof errorSchema> & { status: number };

/** An answer of the API that is not a 2xx, with the contract's error body. */
export class ApiRefusal extends Error {
  constructor(readonly problem: ApiProblem) {
    super(problem.message);
  }
}

const TIMEOUT_MS = 60_000;

export class ConsoleApi {
  /** `base`: where this process's API listens, as seen from itself. */
  /** `tenantId`: the console's tenant; a token of another is refused (403 tenant_mismatch), never served. */
  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly tenantId: string,
  ) {}

  get<T>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
    const search = params.size ? `?${params}` : '';
    return this.call<T>('GET', `${path}${search}`);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, 'x-tenant-id': this.tenantId, ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const problem = (parsed ?? {}) as Partial<ApiProblem>;
      throw new ApiRefusal({ ...problem, status: res.status, code: problem.code ?? 'internal', message: problem.message ?? `The API answered ${res.status}.` });
    }
    return parsed as T;
  }
}
