// A TCP proxy in front of a service (here moto's S3, for one tenant's audit store) that can be
// taken down and brought back: while down, every connection is cut as soon as it opens, and the
// ones already open are cut too.
import net, { type AddressInfo } from 'node:net';

export class OutageProxy {
  private down = false;
  private readonly open = new Set<net.Socket>();

  private upstream = { host: '127.0.0.1', port: 0 };

  private constructor(private readonly server: net.Server) {}

  /** Listens at once (its URL goes into the config); `forwardTo` names the service once it runs. */
  static async start(): Promise<OutageProxy> {
    let proxy!: OutageProxy;
    const server = net.createServer((client) => proxy.accept(client));
    proxy = new OutageProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  forwardTo(url: string): void {
    const { hostname, port } = new URL(url);
    this.upstream = { host: hostname, port: Number(port) };
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Connections are cut (reset) until bringUp(). */
  takeDown(): void {
    this.down = true;
    for (const socket of this.open) socket.destroy();
  }

  bringUp(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    for (const socket of this.open) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: net.Socket): void {
    if (this.down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.upstream);
    for (const socket of [client, upstream]) {
      this.open.add(socket);
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on('close', () => this.open.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  }
}
