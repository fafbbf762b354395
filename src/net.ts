// Small network helpers shared by the worker and the local stack.
import net, { isIPv4 } from 'node:net';

/** A TCP port on the loopback interface that nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A loopback name or address, IPv4-mapped ones (`::ffff:127.0.0.1`, as a dual-stack socket gives them) included. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').replace(/^::ffff:/i, '');
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

/** Where a credential may be sent: https, or plain http to this machine only. */
export function httpsOrLoopback(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'https:' || (protocol === 'http:' && isLoopback(hostname));
}

/** How much of an answer from a webhook or Slack is read; then the connection is dropped. */
export const ANSWER_LIMIT_BYTES = 64 * 1024;

/**
 * An HTTP request to a URL someone else runs (a webhook, Slack, an on-call or ticket source):
 * redirects are not followed (a 3xx is an answer we do not trust to re-send to), it gives up
 * after `timeoutMs` (or when `signal` aborts), and only the first `limitBytes` of the answer are
 * read (default ANSWER_LIMIT_BYTES: Slack's is short); `truncated` says the answer was longer.
 */
export async function fetchCapped(
  url: string | URL,
  init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; signal?: AbortSignal; timeoutMs?: number; limitBytes?: number },
): Promise<{ status: number; ok: boolean; text: string; headers: Headers; truncated: boolean }> {
  const signals = [init.signal, init.timeoutMs === undefined ? undefined : AbortSignal.timeout(init.timeoutMs)].filter((s) => s !== undefined);
  const limit = init.limitBytes ?? ANSWER_LIMIT_BYTES;
  const res = await fetch(url, {
    method: init.method,
    headers: init.headers,
    body: init.body,
    redirect: 'manual',
    signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0],
  });
  const chunks: Uint8Array[] = [];
  let read = 0;
  // Leaving the loop early cancels the rest and drops the connection.
  for await (const chunk of (res.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    read += chunk.byteLength;
    if (read > limit) break;
  }
  return { status: res.status, ok: res.ok, text: Buffer.concat(chunks).subarray(0, limit).toString('utf8'), headers: res.headers, truncated: read > limit };
}
