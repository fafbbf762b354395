// Notifications: Slack-compatible JSON ({text, blocks}) POSTed to the tenant's webhooks that
// subscribe to the event. The URLs are read from config at send time; the workflow only says what
// happened. Temporal retries a failed delivery; webhooks already reached in an earlier attempt
// are remembered in the heartbeat details and skipped.
//
// A webhook URL's path is its secret, and heartbeat details and failures are kept by Temporal (and
// failures logged), so those name a webhook by its place in the tenant's list and a short hash of
// its URL: `webhook #2 (a1b2c3d4)`.
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { tenantById, type AppConfig, type TenantConfig } from '../config';
import type { NotificationEvent } from '../domain/grant';
import { oneLine } from '../domain/text';
import { fetchCapped } from '../net';

export interface Notification {
  tenantId: string;
  event: NotificationEvent;
  grant: {
    id: string;
    role: string;
    target: string;
    principalId: string;
    principalEmail?: string;
    durationSeconds: number;
    expiresAt: string | null;
    /** A scheduled grant's start (absent in notifications from before scheduled starts). */
    startsAt?: string | null;
    accessRequestId: string | null;
    reason?: string;
    attachments?: string[];
    /** approved / denied */
    reviewer?: string;
    comment?: string;
    /** Who may review: the determining policies' advice. */
    reviewNotices?: string[];
  };
}

const DELIVERY_TIMEOUT_MS = 5000;

/** The message, in Slack's mrkdwn; every event names the grant, its account and its principal. */
export function messageOf({ event, grant }: Notification): string {
  const who = grant.principalEmail ? `${slackText(grant.principalEmail)} (${slackText(grant.principalId)})` : slackText(grant.principalId);
  const what = `*${slackText(grant.role)}* on \`${grant.target}\``;
  const hours = formatDuration(grant.durationSeconds);
  const reviewer = slackText(grant.reviewer ?? '');
  const comment = grant.comment ? ` ("${slackText(grant.comment)}")` : '';
  const starting = grant.startsAt ? `, starting at ${grant.startsAt}` : '';
  switch (event) {
    case 'review_requested':
      return [
        `:raising_hand: ${who} requests ${what} for ${hours}${starting}.`,
        grant.reason ? `Reason: ${slackText(grant.reason)}` : 'No reason given.',
        ...(grant.attachments?.length ? [`Tickets: ${grant.attachments.map(slackText).join(', ')}`] : []),
        ...(grant.reviewNotices?.length ? [`Who may review: ${slackText(grant.reviewNotices.join(' '))}`] : []),
        `Review: \`access review ${grant.accessRequestId} approve\` (or \`deny\`), request id ${grant.accessRequestId}.`,
      ].join('\n');
    case 'approved':
      return `:white_check_mark: ${who}: ${what} was approved by ${reviewer}${comment}; ${grant.startsAt ? `it starts at ${grant.startsAt}` : 'it is being provisioned'}.`;
    case 'denied':
      return `:no_entry: ${who}: ${what} was denied by ${reviewer}${comment}.`;
    case 'active':
      return `:unlock: ${who}: ${what} is active until ${grant.expiresAt} (grant ${grant.id}).`;
    case 'break_glass':
      return [
        `:rotating_light: ${who} broke the glass: ${what} for ${hours}, active at once without review.`,
        grant.reason ? `Reason: ${slackText(grant.reason)}` : 'No reason given.',
        `Acknowledge: \`access review ${grant.accessRequestId} approve\`; \`deny\` revokes the grant at once (request id ${grant.accessRequestId}).`,
      ].join('\n');
    case 'expiring':
      return `:hourglass_flowing_sand: ${who}: ${what} ends at ${grant.expiresAt}; run \`access ensure\` again to extend it (grant ${grant.id}).`;
  }
}

/**
 * Text others wrote, as mrkdwn that shows it as it is: Slack reads `<...>` as a mention
 * (`<!channel>`, `<@U123>`) or a link whose label hides its address (`<https://evil|docs>`), so
 * `&`, `<` and `>` are escaped as Slack asks; and it stays on one line, so it cannot pass for a
 * line of the service's own.
 */
function slackText(text: string): string {
  return oneLine(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The message's Block Kit blocks: its text, and for a tenant with a Slack app
 * (`notifications.slack`), Approve and Deny buttons on a review request. A button's value names
 * the tenant and the request (`tenant:request`): Slack sends it back when it is clicked, and the
 * tenant's signing secret checks the click.
 */
export function blocksOf(notification: Notification, text: string, tenant: TenantConfig | undefined): unknown[] {
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  const requestId = notification.grant.accessRequestId;
  if (notification.event !== 'review_requested' || !tenant?.notifications.slack || !requestId) return blocks;
  const value = `${tenant.id}:${requestId}`;
  const button = (action: 'approve' | 'deny', label: string, style: 'primary' | 'danger') => ({
    type: 'button',
    action_id: action,
    text: { type: 'plain_text', text: label },
    style,
    value,
  });
  const deny = {
    ...button('deny', 'Deny', 'danger'),
    confirm: {
      title: { type: 'plain_text', text: 'Deny this request?' },
      text: { type: 'plain_text', text: 'The requester gets no access; they may ask again.' },
      confirm: { type: 'plain_text', text: 'Deny' },
      deny: { type: 'plain_text', text: 'Cancel' },
      style: 'danger',
    },
  };
  blocks.push({ type: 'actions', block_id: 'review', elements: [button('approve', 'Approve', 'primary'), deny] });
  return blocks;
}

function formatDuration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

export function createNotifyActivities(config: AppConfig) {
  return {
    async notify(notification: Notification): Promise<void> {
      const tenant = tenantById(config, notification.tenantId);
      const webhooks = (tenant?.notifications.webhooks ?? [])
        .map((w, index) => {
          const hash = createHash('sha256').update(w.url).digest('hex').slice(0, 8);
          return { ...w, hash, name: `webhook #${index + 1} (${hash})` };
        })
        .filter((w) => w.events.includes(notification.event));
      const context = Context.current();
      // Heartbeats from before webhooks were named by hash held their URLs.
      const earlier = new Set<string>((context.info.heartbeatDetails as string[] | undefined) ?? []);
      const delivered = new Set(webhooks.filter((w) => earlier.has(w.hash) || earlier.has(w.url)).map((w) => w.hash));
      const text = messageOf(notification);
      const body = JSON.stringify({ text, blocks: blocksOf(notification, text, tenant) });
      const failures: string[] = [];
      await Promise.all(
        webhooks
          .filter((w) => !delivered.has(w.hash))
          .map(async (w) => {
            try {
              const res = await fetchCapped(w.url, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body,
                signal: context.cancellationSignal,
                timeoutMs: DELIVERY_TIMEOUT_MS,
              });
              if (!res.ok) throw new Error(`HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}`);
              delivered.add(w.hash);
              context.heartbeat([...delivered]);
            } catch (err) {
              failures.push(`${w.name}: ${(err as Error).message}`);
            }
          }),
      );
      if (failures.length > 0) {
        throw ApplicationFailure.retryable(`${notification.event} notification not delivered to ${failures.join('; ')}`, 'NotificationFailed');
      }
    },
  };
}

export type NotifyActivities = ReturnType<typeof createNotifyActivities>;
