// The frame of every console page. Markup is escaped by Preact's renderer; nothing here builds HTML
// from strings. No inline script or style anywhere (the Content-Security-Policy forbids them).
import type { ComponentChildren } from 'preact';
import { renderToString } from 'preact-render-to-string';
import type { ApiProblem } from '../api';

/** htmx without eval, inline styles or scripts in swapped content, and only to this origin. */
const HTMX_CONFIG = JSON.stringify({ includeIndicatorStyles: false, allowEval: false, allowScriptTags: false, selfRequestsOnly: true, historyCacheSize: 0 });

export type Section = 'request' | 'access' | 'review' | 'audit';

export interface Frame {
  /** `/t/{tenant id}`: where the tenant's console lives. */
  base: string;
  tenantName: string;
  who?: { sub: string; email: string | null };
  csrf?: string;
}

const SECTIONS: { id: Section; label: string; path: string }[] = [
  { id: 'request', label: 'Request access', path: '/request' },
  { id: 'access', label: 'My access', path: '/access' },
  { id: 'review', label: 'Review', path: '/review' },
  { id: 'audit', label: 'Audit', path: '/audit' },
];

export function page(frame: Frame, title: string, current: Section | undefined, body: ComponentChildren): string {
  return `<!doctype html>${renderToString(
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="htmx-config" content={HTMX_CONFIG} />
        <title>{`${title} · ${frame.tenantName} · access`}</title>
        <link rel="stylesheet" href="/console/assets/console.css" />
        <script src="/console/assets/htmx.min.js" defer></script>
      </head>
      <body hx-headers={frame.csrf ? JSON.stringify({ 'X-CSRF-Token': frame.csrf }) : undefined}>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <p class="brand">
            access <span class="tenant">{frame.tenantName}</span>
          </p>
          {frame.who && (
            <nav aria-label="Sections">
              <ul>
                {SECTIONS.map((s) => (
                  <li>
                    <a href={`${frame.base}${s.path}`} aria-current={s.id === current ? 'page' : undefined}>
                      {s.label}
                    </a>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          {frame.who && (
            <form method="post" action={`${frame.base}/sign-out`} class="who">
              <span>{frame.who.email ?? frame.who.sub}</span>
              <input type="hidden" name="_csrf" value={frame.csrf} />
              <button type="submit">Sign out</button>
            </form>
          )}
        </header>
        <main id="main" tabIndex={-1}>
          <h1>{title}</h1>
          {body}
        </main>
      </body>
    </html>,
  )}`;
}

/** The API's refusal, in its own words, with the policy notices it gave. */
export function Problem({ problem }: { problem: ApiProblem | undefined }) {
  if (!problem) return null;
  const details = (problem.details ?? {}) as { issues?: { path?: unknown[]; message?: string }[]; changed?: unknown };
  return (
    <div class="problem" role="alert">
      <p>
        <strong>{problem.message}</strong> <code>{problem.code}</code>
      </p>
      {/* What was wrong with the call, field by field, in the API's words. */}
      {Array.isArray(details.issues) && (
        <ul>
          {details.issues.map((issue) => (
            <li>
              {issue.path && issue.path.length > 0 && <code>{issue.path.join('.')}</code>} {issue.message}
            </li>
          ))}
        </ul>
      )}
      {problem.notices && problem.notices.length > 0 && (
        <ul>
          {problem.notices.map((n) => (
            <li>{n}</li>
          ))}
        </ul>
      )}
      {details.changed !== undefined && <p>Some of it took effect before the failure: see My access.</p>}
    </div>
  );
}

export function Notice({ text }: { text: string | undefined }) {
  if (!text) return null;
  return (
    <p class="notice" role="status">
      {text}
    </p>
  );
}

export const accountOf = (target: string): string => target.replace(/^AWS::Account::/, '');

/** "2 h 5 min" */
export function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  if (h && m) return `${h} h ${m} min`;
  if (h) return `${h} h`;
  return `${Math.max(m, seconds > 0 ? 1 : 0)} min`;
}

/** A moment as people read it, in UTC (the page does not know the reader's zone without script). */
export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return null;
  return <time dateTime={iso}>{when(iso)}</time>;
}

/** "42 min left" / "ended" */
export function timeLeft(expiresAt: string | null | undefined, now = Date.now()): string {
  if (!expiresAt) return '';
  const left = Math.floor((Date.parse(expiresAt) - now) / 1000);
  return left > 0 ? `${duration(left)} left` : 'ended';
}
