// My access: the person's grants now (active, pending, scheduled) with the time left, kept up to date
// without a reload; the ones that ended; one grant with its diagnostics, to extend, revoke or withdraw.
import type { ApiProblem, Grant, GrantList } from '../api';
import { accountOf, duration, type Frame, Notice, page, Problem, Time, timeLeft } from './layout';
import { Diagnostics } from './request';

/** What "now" lists: held, being provisioned, or waiting (for review or for its start). */
export const CURRENT_STATUSES = ['active', 'provisioning', 'pending'] as const;
const CURRENT = new Set<string>(CURRENT_STATUSES);

/** A pending grant the API says is scheduled (diagnostic `scheduled`) is shown as such. */
export function statusOf(g: Grant): string {
  return g.status === 'pending' && g.diagnostics.some((d) => d.code === 'scheduled') ? 'scheduled' : g.status;
}

export function accessPage(frame: Frame, view: { current: Grant[]; list: GrantList; cursor?: string; notice?: string }): string {
  const { current, list, cursor, notice } = view;
  return page(
    frame,
    'My access',
    'access',
    <>
      <Notice text={notice} />
      <CurrentGrants frame={frame} grants={current} />
      <p>
        <a href={`${frame.base}/review?status=pending&mine=true`}>My requests</a>: what you asked reviewers for, and what they decided.
      </p>
      <section aria-labelledby="history-title">
        <h2 id="history-title">Ended</h2>
        <GrantTable frame={frame} grants={list.grants.filter((g) => !CURRENT.has(g.status))} empty="Nothing has ended on this page." />
        {(cursor || list.next_cursor) && (
          <p class="pages">
            {cursor && <a href={`${frame.base}/access`}>Newest</a>} {list.next_cursor && <a href={`${frame.base}/access?${new URLSearchParams({ cursor: list.next_cursor })}`}>Older</a>}
          </p>
        )}
      </section>
    </>,
  );
}

/** The grants that hold or wait; htmx asks for this part again every few seconds. */
export function CurrentGrants({ frame, grants }: { frame: Frame; grants: Grant[] }) {
  return (
    <section id="current" aria-labelledby="current-title" hx-get={`${frame.base}/access/current`} hx-trigger="every 4s" hx-swap="outerHTML">
      <h2 id="current-title">Now</h2>
      <GrantTable frame={frame} grants={grants} empty="You hold nothing now, and nothing waits." live />
    </section>
  );
}

function GrantTable({ frame, grants, empty, live }: { frame: Frame; grants: Grant[]; empty: string; live?: boolean }) {
  if (grants.length === 0) return <p>{empty}</p>;
  return (
    <div class="scroll" tabIndex={0}>
      <table class="stack">
        <thead>
          <tr>
            <th scope="col">Account</th>
            <th scope="col">Role</th>
            <th scope="col">Status</th>
            <th scope="col">{live ? 'Time left' : 'Ended'}</th>
            <th scope="col">Diagnostics</th>
          </tr>
        </thead>
        <tbody aria-live={live ? 'polite' : undefined}>
          {grants.map((g) => (
            <tr data-grant={g.id}>
              <td data-label="Account">
                <a href={`${frame.base}/access/${g.id}`}>{accountOf(g.target)}</a>
              </td>
              <td data-label="Role">{g.role}</td>
              <td data-label="Status">
                <span class={`status ${statusOf(g)}`}>{statusOf(g)}</span>
              </td>
              <td data-label={live ? 'Time left' : 'Ended'}>{live ? (g.status === 'pending' ? (g.starts_at ? <>starts <Time iso={g.starts_at} /></> : 'awaiting review') : timeLeft(g.expires_at)) : <Time iso={g.expires_at} />}</td>
              <td data-label="Diagnostics">
                <Diagnostics grant={g} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function grantPage(frame: Frame, view: { grant: Grant; problem?: ApiProblem; notice?: string }): string {
  const { grant: g, problem, notice } = view;
  const action = `${frame.base}/access/${g.id}`;
  return page(
    frame,
    `${accountOf(g.target)} · ${g.role}`,
    'access',
    <>
      <Notice text={notice} />
      <Problem problem={problem} />
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <span class={`status ${statusOf(g)}`}>{statusOf(g)}</span>
        </dd>
        <dt>Account</dt>
        <dd>{accountOf(g.target)}</dd>
        <dt>Role</dt>
        <dd>{g.role}</dd>
        {g.activated_at && (
          <>
            <dt>Active since</dt>
            <dd>
              <Time iso={g.activated_at} />
            </dd>
          </>
        )}
        {g.expires_at && (
          <>
            <dt>{CURRENT.has(g.status) ? 'Expires' : 'Ended'}</dt>
            <dd>
              <Time iso={g.expires_at} /> {CURRENT.has(g.status) && `(${timeLeft(g.expires_at)})`}
            </dd>
          </>
        )}
        {g.starts_at && (
          <>
            <dt>Starts</dt>
            <dd>
              <Time iso={g.starts_at} />
            </dd>
          </>
        )}
        {g.duration_seconds !== undefined && (
          <>
            <dt>Duration</dt>
            <dd>{duration(g.duration_seconds)}</dd>
          </>
        )}
        {g.access_request_id && (
          <>
            <dt>Request</dt>
            <dd>
              <a href={`${frame.base}/review/${g.access_request_id}`}>{g.access_request_id}</a>
            </dd>
          </>
        )}
      </dl>
      <Diagnostics grant={g} />
      {CURRENT.has(g.status) && (
        <div class="forms">
          {g.status !== 'pending' && (
            <form method="post" action={`${action}/extend`}>
              <input type="hidden" name="_csrf" value={frame.csrf} />
              <h2>Extend</h2>
              <div class="field">
                <label for="extend-minutes">New duration from now, in minutes</label>
                <input id="extend-minutes" type="number" name="duration_minutes" min={1} required inputMode="numeric" />
              </div>
              <div class="field">
                <label for="extend-reason">Reason</label>
                <textarea id="extend-reason" name="reason" rows={2} maxLength={4000}></textarea>
              </div>
              <div class="field">
                <label for="extend-ticket">Ticket (a link or key)</label>
                <input id="extend-ticket" type="text" name="ticket" maxLength={2048} />
              </div>
              <button type="submit">Extend</button>
            </form>
          )}
          <form method="post" action={`${action}/revoke`}>
            <input type="hidden" name="_csrf" value={frame.csrf} />
            <h2>{g.status === 'pending' ? (g.access_request_id ? 'Withdraw' : 'Cancel') : 'Revoke'}</h2>
            <div class="field">
              <label for="revoke-reason">Reason (optional)</label>
              <textarea id="revoke-reason" name="reason" rows={2} maxLength={4000}></textarea>
            </div>
            <button type="submit" class="danger">
              {g.status === 'pending' ? (g.access_request_id ? 'Withdraw the request' : 'Cancel the scheduled grant') : 'Revoke now'}
            </button>
          </form>
        </div>
      )}
    </>,
  );
}
