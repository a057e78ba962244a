import { readFile } from 'node:fs/promises';
import type { ConsoleMessage } from '../../src/bot/surfaces/web/index.ts';

/**
 * Talks to the web console's HTTP API as the browser does: state-changing requests carry
 * the console's own Origin, as the page's fetch would.
 */
export class ConsoleClient {
  constructor(
    readonly url: string,
    readonly author = 'Ana',
  ) {}

  /** Headers of every request (a subclass adds its credentials). */
  protected headers(): Record<string, string> {
    return {};
  }

  /** Headers of a POST from the console page. */
  protected postHeaders(): Record<string, string> {
    return { origin: new URL(this.url).origin, ...this.headers() };
  }

  /**
   * Posts a message as the composer does. `fields` adds or overrides form fields, e.g. the
   * browser's time zone (`tz`) or another `channel`.
   */
  async post(
    text: string,
    files: Array<{ name: string; path?: string; content?: Buffer }> = [],
    threadId?: string,
    fields: Record<string, string> = {},
  ) {
    const form = new FormData();
    form.set('channel', 'general');
    form.set('author', this.author);
    form.set('text', text);
    if (threadId) form.set('threadId', threadId);
    for (const [k, v] of Object.entries(fields)) form.set(k, v);
    for (const f of files) {
      const bytes = f.content ?? (await readFile(f.path!));
      form.append('files', new Blob([new Uint8Array(bytes)]), f.name);
    }
    const res = await fetch(`${this.url}/api/console/messages`, {
      method: 'POST',
      body: form,
      headers: this.postHeaders(),
    });
    return {
      status: res.status,
      body: (await res.json()) as { message?: ConsoleMessage; taskId?: string; error?: string },
    };
  }

  async action(body: Record<string, unknown>, author = this.author) {
    const res = await fetch(`${this.url}/api/actions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.postHeaders() },
      body: JSON.stringify({ author, ...body }),
    });
    return { status: res.status, body: (await res.json()) as { ok?: boolean; message?: string; error?: string } };
  }

  async messages(channel = 'general'): Promise<ConsoleMessage[]> {
    const res = await fetch(`${this.url}/api/console/messages?channel=${encodeURIComponent(channel)}`, {
      headers: this.headers(),
    });
    if (res.status !== 200) throw new Error(`GET /api/console/messages answered ${res.status}`);
    return ((await res.json()) as { messages: ConsoleMessage[] }).messages;
  }

  /** A channel's schedules as the Schedules panel gets them: the list and its HTML. */
  async schedules(channel = 'general') {
    const res = await fetch(`${this.url}/api/schedules?channel=${encodeURIComponent(channel)}`, {
      headers: this.headers(),
    });
    return {
      status: res.status,
      body: (await res.json()) as {
        schedules?: { items: Array<{ id: string; status: string; words: string; tz: string; request: string }> };
        html?: string;
        error?: string;
      },
    };
  }

  /** Polls a channel until a message matches, or fails after `timeoutMs`. */
  async waitForMessage(
    match: (m: ConsoleMessage) => boolean,
    timeoutMs = 120_000,
    channel = 'general',
  ): Promise<ConsoleMessage> {
    const deadline = Date.now() + timeoutMs;
    let last: ConsoleMessage[] = [];
    while (Date.now() < deadline) {
      last = await this.messages(channel).catch(() => last);
      const found = last.find(match);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(
      `no matching message in #${channel} within ${timeoutMs} ms; last messages were:\n${last
        .slice(-8)
        .map((m) => m.html ?? m.text)
        .join('\n---\n')}`,
    );
  }

  async thread(threadId: string): Promise<ConsoleMessage[]> {
    return (await this.messages()).filter((m) => m.threadId === threadId);
  }

  /** Polls the thread until a bot card matches, or fails after `timeoutMs`. */
  async waitForCard(threadId: string, match: (html: string) => boolean, timeoutMs = 120_000): Promise<ConsoleMessage> {
    const deadline = Date.now() + timeoutMs;
    let last: ConsoleMessage[] = [];
    while (Date.now() < deadline) {
      try {
        last = await this.thread(threadId);
      } catch {
        // The bot answers 503 while its Redis is down (outage tests): keep waiting.
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      const found = last.find((m) => m.author.bot && m.html && match(m.html));
      if (found) return found;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(
      `no matching card within ${timeoutMs} ms; thread was:\n${last.map((m) => m.html ?? m.text).join('\n---\n')}`,
    );
  }
}

/** The approve/deny data on a plan card. */
export function planButtons(html: string): { taskId: string; planVersion: number; planHash: string } {
  const m = /data-action="approve" data-task="([^"]+)" data-version="(\d+)" data-hash="([0-9a-f]{64})"/.exec(html);
  if (!m) throw new Error(`no Approve button on card: ${html}`);
  return { taskId: m[1]!, planVersion: Number(m[2]), planHash: m[3]! };
}

export function links(html: string): Array<{ name: string; href: string }> {
  return [...html.matchAll(/<a href="([^"]+)" download="([^"]+)">/g)].map((m) => ({
    href: m[1]!.replace(/&amp;/g, '&'),
    name: m[2]!,
  }));
}
