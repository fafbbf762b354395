// A fault-injecting HTTP proxy between the AWS SDK and moto_server. IAM Identity Center's admin API
// is AWS JSON 1.1: every call is a POST whose `X-Amz-Target` header is
// `SWBExternalService.<Operation>` (Identity Store calls, `AWSIdentityStore.<Operation>`, pass
// through untouched and uncounted). Per operation a test sets one rule; `reset()` clears rules and
// counters between tests.
//
// What it measures, for the one Identity Center instance behind it:
// - calls: every admin API request as it arrives (faulted ones too: AWS sees those as well);
//   `maxCallsInOneSecond` is the most that arrived in any window of 1000 ms.
// - creations in flight: creations whose CreateAccountAssignment was accepted (answered
//   IN_PROGRESS to the caller) and whose end (SUCCEEDED/FAILED) has not yet been reported to the
//   caller by a status poll. A creation answered SUCCEEDED at once is never in flight (moto answers
//   so; IN_PROGRESS injection makes creations last). One never polled to its end stays counted.
// - operations in flight: the same for creations and deletions together.
//
// It runs in a child process: in the test process its clock would be the busy worker's event loop,
// and calls would seem to arrive in bunches that never left in bunches. `FaultProxy` is the
// handle the tests hold; every method is a message to the child.
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

type Operation = string;

export type FaultRule = { times?: number } & (
  | { error: 'ThrottlingException' | 'ConflictException' | (string & {}); message?: string }
  | { status: number }
  | { delayMs: number }
  | { drop: true }
  /** For CreateAccountAssignment/DeleteAccountAssignment: the answer and `inProgressPolls` status polls say IN_PROGRESS; then the end status, FAILED with `failureReason` if given. */
  | { inProgressPolls: number; failureReason?: string }
  /** For assignment operations and their status polls: the status's CreatedDate (AWS's time of the request), epoch ms. */
  | { createdAtMs: number }
);

export interface ProxyStats {
  /** Admin API calls per operation since the last reset. */
  counts: Record<Operation, number>;
  calls: number;
  maxCallsInOneSecond: number;
  creationsInFlight: number;
  maxCreationsInFlight: number;
  maxOperationsInFlight: number;
  /** Every CreateAccountAssignment, DeleteAccountAssignment and ProvisionPermissionSet: when it arrived (ms since the first call, and `epochMs` on the wall clock, to set beside times other processes give), for which account, and whether its caller was still there to read the answer. */
  assignmentCalls: { at: number; epochMs: number; op: Operation; account: string; answered: boolean }[];
  /** Every PutInlinePolicyToPermissionSet and DeleteInlinePolicyFromPermissionSet that AWS carried out, in the order AWS answered them (`inlinePolicy` null for a deletion). */
  policyWrites: { permissionSetArn: string; inlinePolicy: string | null }[];
}

interface Tracked {
  creation: boolean;
  pollsLeft: number;
  failureReason?: string;
}

const ADMIN_TARGET = 'SWBExternalService.';
/** An Identity Store group provisioned by SCIM, as AWS describes it (moto never sets ExternalIds). */
const SCIM_EXTERNAL_ID = { Issuer: 'https://scim.idp.example.com', Id: 'scim-group-1' };

class FaultProxyServer {
  upstream = '';
  /** Arrival times (ms, monotonic) and operations of admin API calls since the last reset. */
  calls: { at: number; op: Operation }[] = [];
  assignmentCalls: ProxyStats['assignmentCalls'] = [];
  policyWrites: ProxyStats['policyWrites'] = [];
  creationsInFlight = 0;
  maxCreationsInFlight = 0;
  operationsInFlight = 0;
  maxOperationsInFlight = 0;
  private rules = new Map<Operation, FaultRule>();
  /** Group ids whose DescribeGroup answer carries ExternalIds (kept across resets: it is what the group is). */
  externalGroups = new Set<string>();
  private tracked = new Map<string, Tracked>();
  private server = http.createServer((req, res) => void this.handle(req, res));

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  on(op: Operation, rule: FaultRule): void {
    this.rules.set(op, rule);
  }

  reset(): void {
    this.rules.clear();
    this.tracked.clear();
    this.calls = [];
    this.assignmentCalls = [];
    this.policyWrites = [];
    this.creationsInFlight = 0;
    this.maxCreationsInFlight = 0;
    this.operationsInFlight = 0;
    this.maxOperationsInFlight = 0;
  }

