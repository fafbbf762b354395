// Audit: who held an account, when (the report, also as CSV), and the events behind it, for those
// the audit policies allow; anyone else sees the API's refusal.
import { type ApiProblem, type AuditPage, type Report, searchOf } from '../api';
import { accountOf, type Frame, page, Problem, Time } from './layout';

export interface ReportQuery {
  target?: string;
  role?: string;
  from?: string;
  to?: string;
}

export interface EventQuery {
  principal?: string;
  target?: string;
  role?: string;
  from?: string;
  to?: string;
  cursor?: string;
}

const query = (q: ReportQuery | EventQuery | Record<string, string | undefined>): string => searchOf({ ...q }).toString();

export function auditPage(
  frame: Frame,
  view: { report?: { query: ReportQuery; result?: Report; problem?: ApiProblem }; events?: { query: EventQuery; result?: AuditPage; problem?: ApiProblem } },
): string {
  const rq = view.report?.query ?? {};
  const eq = view.events?.query ?? {};
  return page(
    frame,
    'Audit',
    'audit',
    <>
      <section aria-labelledby="report-title">
        <h2 id="report-title">Who held an account</h2>
        <form method="get" action={`${frame.base}/audit`} class="search">
          <input type="hidden" name="view" value="report" />
          <label>
            Account id <input type="text" name="target" value={rq.target} required pattern="[0-9]{12}" inputMode="numeric" />
          </label>
          <label>
            Role <input type="text" name="role" value={rq.role} maxLength={32} />
          </label>
          <label>
            From <input type="date" name="from" value={rq.from} required />
          </label>
          <label>
            To <input type="date" name="to" value={rq.to} required />
          </label>
          <button type="submit">Show</button>
        </form>
        <Problem problem={view.report?.problem} />
        {view.report?.result && (
          <>
            <p>
              <a href={`${frame.base}/audit/report.csv?${query(rq)}`} download>
                Download as CSV
              </a>
            </p>
            {view.report.result.intervals.length === 0 ? (
              <p>Nobody held it then.</p>
            ) : (
              <div class="scroll" tabIndex={0}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Who</th>
                      <th scope="col">Role</th>
                      <th scope="col">From</th>
                      <th scope="col">To</th>
                      <th scope="col">Ended</th>
                      <th scope="col">Approved by</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Events</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.report.result.intervals.map((i) => (
                      <tr>
                        <td>{i.principal_email ?? i.principal_id}</td>
                        <td>{i.role}</td>
                        <td>
                          <Time iso={i.from} />
                        </td>
                        <td>{i.to ? <Time iso={i.to} /> : 'still held'}</td>
                        <td>{i.ended.replace('_', ' ')}</td>
                        <td>{i.approved_by.join(', ')}</td>
                        <td class="text">{i.reason}</td>
                        <td>
                          <a href={`${frame.base}/audit?${query({ view: 'events', principal: i.principal_id, target: accountOf(i.target), role: i.role, from: rq.from, to: rq.to })}`}>events</a>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </>
        )}
      </section>

      <section aria-labelledby="events-title">
        <h2 id="events-title">Events</h2>
        <form method="get" action={`${frame.base}/audit`} class="search">
          <input type="hidden" name="view" value="events" />
          <label>
            Person (principal id) <input type="text" name="principal" value={eq.principal} maxLength={256} />
          </label>
          <label>
            Account id <input type="text" name="target" value={eq.target} pattern="[0-9]{12}" inputMode="numeric" />
          </label>
          <label>
            From <input type="date" name="from" value={eq.from} />
          </label>
          <label>
            To <input type="date" name="to" value={eq.to} />
          </label>
          <button type="submit">Show</button>
        </form>
        <Problem problem={view.events?.problem} />
        {view.events?.result &&
          (view.events.result.events.length === 0 ? (
            <p>No events.</p>
          ) : (
            <>
              <div class="scroll" tabIndex={0}>
                <table>
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Event</th>
                      <th scope="col">By</th>
                      <th scope="col">Whose</th>
                      <th scope="col">Account</th>
                      <th scope="col">Role</th>
                      <th scope="col">Grant</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.events.result.events.map((e) => (
                      <tr>
                        <td>
                          <Time iso={e.at} />
                        </td>
                        <td>{e.event}</td>
                        <td>
                          {e.actor.type} {e.actor.id}
                        </td>
                        <td>{e.principal.email ?? e.principal.id}</td>
                        <td>{accountOf(e.target)}</td>
                        <td>{e.role}</td>
                        <td class="muted">{e.grant_id}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {view.events.result.next_cursor && (
                <p class="pages">
                  <a href={`${frame.base}/audit?${query({ view: 'events', ...eq, cursor: view.events.result.next_cursor })}`}>Older</a>
                </p>
              )}
            </>
          ))}
      </section>
    </>,
  );
}
