// Structured JSON logs (pino) for the API and the worker. Tokens and secrets never reach them:
// request headers are not logged at all, and anything token-like that a log call passes by
// mistake is redacted.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

const REDACTED_KEYS = ['authorization', 'token', 'access_token', 'id_token', 'jwt', 'password', 'secret', 'apiKey', 'api_key', 'cookie'];

export function createLogger(name: string, destination?: DestinationStream): Logger {
  return pino(
    {
      name,
      level: process.env.LOG_LEVEL ?? 'info',
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [...REDACTED_KEYS, ...REDACTED_KEYS.map((k) => `*.${k}`), 'req.headers', 'err.config', 'err.request'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