  stats(): ProxyStats {
    const counts: Record<Operation, number> = {};
    for (const c of this.calls) counts[c.op] = (counts[c.op] ?? 0) + 1;
    return {
      counts,
      calls: this.calls.length,
      maxCallsInOneSecond: this.maxCallsInOneSecond(),
      creationsInFlight: this.creationsInFlight,
      maxCreationsInFlight: this.maxCreationsInFlight,
      maxOperationsInFlight: this.maxOperationsInFlight,
      assignmentCalls: this.assignmentCalls,
      policyWrites: this.policyWrites,
    };
  }

  maxCallsInOneSecond(): number {
    let max = 0;
    let first = 0;
    for (let last = 0; last < this.calls.length; last++) {
      while (this.calls[last].at - this.calls[first].at >= 1000) first++;
      max = Math.max(max, last - first + 1);
    }
    return max;
  }

  /** The rule for this call, used up by it. */
  private take(op: Operation): FaultRule | undefined {
    const rule = this.rules.get(op);
    if (!rule) return undefined;
    const times = (rule.times ?? Infinity) - 1;
    if (times <= 0) this.rules.delete(op);
    else this.rules.set(op, { ...rule, times });
    return rule;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith(ADMIN_TARGET) ? target.slice(ADMIN_TARGET.length) : undefined;
    if (op) this.calls.push({ at: performance.now(), op });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rule = op ? this.take(op) : undefined;
    if (op === 'CreateAccountAssignment' || op === 'DeleteAccountAssignment' || op === 'ProvisionPermissionSet') {
      const call = { at: performance.now() - this.calls[0].at, epochMs: Date.now(), op, account: String(JSON.parse(Buffer.concat(chunks).toString('utf8')).TargetId), answered: false };
      this.assignmentCalls.push(call);
      res.on('close', () => (call.answered = res.writableFinished));
    }

    if (rule && 'drop' in rule) return void req.socket.destroy();
    if (rule && 'error' in rule) {
      return this.answer(res, 400, { __type: rule.error, message: rule.message ?? `${rule.error} injected by the fault proxy` });
    }
    if (rule && 'status' in rule) return this.answer(res, rule.status, { __type: 'InternalServerException', message: 'injected by the fault proxy' });
    if (rule && 'delayMs' in rule) {
      await new Promise((resolve) => setTimeout(resolve, rule.delayMs));
      // The caller gave up waiting: the request never reached AWS.
      if (res.destroyed || req.socket.destroyed) return;
    }

    let upstream: { status: number; headers: http.IncomingHttpHeaders; body: Buffer };
    try {
      upstream = await this.forward(req, Buffer.concat(chunks));
    } catch (err) {
      return this.answer(res, 502, { __type: 'InternalServerException', message: `fault proxy: ${(err as Error).message}` });
    }
    let body = upstream.body;
    if ((op === 'PutInlinePolicyToPermissionSet' || op === 'DeleteInlinePolicyFromPermissionSet') && upstream.status === 200) {
      const sent = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { PermissionSetArn: string; InlinePolicy?: string };
      this.policyWrites.push({ permissionSetArn: sent.PermissionSetArn, inlinePolicy: sent.InlinePolicy ?? null });
    }
    if (op && upstream.status === 200) body = this.rewriteStatus(op, rule, body);
    if (target === 'AWSIdentityStore.DescribeGroup' && upstream.status === 200) {
      const group = JSON.parse(body.toString('utf8')) as { GroupId?: string; ExternalIds?: unknown[] };
      if (group.GroupId && this.externalGroups.has(group.GroupId)) body = Buffer.from(JSON.stringify({ ...group, ExternalIds: [SCIM_EXTERNAL_ID] }));
    }
    const headers = { ...upstream.headers, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];
    res.writeHead(upstream.status, headers).end(body);
  }

