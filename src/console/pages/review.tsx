// Review: the requests the person may decide, complete and paged, each with what a reviewer needs
// to decide it; approve or deny with a comment. With htmx the decided request is drawn again in
// place; without it, the form posts and the page comes back.
import type { AccessRequest, ApiProblem, RequestList } from '../api';
import { accountOf, duration, type Frame, Notice, page, Problem, Time } from './layout';
import { Diagnostics } from './request';

export function reviewPage(frame: Frame, view: { list: RequestList; status: string; mine: boolean; cursor?: string; notice?: string; problem?: ApiProblem }): string {
  const { list, status, mine, cursor, notice, problem } = view;
  const waiting = status === 'pending';
  const at = (q: Record<string, string>) => `${frame.base}/review?${new URLSearchParams({ ...q, ...(mine && { mine: 'true' }) })}`;
  return page(
    frame,
    'Review',
    'review',
    <>
      <Notice text={notice} />
      <Problem problem={problem} />
      <nav aria-label="Whose requests" class="tabs">
        <a href={`${frame.base}/review?status=${status}`} aria-current={!mine ? 'page' : undefined}>
          to review
        </a>
        <a href={`${frame.base}/review?status=${status}&mine=true`} aria-current={mine ? 'page' : undefined}>
          my requests
        </a>
      </nav>
      <nav aria-label="Requests by status" class="tabs">
        {['pending', 'approved', 'denied', 'expired', 'withdrawn'].map((s) => (
          <a href={at({ status: s })} aria-current={s === status ? 'page' : undefined}>
            {s}
          </a>
        ))}
      </nav>
      {list.requests.length === 0 ? (
        <p>{mine ? `You have no ${status} requests.` : waiting ? 'Nothing waits for a review you may give.' : `No ${status} requests you may see.`}</p>
      ) : (
        list.requests.map((r) => <RequestCard frame={frame} request={r} />)
      )}
      {(cursor || list.next_cursor) && (
        <p class="pages">
          {cursor && <a href={at({ status })}>First page</a>}{' '}
          {list.next_cursor && <a href={at({ status, cursor: list.next_cursor })}>Next page</a>}
        </p>
      )}
    </>,
  );
}

export function requestPage(frame: Frame, view: { request: AccessRequest; problem?: ApiProblem; notice?: string }): string {
  return page(
    frame,
    'Access request',
    'review',
    <>
      <Notice text={view.notice} />
      <Problem problem={view.problem} />
      <RequestCard frame={frame} request={view.request} />
    </>,
  );
}

const KIND = { access: 'Access request', extension: 'Extension request', break_glass: 'Break-glass' } as const;

export function RequestCard({ frame, request: r, problem }: { frame: Frame; request: AccessRequest; problem?: ApiProblem }) {
  const mine = frame.who?.sub === r.principal_id;
  const titleId = `request-${r.id}`;
  const ticket = r.justification.attachments ?? [];
  return (
    <article class={`request ${r.status}`} aria-labelledby={titleId} id={`card-${r.id}`}>
      <h2 id={titleId}>
        {KIND[r.kind]} for {r.principal_email ?? r.principal_id} <span class={`status ${r.status}`}>{r.status}</span>
      </h2>
      <Problem problem={problem} />
      <dl class="facts">
        <dt>Asked</dt>
        <dd>
          <Time iso={r.created_at} />
          {r.status === 'pending' && r.expires_at && (
            <>
              {' '}
              (lapses <Time iso={r.expires_at} />)
            </>
          )}
        </dd>
        <dt>Reason</dt>
        <dd class="text">{r.justification.reason ?? <span class="muted">none given</span>}</dd>
        <dt>Ticket</dt>
        <dd class="text">{ticket.length ? ticket.join(', ') : <span class="muted">none given</span>}</dd>
        <dt>Approvals</dt>
        <dd>
          {r.approvals.length} of {r.approvals_required}
          {r.approvals.length > 0 && (
            <ul>
              {r.approvals.map((a) => (
                <li>
                  {a.reviewer_id}, <Time iso={a.at} />
                  {a.comment && <span class="text">: {a.comment}</span>}
                </li>
              ))}
            </ul>
          )}
        </dd>
        {r.denial && (
          <>
            <dt>Denied</dt>
            <dd>
              {r.denial.reviewer_id}, <Time iso={r.denial.at} />
              {r.denial.comment && <span class="text">: {r.denial.comment}</span>}
            </dd>
          </>
        )}
      </dl>
      <div class="scroll" tabIndex={0}>
        <table class="stack">
          <caption>What is asked for</caption>
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col">Role</th>
              <th scope="col">Duration</th>
              <th scope="col">Validation and notices</th>
            </tr>
          </thead>
          <tbody>
            {r.grants.map((g) => (
              <tr>
                <td data-label="Account">{accountOf(g.target)}</td>
                <td data-label="Role">{g.role}</td>
                <td data-label="Duration">{g.duration_seconds !== undefined ? duration(g.duration_seconds) : ''}</td>
                <td data-label="Validation">
                  <span class="muted">
                    reason {g.validation.has_reason ? 'given' : 'missing'}, ticket {g.validation.has_ticket_attachment ? 'attached' : 'missing'}
                  </span>
                  <Diagnostics grant={g} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {r.status === 'pending' && !mine && (
        <form method="post" action={`${frame.base}/review/${r.id}`} hx-post={`${frame.base}/review/${r.id}`} hx-target={`#card-${r.id}`} hx-swap="outerHTML" class="decide">
          <input type="hidden" name="_csrf" value={frame.csrf} />
          <div class="field">
            <label for={`comment-${r.id}`}>Comment</label>
            <textarea id={`comment-${r.id}`} name="comment" rows={2} maxLength={4000}></textarea>
          </div>
          <div class="actions">
            <button type="submit" name="decision" value="approve" class="primary">
              Approve
            </button>
            <button type="submit" name="decision" value="deny" class="danger">
              Deny
            </button>
          </div>
        </form>
      )}
      {r.status === 'pending' && r.kind === 'break_glass' && !mine && <p class="muted">The access is already active: Approve acknowledges it; Deny revokes it at once.</p>}
      {r.status === 'pending' && mine && <p class="muted">Your own request: others review it.</p>}
    </article>
  );
}
