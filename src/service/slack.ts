// Approve and Deny buttons in Slack (docs/configuration.md, "Approve and deny from Slack"): a
// click becomes the same review() call the HTTP endpoint makes, by the principal the tenant's
// config names for the Slack user's email; the outcome goes back to the click's response_url.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { type AppConfig, tenantById, type TenantConfig } from '../config';
import { AccessError } from '../domain/errors';
import type { AccessRequestView } from '../domain/request';
import type { Logger } from '../log';
import { fetchCapped, isLoopback } from '../net';
import { LRUCache } from 'lru-cache';
import type { CallRates } from './rate-limit';
import type { RequestService } from './requests';

/** Slack's window for a request's timestamp: older (or newer) ones may be replays. */
const MAX_CLOCK_SKEW_SECONDS = 5 * 60;
/** A Slack user's email is looked up again after this long... */
const USER_CACHE_MS = 5 * 60 * 1000;
/** ...and at most this many are remembered (the oldest go first). */
const USER_CACHE_SIZE = 1000;
const SLACK_TIMEOUT_MS = 5000;

const payloadSchema = z.object({
  type: z.literal('block_actions'),
  user: z.object({ id: z.string().min(1).max(64) }),
  response_url: z.string().max(2048),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().max(2000).optional() })).min(1),
  message: z.object({ blocks: z.array(z.unknown()).max(100).optional() }).optional(),
});
type Payload = z.infer<typeof payloadSchema>;

/** A click checked against its tenant's signing secret, not yet acted on. */
export interface SlackClick {
  tenant: TenantConfig;
  payload: Payload;
  decision: 'approve' | 'deny';
  requestId: string;
}

interface SlackApp {
  signingSecret: string;
  botToken: string;
  apiUrl: string;
}

export class SlackInteractions {
  private readonly apps = new Map<string, SlackApp>();
  /** `tenant\nSlack user id` to email, with when it was looked up; a Map keeps insertion order. */
  private readonly emails = new Map<string, { email: string; at: number }>();
  /**
   * Signatures of the clicks taken, for as long as their timestamp is in the window: the same
   * timestamp and body again is a replay (Slack sends each click once). Per API process, as the
   * rates are; the rates bound how many there are.
   */
  private readonly taken = new LRUCache<string, true>({ max: 100_000, ttl: 2 * MAX_CLOCK_SKEW_SECONDS * 1000 });

  constructor(
    private readonly config: AppConfig,
    private readonly requests: RequestService,
    private readonly rates: CallRates,
  ) {
    for (const tenant of config.tenants) {
      const slack = tenant.notifications.slack;
      if (!slack) continue;
      this.apps.set(tenant.id, {
        signingSecret: readFileSync(slack.signing_secret_file, 'utf8').trim(),
        botToken: readFileSync(slack.bot_token_file, 'utf8').trim(),
        apiUrl: slack.api_url.replace(/\/+$/, ''),
      });
    }
  }

  /**
   * The click in a raw request body, to act on: its signature checks out (verify), it was not taken
   * before (401: a replay), and it is within the clicking Slack user's and the tenant's rates (429;
   * Slack may send it again, and it is then taken).
   */
  take(rawBody: string, timestampHeader: string | undefined, signatureHeader: string | undefined): SlackClick {
    const click = this.verify(rawBody, timestampHeader, signatureHeader);
    const key = `${click.tenant.id}\n${signatureHeader}`;
    if (this.taken.has(key)) throw refused();
    this.rates.takeSlackClick(click.tenant, click.payload.user.id);
    this.taken.set(key, true);
    return click;
  }

