// Notifications: Slack-compatible JSON ({text, blocks}) POSTed to the tenant's webhooks that
// subscribe to the event. The URLs are read from config at send time; the workflow only says what
// happened. Temporal retries a failed delivery; webhooks already reached in an earlier attempt
// are remembered in the heartbeat details and skipped.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { tenantById, type AppConfig } from '../config';
import type { NotificationEvent } from '../domain/grant';

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
  const who = grant.principalEmail ? `${grant.principalEmail} (${grant.principalId})` : grant.principalId;
  const what = `*${grant.role}* on \`${grant.target}\``;
  const hours = formatDuration(grant.durationSeconds);
  switch (event) {
    case 'review_requested':
      return [
        `:raising_hand: ${who} requests ${what} for ${hours}.`,
        grant.reason ? `Reason: ${grant.reason}` : 'No reason given.',
        ...(grant.attachments?.length ? [`Tickets: ${grant.attachments.join(', ')}`] : []),
        ...(grant.reviewNotices?.length ? [`Who may review: ${grant.reviewNotices.join(' ')}`] : []),
        `Review: \`access review ${grant.accessRequestId} approve\` (or \`deny\`), request id ${grant.accessRequestId}.`,
      ].join('\n');
    case 'approved':
      return `:white_check_mark: ${who}: ${what} was approved by ${grant.reviewer}${grant.comment ? ` ("${grant.comment}")` : ''}; it is being provisioned.`;
    case 'denied':
      return `:no_entry: ${who}: ${what} was denied by ${grant.reviewer}${grant.comment ? ` ("${grant.comment}")` : ''}.`;
    case 'active':
      return `:unlock: ${who}: ${what} is active until ${grant.expiresAt} (grant ${grant.id}).`;
    case 'expiring':
      return `:hourglass_flowing_sand: ${who}: ${what} ends at ${grant.expiresAt}; run \`access ensure\` again to extend it (grant ${grant.id}).`;
  }
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
      const urls = (tenant?.notifications.webhooks ?? []).filter((w) => w.events.includes(notification.event)).map((w) => w.url);
      const context = Context.current();
      const delivered = new Set<string>((context.info.heartbeatDetails as string[] | undefined) ?? []);
      const text = messageOf(notification);
      const body = JSON.stringify({ text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
      const failures: string[] = [];
      await Promise.all(
        urls
          .filter((url) => !delivered.has(url))
          .map(async (url) => {
            try {
              const res = await fetch(url, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body,
                signal: AbortSignal.any([context.cancellationSignal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]),
              });
              await res.arrayBuffer();
              if (!res.ok) throw new Error(`HTTP ${res.status}`);
              delivered.add(url);
              context.heartbeat([...delivered]);
            } catch (err) {
              // The URL's origin only: a webhook URL's path is its secret.
              failures.push(`${new URL(url).origin}: ${(err as Error).message}`);
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
