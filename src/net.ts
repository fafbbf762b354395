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
 * An HTTP request to a URL someone else runs (a webhook, Slack): redirects are not followed (a
 * 3xx is an answer we do not trust to re-send to), it gives up after `timeoutMs`, and only the
 * first ANSWER_LIMIT_BYTES of the answer are read (Slack's is short).
 */
export async function fetchCapped(
  url: string,
  init: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; signal?: AbortSignal; timeoutMs: number },
): Promise<{ status: number; ok: boolean; text: string }> {
  const timeout = AbortSignal.timeout(init.timeoutMs);
  const res = await fetch(url, {
    method: init.method,
    headers: init.headers,
    body: init.body,
    redirect: 'manual',
    signal: init.signal ? AbortSignal.any([init.signal, timeout]) : timeout,
  });
  const chunks: Uint8Array[] = [];
  let read = 0;
  // Leaving the loop early cancels the rest and drops the connection.
  for await (const chunk of (res.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
    chunks.push(chunk);
    read += chunk.byteLength;
    if (read >= ANSWER_LIMIT_BYTES) break;
  }
  return { status: res.status, ok: res.ok, text: Buffer.concat(chunks).subarray(0, ANSWER_LIMIT_BYTES).toString('utf8') };
}