  /**
   * The click in a raw request body, once its signature checks out with the signing secret of the
   * tenant its button names (so one tenant's Slack app cannot act in another). Anything else is
   * 401 and nothing is done.
   */
  private verify(rawBody: string, timestampHeader: string | undefined, signatureHeader: string | undefined, now = Date.now()): SlackClick {
    let payload: Payload;
    try {
      payload = payloadSchema.parse(JSON.parse(new URLSearchParams(rawBody).get('payload') ?? ''));
    } catch {
      throw refused();
    }
    const action = payload.actions[0];
    const [tenantId, requestId] = (action.value ?? '').split(':');
    const tenant = tenantId ? tenantById(this.config, tenantId) : undefined;
    const app = tenant && this.apps.get(tenant.id);
    if (!tenant || !app || !requestId || (action.action_id !== 'approve' && action.action_id !== 'deny')) throw refused();
    const timestamp = Number(timestampHeader);
    if (!/^\d{1,12}$/.test(timestampHeader ?? '') || Math.abs(now / 1000 - timestamp) > MAX_CLOCK_SKEW_SECONDS) throw refused();
    const expected = Buffer.from(`v0=${createHmac('sha256', app.signingSecret).update(`v0:${timestampHeader}:${rawBody}`).digest('hex')}`);
    const given = Buffer.from(signatureHeader ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refused();
    return { tenant, payload, decision: action.action_id, requestId };
  }

  /** Reviews as the Slack user, then says how it went at the click's response_url. */
  async act(click: SlackClick, log: Logger): Promise<void> {
    const answer = await this.review(click, log);
    const responseUrl = this.responseUrlOf(click);
    if (!responseUrl) {
      log.warn({ tenant: click.tenant.id }, 'Slack click with a response_url that is not Slack\'s: not answered');
      return;
    }
    try {
      const res = await fetchCapped(responseUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(answer),
        timeoutMs: SLACK_TIMEOUT_MS,
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      log.warn({ tenant: click.tenant.id, err: (err as Error).message }, 'Slack response_url not reached');
    }
  }

  private async review({ tenant, payload, decision, requestId }: SlackClick, log: Logger): Promise<object> {
    const slackUser = payload.user.id;
    let email: string;
    try {
      email = await this.emailOf(tenant.id, slackUser);
    } catch (err) {
      log.warn({ tenant: tenant.id, slack_user: slackUser, err: (err as Error).message }, 'Slack users.info failed');
      return privately('Your Slack account could not be looked up; nothing was reviewed. Try again, or use `access review`.');
    }
    const reviewer = tenant.notifications.slack?.reviewers[email.toLowerCase()];
    if (!reviewer) return privately('You are not a reviewer here (your Slack email is not in this tenant\'s reviewers); nothing was reviewed.');
    // The person tokens carry: the user claim's value (reviewers[email].user, else the email itself).
    const caller = { tenant, principal: { id: reviewer.id, email, groups: reviewer.groups, identityStoreUser: reviewer.user ?? email.toLowerCase() } };
    let request: AccessRequestView;
    try {
      request = await this.requests.review(caller, requestId, decision);
    } catch (err) {
      if (err instanceof AccessError) return privately(`Not reviewed: ${err.message}`);
      // Temporal down, say: the clicker hears that much; the operator gets the error.
      log.error({ err, tenant: tenant.id, access_request_id: requestId }, 'review from Slack failed');
      return privately('Something went wrong on our side; the review may not have been recorded. Try again, or use `access review`.');
    }
    log.info({ tenant: tenant.id, principal: reviewer.id, access_request_id: requestId, status: request.status }, `request reviewed from Slack (${decision})`);
    const outcome = outcomeOf(request, reviewer.id, decision);
    // A request still waiting for approvals keeps its buttons, for the next reviewer.
    const original = (payload.message?.blocks ?? []).filter((b) => request.status === 'pending' || (b as { type?: string }).type !== 'actions');
    return {
      replace_original: true,
      text: outcome,
      blocks: [...original, { type: 'context', elements: [{ type: 'mrkdwn', text: outcome }] }],
    };
  }

  /** The Slack user's email, from users.info (cached per tenant and user). */
  private async emailOf(tenantId: string, slackUser: string): Promise<string> {
    const key = `${tenantId}\n${slackUser}`;
    const cached = this.emails.get(key);
    if (cached && Date.now() - cached.at < USER_CACHE_MS) return cached.email;
    const app = this.apps.get(tenantId)!;
    const res = await fetchCapped(`${app.apiUrl}/users.info?user=${encodeURIComponent(slackUser)}`, {
      method: 'GET',
      headers: { authorization: `Bearer ${app.botToken}` },
      timeoutMs: SLACK_TIMEOUT_MS,
    });
    const answer = JSON.parse(res.text) as { ok?: boolean; error?: string; user?: { profile?: { email?: unknown } } };
    const email = answer.user?.profile?.email;
    if (!answer.ok || typeof email !== 'string') throw new Error(`users.info: ${answer.ok ? 'no email (is users:read.email granted?)' : (answer.error ?? `HTTP ${res.status}`)}`);
    this.emails.delete(key);
    this.emails.set(key, { email, at: Date.now() });
    if (this.emails.size > USER_CACHE_SIZE) this.emails.delete(this.emails.keys().next().value!);
    return email;
  }

  /**
   * Slack's response_urls are on hooks.slack.com; another host is answered only when it is the
   * configured api_url's (a local stand-in), so a click cannot send the service's answer elsewhere.
   */
  private responseUrlOf({ tenant, payload }: SlackClick): string | undefined {
    let url: URL;
    try {
      url = new URL(payload.response_url);
    } catch {
      return undefined;
    }
    const api = new URL(this.apps.get(tenant.id)!.apiUrl);
    const slacks = url.protocol === 'https:' && url.hostname === 'hooks.slack.com';
    const apis = url.origin === api.origin && (url.protocol === 'https:' || isLoopback(url.hostname));
    return slacks || apis ? url.href : undefined;
  }
}

function refused(): AccessError {
  return new AccessError('unauthenticated', 'The request is not a signed Slack interaction for a tenant of this service.');
}

/** Only the one who clicked sees it; the message stays as it is for the other reviewers. */
function privately(text: string): object {
  return { response_type: 'ephemeral', replace_original: false, text };
}

function outcomeOf(request: AccessRequestView, reviewerId: string, decision: 'approve' | 'deny'): string {
  if (request.status === 'denied') return `:no_entry: Denied by ${request.denial?.reviewer_id ?? reviewerId}.`;
  const count = request.approvals.length;
  const tally = request.approvals_required > 1 ? ` (${Math.min(count, request.approvals_required)} of ${request.approvals_required})` : '';
  if (decision === 'approve' && (request.status === 'approved' || request.status === 'pending')) {
    const waiting = request.status === 'pending' ? `; waiting for ${request.approvals_required - count} more` : '';
    return `:white_check_mark: Approved by ${reviewerId}${tally}${waiting}.`;
  }
  return `The request is ${request.status}.`;
}
