// The contract's error shape ({code, message, details?, notices?}) as an exception, so any layer
// can fail with an answer a client may see. Everything else is an internal error.
export type ErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'tenant_mismatch'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'payload_too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export class AccessError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extra: { details?: Record<string, unknown>; notices?: readonly string[] } = {},
    /** For `rate_limited`: when to try again (the Retry-After header). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}