  private forward(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const out = http.request(this.upstream + req.url, { method: req.method, headers: req.headers }, (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => resolve({ status: answer.statusCode ?? 502, headers: answer.headers, body: Buffer.concat(chunks) }));
        answer.on('error', reject);
      });
      out.on('error', reject);
      out.end(body);
    });
  }

  private answer(res: http.ServerResponse, status: number, body: object): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': String((body as { __type: string }).__type) }).end(text);
  }

  /** Applies IN_PROGRESS / FAILED injection to assignment operation answers; counts creations in flight. */
  private rewriteStatus(op: Operation, rule: FaultRule | undefined, body: Buffer): Buffer {
    const starts = op === 'CreateAccountAssignment' || op === 'DeleteAccountAssignment';
    const polls = op === 'DescribeAccountAssignmentCreationStatus' || op === 'DescribeAccountAssignmentDeletionStatus';
    if (!starts && !polls) return body;
    const json = JSON.parse(body.toString('utf8')) as Record<string, { Status?: string; RequestId?: string; FailureReason?: string; CreatedDate?: number }>;
    const key = Object.keys(json).find((k) => k.startsWith('AccountAssignment') && k.endsWith('Status'));
    const status = key ? json[key] : undefined;
    if (!status?.RequestId) return body;
    if (rule && 'createdAtMs' in rule) {
      status.CreatedDate = rule.createdAtMs / 1000;
      return Buffer.from(JSON.stringify(json));
    }

    let tracked = this.tracked.get(status.RequestId);
    if (starts && rule && 'inProgressPolls' in rule) {
      tracked = { creation: op === 'CreateAccountAssignment', pollsLeft: rule.inProgressPolls + 1, failureReason: rule.failureReason };
      this.tracked.set(status.RequestId, tracked);
      if (tracked.creation) this.maxCreationsInFlight = Math.max(this.maxCreationsInFlight, ++this.creationsInFlight);
      this.maxOperationsInFlight = Math.max(this.maxOperationsInFlight, ++this.operationsInFlight);
    }
    if (!tracked) return body;
    if (tracked.pollsLeft > 0) {
      tracked.pollsLeft--;
      status.Status = 'IN_PROGRESS';
      delete status.FailureReason;
    } else {
      this.tracked.delete(status.RequestId);
      if (tracked.creation) this.creationsInFlight--;
      this.operationsInFlight--;
      if (tracked.failureReason !== undefined) {
        status.Status = 'FAILED';
        status.FailureReason = tracked.failureReason;
      }
    }
    return Buffer.from(JSON.stringify(json));
  }
}

type Message = { method: 'on'; op: Operation; rule: FaultRule } | { method: 'reset' | 'stats' } | { method: 'upstream'; url: string } | { method: 'externalGroup'; groupId: string };
type Command = Message & { id: number };

/** The tests' handle on the proxy process. */
export class FaultProxy {
  private nextId = 0;
  private replies = new Map<number, (value: unknown) => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on('message', (m: { id: number; result: unknown }) => this.replies.get(m.id)?.(m.result));
  }

  /** Starts the proxy on a free loopback port; give it `upstream` before the first AWS call. */
  static async start(): Promise<FaultProxy> {
    const child = fork(__filename, ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const url = await new Promise<string>((resolve, reject) => {
      child.once('message', (m: { url: string }) => resolve(m.url));
      child.once('exit', (code) => reject(new Error(`fault proxy exited with ${code}`)));
    });
    return new FaultProxy(child, url);
  }

  private send<T>(command: Message): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve) => {
      this.replies.set(id, (result) => {
        this.replies.delete(id);
        resolve(result as T);
      });
      this.child.send({ ...command, id });
    });
  }

  upstream(url: string): Promise<void> {
    return this.send({ method: 'upstream', url });
  }

  /** From now on, `rule` for `op` (one rule per operation; `times` calls, default all). */
  on(op: Operation, rule: FaultRule): Promise<void> {
    return this.send({ method: 'on', op, rule });
  }

  /** From now on the group is described as AWS describes one synced from an external identity provider (SCIM): with ExternalIds. */
  externalGroup(groupId: string): Promise<void> {
    return this.send({ method: 'externalGroup', groupId });
  }

  /** No rules, counters at zero. */
  reset(): Promise<void> {
    return this.send({ method: 'reset' });
  }

  stats(): Promise<ProxyStats> {
    return this.send({ method: 'stats' });
  }

  async count(op: Operation): Promise<number> {
    return (await this.stats()).counts[op] ?? 0;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}

if (require.main === module && process.argv.includes('--serve')) {
  const server = new FaultProxyServer();
  process.on('disconnect', () => process.exit(0)); // the test process is gone
  process.on('message', (c: Command) => {
    let result: unknown;
    if (c.method === 'on') server.on(c.op, c.rule);
    else if (c.method === 'reset') server.reset();
    else if (c.method === 'upstream') server.upstream = c.url;
    else if (c.method === 'externalGroup') server.externalGroups.add(c.groupId);
    else result = server.stats();
    process.send!({ id: c.id, result: result ?? null });
  });
  void server.listen().then(() => process.send!({ url: server.url }));
}
