// Request access: what the person may ask for (the entitlement catalogue), searched; what would
// happen (a dry run of the same ensure call); then the call itself, for several accounts at once.
import { type ApiProblem, type EntitlementList, type Grant, searchOf } from '../api';
import { accountOf, duration, type Frame, Notice, page, Problem } from './layout';

export interface RequestFilters {
  q?: string;
  environment?: string;
  role?: string;
  cursor?: string;
}

/** What the person filled in, kept across a preview or a refusal. */
export interface RequestForm {
  pairs: string[];
  /** An account and role typed in, for what the catalogue does not offer (break-glass is decided only when asked). */
  otherAccount: string;
  otherRole: string;
  reason: string;
  ticket: string;
  durationMinutes: string;
  startsAt: string;
  breakGlass: boolean;
}

export const EMPTY_FORM: RequestForm = { pairs: [], otherAccount: '', otherRole: '', reason: '', ticket: '', durationMinutes: '', startsAt: '', breakGlass: false };

export const pairOf = (target: string, role: string): string => `${accountOf(target)}|${role}`;

export function requestPage(
  frame: Frame,
  view: { filters: RequestFilters; list: EntitlementList; form: RequestForm; preview?: Grant[]; problem?: ApiProblem },
): string {
  const { filters, list, form, preview, problem } = view;
  const selected = new Set(form.pairs);
  const { cursor: _cursor, ...searched } = filters;
  const filterQuery = searchOf({ ...searched });
  return page(
    frame,
    'Request access',
    'request',
    <>
      <form method="get" action={`${frame.base}/request`} class="search" role="search">
        <label>
          Search <input type="search" name="q" value={filters.q} placeholder="account name or id, role" maxLength={100} />
        </label>
        <label>
          Environment <input type="text" name="environment" value={filters.environment} maxLength={64} />
        </label>
        <label>
          Role <input type="text" name="role" value={filters.role} maxLength={32} />
        </label>
        <button type="submit">Search</button>
      </form>

      <Problem problem={problem} />
      {preview && <Preview grants={preview} />}

      <form method="post" action={`${frame.base}/request`} class="ask">
        <input type="hidden" name="_csrf" value={frame.csrf} />
        {Object.entries(filters).map(([name, value]) => value && <input type="hidden" name={`filter_${name}`} value={value} />)}
        {/* Pairs chosen on an earlier page of results stay chosen. */}
        {form.pairs
          .filter((p) => !list.entitlements.some((e) => pairOf(e.target, e.role) === p))
          .map((p) => (
            <input type="hidden" name="pair" value={p} />
          ))}
        <fieldset>
          <legend>What you may ask for</legend>
          {list.entitlements.length === 0 ? (
            <p>Nothing you may ask for matches.</p>
          ) : (
            <div class="scroll" tabIndex={0}>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Ask</th>
                    <th scope="col">Account</th>
                    <th scope="col">Environment</th>
                    <th scope="col">Role</th>
                    <th scope="col">What happens</th>
                    <th scope="col">Duration (default, longest)</th>
                  </tr>
                </thead>
                <tbody>
                  {list.entitlements.map((e) => {
                    const id = `pair-${pairOf(e.target, e.role)}`.replace(/[^\w-]/g, '-');
                    return (
                      <tr>
                        <td>
                          <input type="checkbox" name="pair" value={pairOf(e.target, e.role)} id={id} checked={selected.has(pairOf(e.target, e.role))} />
                        </td>
                        <td>
                          <label for={id}>
                            {e.account.name ?? accountOf(e.target)} <span class="muted">{accountOf(e.target)}</span>
                          </label>
                        </td>
                        <td>{e.account.environment}</td>
                        <td>
                          {e.role}
                          {e.role_description && <span class="muted block">{e.role_description}</span>}
                        </td>
                        <td>
                          {e.action === 'activate' ? 'activate: active at once' : `request: ${e.approvals_required} approval${e.approvals_required === 1 ? '' : 's'} required`}
                          {e.requires.length > 0 && <span class="muted block">needs {e.requires.map((r) => (r === 'reason' ? 'a reason' : 'a ticket')).join(' and ')}</span>}
                        </td>
                        <td>
                          {duration(e.default_duration_seconds)}, {duration(e.max_duration_seconds)}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
          {(filters.cursor || list.next_cursor) && (
            <p class="pages">
              {filters.cursor && <a href={`${frame.base}/request${filterQuery.size ? `?${filterQuery}` : ''}`}>First page</a>}{' '}
              {list.next_cursor && <a href={`${frame.base}/request?${new URLSearchParams({ ...Object.fromEntries(filterQuery), cursor: list.next_cursor })}`}>Next page</a>}
            </p>
          )}
        </fieldset>

        <fieldset>
          <legend>Not in the list</legend>
          <p class="muted">An account and role the list does not offer, for break-glass for instance: policy decides when you send it.</p>
          <div class="field">
            <label for="other-account">Account id</label>
            <input id="other-account" type="text" name="other_account" value={form.otherAccount} pattern="[0-9]{12}" inputMode="numeric" maxLength={12} />
          </div>
          <div class="field">
            <label for="other-role">Role name</label>
            <input id="other-role" type="text" name="other_role" value={form.otherRole} maxLength={32} />
          </div>
        </fieldset>

        <fieldset>
          <legend>Why, and for how long</legend>
          <div class="field">
            <label for="reason">Reason</label>
            <textarea id="reason" name="reason" rows={3} maxLength={4000}>
              {form.reason}
            </textarea>
          </div>
          <div class="field">
            <label for="ticket">Ticket (a link or key)</label>
            <input id="ticket" type="text" name="ticket" value={form.ticket} maxLength={2048} />
          </div>
          <div class="field">
            <label for="duration">Duration in minutes (empty: each role's default)</label>
            <input id="duration" type="number" name="duration_minutes" value={form.durationMinutes} min={1} inputMode="numeric" />
          </div>
          <div class="field">
            <label for="starts-at">Start at (UTC; empty: now)</label>
            <input id="starts-at" type="datetime-local" name="starts_at" value={form.startsAt} />
          </div>
          <label class="block check">
            <input type="checkbox" name="break_glass" value="true" checked={form.breakGlass} /> Break-glass: emergency access now
          </label>
          <p class="muted" id="break-glass-help">
            Where policy allows break-glass, the access is active at once without review, everyone responsible is told, and reviewers then
            acknowledge it or deny it, which ends the access. It needs a reason and cannot start later.
          </p>
        </fieldset>
        <div class="actions">
          <button type="submit" name="action" value="preview">
            Preview
          </button>
          <button type="submit" name="action" value="send" class="primary">
            Send
          </button>
        </div>
      </form>
    </>,
  );
}

function Preview({ grants }: { grants: Grant[] }) {
  return (
    <section class="preview" aria-labelledby="preview-title">
      <h2 id="preview-title">What would happen</h2>
      <ul>
        {grants.map((g) => (
          <li>
            <strong>
              {accountOf(g.target)} · {g.role}
            </strong>
            : {g.change === 'activated' ? 'active at once' : g.change === 'requested' ? 'a request for review' : g.change === 'extended' ? 'your grant extended' : 'no change'}
            {g.duration_seconds !== undefined && `, for ${duration(g.duration_seconds)}`}
            <Diagnostics grant={g} />
          </li>
        ))}
      </ul>
      <Notice text="Nothing was sent: choose Send to ask." />
    </section>
  );
}

export function Diagnostics({ grant }: { grant: Grant }) {
  const shown = grant.diagnostics.filter((d) => d.code !== 'expires');
  if (shown.length === 0) return null;
  return (
    <ul class="diagnostics">
      {shown.map((d) => (
        <li class={d.level}>
          <span class="level">{d.level}</span> {d.message}
          {/* The policy's advice: who reviews, what to attach. */}
          {Array.isArray(d.notices) && d.notices.length > 0 && (
            <ul>
              {(d.notices as unknown[]).map((n) => (
                <li>{String(n)}</li>
              ))}
            </ul>
          )}
        </li>
      ))}
    </ul>
  );
}
