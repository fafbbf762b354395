// A person's browser at the dev identity provider's pages, as far as signing in goes: it keeps
// cookies, follows redirects, and submits each page's form (typing a login name where asked).
// Enough for oidc-provider's development pages; the console's tests use real Chromium.

export interface Page {
  url: URL;
  status: number;
  body: string;
}

/** `&amp;` and the like, as the provider's templates write them in attribute values. */
function attribute(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#\d+|amp|quot|lt|gt|apos);/gi, (_all, name: string) => {
    const lower = name.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(Number(lower.slice(1)));
    return ({ amp: '&', quot: '"', lt: '<', gt: '>', apos: "'" } as Record<string, string>)[lower];
  });
}

export class SignInBrowser {
  private readonly cookies = new Map<string, string>();

  /**
   * Opens `start` and goes on until a page with no form, or until a redirect to an address
   * `stopAt` accepts (not followed: returned, for the test to deliver, maybe altered).
   */
  async signIn(start: string, login: string, stopAt?: (url: URL) => boolean): Promise<Page> {
    let request: { url: URL; body?: URLSearchParams } = { url: new URL(start) };
    for (let hop = 0; hop < 30; hop++) {
      if (stopAt?.(request.url)) return { url: request.url, status: 0, body: '' };
      const res = await this.fetch(request.url, request.body);
      if (res.status >= 300 && res.status < 400) {
        request = { url: new URL(res.headers.get('location')!, request.url) };
        continue;
      }
      const body = await res.text();
      const form = /<form\b[^>]*\baction="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(body);
      if (!form) return { url: request.url, status: res.status, body };
      const fields = new URLSearchParams();
      for (const input of form[2].matchAll(/<input\b([^>]*)>/gi)) {
        const name = /\bname="([^"]*)"/.exec(input[1])?.[1];
        if (!name) continue;
        const value = /\bvalue="([^"]*)"/.exec(input[1])?.[1];
        fields.set(name, name === 'login' ? login : name === 'password' ? 'any' : attribute(value ?? ''));
      }
      request = { url: new URL(attribute(form[1]), request.url), body: fields };
    }
    throw new Error(`no end to the sign-in from ${start}`);
  }

  /** One request with this browser's cookies; redirects are the caller's to follow. */
  async fetch(url: URL, body?: URLSearchParams): Promise<Response> {
    const res = await fetch(url, {
      method: body ? 'POST' : 'GET',
      body,
      redirect: 'manual',
      headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const cookie of res.headers.getSetCookie()) {
      const [pair, ...attributes] = cookie.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]) < Date.now()));
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(at + 1).trim());
    }
    return res;
  }
}
