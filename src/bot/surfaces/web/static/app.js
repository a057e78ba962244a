// Handoff web console: a chat channel in the browser.
// Plain module, no build step and nothing loaded from elsewhere, so the console works on
// an air-gapped deployment. Person text is only ever set with textContent; the one HTML
// we insert is a bot card's `html`, which the server renders and escapes.

const NAME_KEY = 'handoff.name';
const CHANNEL_PATTERN = /^[a-z0-9-]{1,40}$/;
const STATUS_CLASSES = ['status-pending', 'status-running', 'status-done', 'status-failed'];
const NEAR_BOTTOM_PX = 120;

const state = {
  session: null,
  channel: 'general',
  /** @type {Map<string, any>} every message by id, roots and replies */
  messages: new Map(),
  openThreadId: null,
  name: '',
};

const $ = (id) => document.getElementById(id);

/** The channel named in the address (`/?channel=…`), if it is one the console accepts. */
function channelFromUrl() {
  const c = new URLSearchParams(location.search).get('channel');
  return c && CHANNEL_PATTERN.test(c) ? c : null;
}

/** The browser's IANA time zone: a schedule without a zone of its own runs in it. */
function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}

/**
 * A person's own channel for what Handoff tells them alone (the console has no direct
 * messages). The same rule as the server's `noticesChannelFor` (web-surface.ts): change both.
 */
function noticesChannelFor(personId) {
  const id = personId.replace(/^web:/, '');
  const slug = id
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (slug.length > 0 && slug === id && slug.length <= 37) return `dm-${slug}`;
  const head = slug.slice(0, 28).replace(/-+$/, '');
  let h = 0x811c9dc5;
  for (let i = 0; i < personId.length; i++) {
    h ^= personId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `dm-${head ? `${head}-` : ''}${h.toString(16).padStart(8, '0')}`;
}

/** The id the server gives this person: from sign-in, or from the typed name. */
function myPersonId() {
  if (signedInConsole()) return state.session?.user?.id || '';
  return state.name ? `web:${state.name.toLowerCase()}` : '';
}

// ---------------------------------------------------------------------------
// Small helpers

function formatBytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A limit reads exactly when it is small ("2000 bytes"), else rounded ("25 MB"). */
function formatLimit(n) {
  return n < 10 * 1024 ? `${n} bytes` : formatBytes(n);
}

function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })}, ${time}`;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'className') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function initials(name) {
  const parts = String(name || '?')
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
  return s.toUpperCase();
}

function avatarHue(name) {
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function avatar(author, small = false) {
  const a = el('span', {
    className: `avatar${small ? ' avatar-small' : ''}${author.bot ? ' avatar-bot' : ''}`,
    'aria-hidden': 'true',
  });
  a.textContent = author.bot ? 'H' : initials(author.name);
  if (!author.bot) a.style.setProperty('--hue', String(avatarHue(author.name)));
  return a;
}

/** Person text as DOM nodes: plain text with @mentions highlighted; never parsed as HTML. */
function personText(text) {
  const frag = document.createDocumentFragment();
  const re = /(^|[\s(])(@[A-Za-z0-9_.-]+)/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const start = m.index + m[1].length;
    frag.append(text.slice(last, start));
    frag.append(el('span', { className: 'mention', text: m[2] }));
    last = start + m[2].length;
  }
  frag.append(text.slice(last));
  return frag;
}

function isRoot(m) {
  return m.threadId === m.id;
}

function sortedMessages(filter) {
  return [...state.messages.values()].filter(filter).sort((a, b) => {
    const t = Date.parse(a.ts) - Date.parse(b.ts);
    return t !== 0 ? t : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

/** Replies per root, rebuilt lazily after any change (renders ask for it once per root). */
let repliesIndex = null;

function repliesOf(rootId) {
  if (!repliesIndex) {
    repliesIndex = new Map();
    for (const m of sortedMessages((x) => !isRoot(x))) {
      const list = repliesIndex.get(m.threadId);
      if (list) list.push(m);
      else repliesIndex.set(m.threadId, [m]);
    }
  }
  return repliesIndex.get(rootId) || [];
}

/**
 * A one-line summary of a bot message for the root's thread line in the channel:
 * the card's heading plus its decision (or "awaiting approval"), and a status kind for the dot.
 */
function cardStatus(m) {
  if (!m) return null;
  const clip = (t) => {
    const one = t.replace(/\s+/g, ' ').trim();
    return one.length > 90 ? `${one.slice(0, 89)}…` : one;
  };
  if (!m.html) return { kind: null, label: clip(m.text || '') };
  const tpl = document.createElement('template');
  tpl.innerHTML = m.html;
  const root = tpl.content;
  const card = root.querySelector('.card') || root.firstElementChild;
  const has = (sel) => root.querySelector(sel) !== null;
  let kind = card ? STATUS_CLASSES.find((c) => card.classList.contains(c))?.slice('status-'.length) : undefined;
  if (!kind) {
    if (has('[data-action="approve"]:not([disabled])')) kind = 'pending';
    else if (has('.status-running')) kind = 'running';
    else if (has('.status-failed')) kind = 'failed';
    else if (has('.decision-approved')) kind = 'running';
    else if (has('.decision-denied, .decision-cancelled')) kind = 'failed';
  }
  const heading = root.querySelector('h3')?.textContent || '';
  const decision = root.querySelector('.decision');
  if (decision) for (const t of decision.querySelectorAll('time')) t.remove();
  const parts = [heading];
  if (decision) parts.push(decision.textContent.replace(/[\s·]+$/, ''));
  else if (has('[data-action="approve"]')) parts.push('awaiting approval');
  const label = parts.filter((p) => p.trim()).join(' · ') || root.textContent || '';
  return { kind: kind ?? null, label: clip(label) };
}

// ---------------------------------------------------------------------------
// HTTP

class RequestError extends Error {
  constructor(message, { status = 0, unavailable = false } = {}) {
    super(message);
    this.name = 'RequestError';
    this.status = status;
    this.unavailable = unavailable;
  }
  /** What the person sees. */
  get display() {
    return this.unavailable ? `Handoff is unavailable right now: ${this.message}` : this.message;
  }
}

async function request(url, init) {
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin', ...init });
  } catch (err) {
    throw new RequestError(err instanceof Error ? err.message : String(err), { unavailable: true });
  }
  let body = null;
  const type = res.headers.get('content-type') || '';
  try {
    body = type.includes('application/json') ? await res.json() : await res.text();
  } catch {
    body = null;
  }
  if (res.status === 401 && signedInConsole()) showSignIn();
  if (!res.ok) {
    const message =
      (body && typeof body === 'object' && typeof body.error === 'string' && body.error) ||
      (typeof body === 'string' && body.trim().slice(0, 300)) ||
      `${res.status} ${res.statusText}`.trim();
    throw new RequestError(message, { status: res.status, unavailable: res.status === 503 || res.status === 502 });
  }
  return body;
}

function showUnavailable(err) {
  const banner = $('unavailable-banner');
  if (!err) {
    banner.hidden = true;
    banner.textContent = '';
    return;
  }
  banner.textContent = err.display ?? `Handoff is unavailable right now: ${err.message}`;
  banner.hidden = false;
}

// ---------------------------------------------------------------------------
// Rendering

/** One message as a list item. `context` is 'channel' | 'thread-root' | 'thread'. */
function renderMessage(m, context) {
  const li = el('li', {
    className: `message${m.author.bot ? ' from-bot' : ''}`,
    id: `${context}-msg-${m.id}`,
    dataset: { id: m.id, thread: m.threadId },
  });
  const body = el('div', { className: 'message-body' });
  const head = el(
    'div',
    { className: 'message-head' },
    el('span', { className: 'author', text: m.author.name }),
    m.author.bot ? el('span', { className: 'app-tag', text: 'APP' }) : null,
    el('time', {
      className: 'ts muted',
      datetime: m.ts,
      title: new Date(m.ts).toLocaleString(),
      text: formatTime(m.ts),
    }),
    m.editedTs
      ? el('span', {
          className: 'edited muted',
          title: `Edited ${new Date(m.editedTs).toLocaleString()}`,
          text: '(edited)',
        })
      : null,
  );
  body.append(head);

  if (typeof m.text === 'string' && m.text.length > 0) {
    const p = el('div', { className: 'message-text' });
    p.append(personText(m.text));
    body.append(p);
  }
  if (typeof m.html === 'string' && m.html.length > 0) {
    const card = el('div', { className: 'message-html' });
    // Server-rendered and escaped bot card (see the console contract).
    card.innerHTML = m.html;
    // Download links save the file; any other link opens beside the console instead of replacing it.
    for (const a of card.querySelectorAll('a[href]:not([download]):not([target])')) {
      a.setAttribute('target', '_blank');
      a.setAttribute('rel', 'noopener');
    }
    body.append(card);
  }
  if (Array.isArray(m.files) && m.files.length > 0) {
    const ul = el('ul', { className: 'attachments', 'aria-label': 'Attached files' });
    for (const f of m.files) {
      ul.append(
        el(
          'li',
          { className: 'attachment' },
          el('span', { className: 'file-icon', 'aria-hidden': 'true', text: fileBadge(f.name) }),
          el('span', { className: 'file-name', text: f.name }),
          el('span', { className: 'file-size muted', text: formatBytes(f.size) }),
        ),
      );
    }
    body.append(ul);
  }

  if (context === 'channel') {
    const replies = repliesOf(m.id);
    const footer = el('div', { className: 'thread-summary' });
    if (replies.length > 0) {
      const latestBot = [...replies].reverse().find((r) => r.author.bot);
      const status = cardStatus(latestBot);
      const btn = el('button', {
        type: 'button',
        className: 'replies-button',
        dataset: { openThread: m.id },
        text: `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'}`,
      });
      footer.append(btn);
      if (status?.label) {
        footer.append(
          el(
            'span',
            { className: `thread-status${status.kind ? ` is-${status.kind}` : ''}`, title: status.label },
            el('span', { className: 'status-dot', 'aria-hidden': 'true' }),
            el('span', { className: 'thread-status-text', text: status.label }),
          ),
        );
      }
    }
    body.append(footer);
    const hover = el(
      'div',
      { className: 'message-actions' },
      el('button', {
        type: 'button',
        className: 'reply-in-thread',
        dataset: { openThread: m.id },
        text: 'Reply in thread',
      }),
    );
    li.append(hover);
  }

  li.prepend(avatar(m.author));
  li.append(body);
  return li;
}

function fileBadge(name) {
  const ext = String(name).split('.').pop() || '';
  return ext.slice(0, 4).toUpperCase() || 'FILE';
}

/** Keyed update of a list: keep nodes whose message did not change, so focus and notices survive. */
function syncList(listEl, messages, context) {
  const wanted = new Set(messages.map((m) => m.id));
  for (const child of [...listEl.children]) {
    if (!wanted.has(child.dataset.id)) child.remove();
  }
  let prev = null;
  for (const m of messages) {
    const key = renderKey(m, context);
    let node = listEl.querySelector(`:scope > li[data-id="${CSS.escape(m.id)}"]`);
    if (!node || node.dataset.key !== key) {
      const fresh = renderMessage(m, context);
      fresh.dataset.key = key;
      if (node) node.replaceWith(fresh);
      node = fresh;
    }
    const expectedPos = prev ? prev.nextElementSibling : listEl.firstElementChild;
    if (expectedPos !== node) {
      if (prev) prev.after(node);
      else listEl.prepend(node);
    }
    prev = node;
  }
}

function renderKey(m, context) {
  let key = `${m.ts}|${m.editedTs || ''}|${m.text ?? ''}|${m.html ?? ''}|${(m.files || []).length}`;
  if (context === 'channel') {
    const replies = repliesOf(m.id);
    const latestBot = [...replies].reverse().find((r) => r.author.bot);
    key += `|${replies.length}|${latestBot ? `${latestBot.id}:${latestBot.editedTs || latestBot.ts}:${latestBot.html?.length ?? 0}` : ''}`;
  }
  return key;
}

function isNearBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
}

/** Whether each scroller was at the bottom before the last change, so it keeps following new messages. */
const following = new WeakMap();

function followBottom(scroller) {
  following.set(scroller, true);
  scroller.addEventListener('scroll', () => following.set(scroller, isNearBottom(scroller)), { passive: true });
  // The list shrinks when the composer grows (chips, errors, longer text): stay at the bottom if we were there.
  new ResizeObserver(() => {
    if (following.get(scroller)) scrollToBottom(scroller);
  }).observe(scroller);
}

function scrollToBottom(scroller) {
  scroller.scrollTop = scroller.scrollHeight;
}

function renderChannel({ forceScroll = false } = {}) {
  const scroller = $('channel-messages');
  const stick = forceScroll || following.get(scroller) !== false;
  const roots = sortedMessages((m) => isRoot(m) && m.channel === state.channel);
  syncList($('channel-list'), roots, 'channel');
  for (const li of $('channel-list').children)
    li.classList.toggle('is-open-thread', li.dataset.id === state.openThreadId);
  $('channel-empty').hidden = roots.length > 0;
  if (stick) scrollToBottom(scroller);
}

function renderThread({ forceScroll = false } = {}) {
  const panel = $('thread');
  const id = state.openThreadId;
  const root = id ? state.messages.get(id) : null;
  if (!id) {
    panel.hidden = true;
    document.body.classList.remove('thread-open');
    return;
  }
  panel.hidden = false;
  document.body.classList.add('thread-open');
  const scroller = $('thread-messages');
  const stick = forceScroll || following.get(scroller) !== false;
  const rootBox = $('thread-root');
  if (!root) {
    rootBox.replaceChildren(el('p', { className: 'muted', text: 'Loading thread…' }));
  } else {
    const key = renderKey(root, 'thread-root');
    const existing = rootBox.firstElementChild;
    if (!existing || existing.dataset.id !== root.id || existing.dataset.key !== key) {
      const ol = el('ol', { className: 'message-list' });
      const li = renderMessage(root, 'thread-root');
      li.dataset.key = key;
      ol.append(li);
      ol.dataset.id = root.id;
      ol.dataset.key = key;
      rootBox.replaceChildren(ol);
    }
  }
  const replies = id ? repliesOf(id) : [];
  const divider = $('thread-divider');
  divider.hidden = replies.length === 0;
  divider.firstElementChild.textContent = `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'}`;
  syncList($('thread-list'), replies, 'thread');
  if (stick) scrollToBottom(scroller);
}

function render(opts = {}) {
  renderChannel(opts);
  renderThread(opts);
}

// ---------------------------------------------------------------------------
// Messages: load, merge, live updates

function upsert(m) {
  if (!m || typeof m.id !== 'string' || !m.author) return false;
  if (m.channel && m.channel !== state.channel) return false;
  const prev = state.messages.get(m.id);
  if (prev) {
    // A stale copy (e.g. a catch-up fetch racing a live edit) never overwrites a newer one.
    const prevT = Date.parse(prev.editedTs || prev.ts) || 0;
    const nextT = Date.parse(m.editedTs || m.ts) || 0;
    if (nextT < prevT) return false;
  }
  state.messages.set(m.id, m);
  repliesIndex = null;
  return true;
}

async function loadMessages() {
  const body = await request(`/api/console/messages?channel=${encodeURIComponent(state.channel)}`);
  const list = Array.isArray(body?.messages) ? body.messages : [];
  for (const m of list) upsert(m);
  render();
}

let events = null;
let reconnectTimer = null;
/** Set when the last load failed or the stream dropped, so the next open catches up. */
let needsCatchUp = false;

function setConnection(status, text) {
  const c = $('connection');
  c.dataset.status = status;
  c.querySelector('.connection-text').textContent = text;
}

function connectEvents() {
  clearTimeout(reconnectTimer);
  if (events) events.close();
  events = new EventSource(`/api/events?channel=${encodeURIComponent(state.channel)}`);
  events.addEventListener('open', () => {
    setConnection('online', 'Connected');
    showUnavailable(null);
    // After a reconnect, catch up on whatever was posted while we were away.
    if (needsCatchUp) {
      needsCatchUp = false;
      const catchUp = state.session ? loadMessages() : loadSession().then(loadMessages);
      catchUp.catch((err) => {
        needsCatchUp = true;
        showUnavailable(err);
      });
    }
  });
  events.addEventListener('message', (ev) => {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    onIncoming(m);
  });
  events.addEventListener('error', () => {
    needsCatchUp = true;
    if (events.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. a non-200 answer): retry ourselves.
      setConnection('offline', 'Disconnected — retrying…');
      reconnectTimer = setTimeout(connectEvents, 3000);
    } else {
      setConnection('offline', 'Reconnecting…');
    }
  });
}

function onIncoming(m) {
  channelComposer?.noticeOwn(m);
  threadComposer?.noticeOwn(m);
  if (upsert(m)) render();
  // A plan approved, a brief posted or a schedule paused: the open Schedules panel follows.
  if (m?.author?.bot && !$('schedules-panel').hidden) refreshSchedulesSoon();
  // A Connect card that now says "Connected": the open Connections panel follows.
  if (m?.author?.bot && !$('connections-panel').hidden && m.html?.includes('card connect')) refreshConnectionsSoon();
}

// ---------------------------------------------------------------------------
// Threads

function openThread(id, { focus = false } = {}) {
  const changed = state.openThreadId !== id;
  state.openThreadId = id;
  if (changed) {
    $('thread-list').replaceChildren();
    $('thread-root').replaceChildren();
    threadComposer.reset();
  }
  history.replaceState(null, '', `${location.pathname}${location.search}#thread=${encodeURIComponent(id)}`);
  renderThread({ forceScroll: true });
  renderChannel();
  if (focus) $('thread-text').focus();
}

function closeThread() {
  const id = state.openThreadId;
  state.openThreadId = null;
  history.replaceState(null, '', `${location.pathname}${location.search}`);
  renderThread();
  renderChannel();
  const back = id && $('channel-list').querySelector(`li[data-id="${CSS.escape(id)}"] [data-open-thread]`);
  if (back) back.focus();
}

// ---------------------------------------------------------------------------
// Composer (the channel's and the thread's)

class Composer {
  constructor(form, { threadId }) {
    this.form = form;
    this.threadIdFn = threadId;
    this.textarea = form.querySelector('textarea');
    this.fileInput = form.querySelector('input[type=file]');
    this.chips = form.querySelector('.chips');
    this.error = form.querySelector('.composer-error');
    this.sendButton = form.querySelector('.send-button');
    /** Files go with new requests only: the server refuses them on thread replies. */
    this.acceptsFiles = Boolean(this.fileInput);
    /** @type {File[]} */
    this.files = [];
    this.sending = false;
    /** What is being sent: cleared from the composer once the server has it. */
    this.inFlight = null;

    this.textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        this.send();
      }
    });
    this.textarea.addEventListener('input', () => this.autosize());
    this.textarea.addEventListener('paste', (e) => {
      const files = e.clipboardData?.files;
      if (this.acceptsFiles && files && files.length > 0) {
        e.preventDefault();
        this.addFiles(files);
      }
    });
    this.fileInput?.addEventListener('change', () => {
      this.addFiles(this.fileInput.files);
      this.fileInput.value = '';
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    this.chips.addEventListener('click', (e) => {
      const btn = e.target.closest('button[data-remove]');
      if (!btn) return;
      const index = Number(btn.dataset.remove);
      this.files.splice(index, 1);
      this.renderChips();
      this.textarea.focus();
    });
  }

  autosize() {
    this.textarea.style.height = 'auto';
    this.textarea.style.height = `${Math.min(this.textarea.scrollHeight, 240)}px`;
  }

  setError(message) {
    this.error.textContent = message || '';
    this.form.classList.toggle('has-error', Boolean(message));
  }

  addFiles(list) {
    const session = state.session;
    const maxBytes = session?.maxUploadBytes ?? Number.POSITIVE_INFINITY;
    const maxFiles = session?.maxFiles ?? Number.POSITIVE_INFINITY;
    const problems = [];
    for (const f of Array.from(list || [])) {
      if (this.files.some((g) => g.name === f.name && g.size === f.size && g.lastModified === f.lastModified)) continue;
      if (f.size > maxBytes) {
        problems.push(
          `${f.name} is ${formatBytes(f.size)}: too large to attach. Files can be at most ${formatLimit(maxBytes)}.`,
        );
        continue;
      }
      if (this.files.length >= maxFiles) {
        problems.push(
          maxFiles === 0
            ? 'This Handoff does not accept file uploads.'
            : `You can attach at most ${maxFiles} ${maxFiles === 1 ? 'file' : 'files'} per message; ${f.name} was not added.`,
        );
        continue;
      }
      this.files.push(f);
    }
    this.renderChips();
    this.setError(problems.join(' '));
  }

  renderChips() {
    this.chips.replaceChildren(
      ...this.files.map((f, i) =>
        el(
          'li',
          { className: 'chip' },
          el('span', { className: 'file-icon', 'aria-hidden': 'true', text: fileBadge(f.name) }),
          el('span', { className: 'chip-name', text: f.name }),
          el('span', { className: 'chip-size muted', text: formatBytes(f.size) }),
          el(
            'button',
            {
              type: 'button',
              className: 'chip-remove',
              dataset: { remove: String(i) },
              'aria-label': `Remove ${f.name}`,
              title: 'Remove',
            },
            '×',
          ),
        ),
      ),
    );
    this.chips.hidden = this.files.length === 0;
  }

  /** The server has the message (its answer came, or the message itself arrived live first): clear what was sent. */
  settleSent() {
    const sent = this.inFlight;
    if (!sent || sent.settled) return;
    sent.settled = true;
    this.textarea.value = '';
    this.files = this.files.filter((f) => !sent.files.includes(f));
    this.renderChips();
    this.autosize();
  }

  /** A live message that is the one being sent: it is stored, so the composer clears at once. */
  noticeOwn(m) {
    const sent = this.inFlight;
    if (!sent || m.author?.bot || m.author?.name !== state.name || m.text !== sent.text) return;
    const sameThread = sent.threadId ? m.threadId === sent.threadId && m.id !== m.threadId : m.id === m.threadId;
    if (sameThread) this.settleSent();
  }

  reset() {
    this.textarea.value = '';
    this.files = [];
    this.renderChips();
    this.setError('');
    this.autosize();
  }

  async send() {
    if (this.sending) return;
    if (!state.name) {
      needIdentity();
      return;
    }
    const text = this.textarea.value;
    if (text.trim() === '' && this.files.length === 0) {
      this.setError('Your message is empty: write something (or attach a file) before sending.');
      this.textarea.focus();
      return;
    }
    const threadId = this.threadIdFn();
    const sentFiles = [...this.files];
    const fd = new FormData();
    fd.set('channel', state.channel);
    fd.set('author', state.name);
    fd.set('text', text);
    const tz = browserZone();
    if (tz) fd.set('tz', tz);
    if (threadId) fd.set('threadId', threadId);
    for (const f of sentFiles) fd.append('files', f, f.name);

    this.sending = true;
    this.form.setAttribute('aria-busy', 'true');
    this.sendButton.disabled = true;
    // The text is frozen while it travels; files can still be added and are kept for the next message.
    this.textarea.readOnly = true;
    this.setError('');
    this.inFlight = { text, files: sentFiles, threadId, settled: false };
    try {
      const body = await request('/api/console/messages', { method: 'POST', body: fd });
      const m = body?.message;
      // Only now is it safe to clear: the server has the message and the files.
      this.settleSent();
      if (m) {
        upsert(m);
        render({ forceScroll: true });
        // A new request's plan and results arrive in its thread: open it so they are seen.
        if (!threadId && /(^|\s)@handoff\b/i.test(text)) openThread(m.id);
      }
      showUnavailable(null);
    } catch (err) {
      this.setError(err instanceof RequestError ? err.display : String(err));
    } finally {
      this.inFlight = null;
      this.sending = false;
      this.textarea.readOnly = false;
      this.form.removeAttribute('aria-busy');
      this.sendButton.disabled = false;
      this.textarea.focus();
    }
  }
}

// ---------------------------------------------------------------------------
// Card actions (Approve / Deny / Request changes / Cancel)

const MAX_CHANGE_CHARS = 2000;

/** "Request changes": a small form under the plan card; sending it drafts the next plan version. */
function openChangesForm(button) {
  const actions = button.closest('.actions') || button.parentElement;
  const existing = actions.parentElement.querySelector(':scope > .changes-form');
  if (existing) {
    existing.querySelector('textarea').focus();
    return;
  }
  const textarea = el('textarea', {
    name: 'text',
    maxlength: String(MAX_CHANGE_CHARS),
    'aria-label': `What should plan v${button.dataset.version} do differently?`,
    placeholder: 'What should change? Handoff drafts a new version of the plan.',
  });
  const send = el('button', { type: 'submit', className: 'send-changes', text: 'Send' });
  const cancel = el('button', { type: 'button', className: 'cancel-changes', text: 'Cancel' });
  const error = el('p', { className: 'action-notice', role: 'status' });
  const form = el(
    'form',
    { className: 'changes-form' },
    textarea,
    el('div', { className: 'changes-buttons' }, send, cancel),
    error,
  );
  cancel.addEventListener('click', () => form.remove());
  textarea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.name) {
      needIdentity();
      return;
    }
    const text = textarea.value.trim();
    error.classList.remove('is-error');
    if (!text) {
      error.textContent = 'Say what should change.';
      error.classList.add('is-error');
      textarea.focus();
      return;
    }
    send.disabled = true;
    textarea.readOnly = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const body = await request('/api/actions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          action: 'request-changes',
          taskId: button.dataset.task,
          planVersion: Number(button.dataset.version),
          planHash: button.dataset.hash,
          author: state.name,
          text,
        }),
      });
      // The card is usually replaced over SSE (its buttons go); until then, say what happens.
      error.textContent = body?.message || 'Changes requested.';
      cancel.remove();
      send.remove();
    } catch (err) {
      error.textContent = err instanceof RequestError ? err.display : String(err);
      error.classList.add('is-error');
      error.setAttribute('role', 'alert');
      send.disabled = false;
      textarea.readOnly = false;
    } finally {
      form.removeAttribute('aria-busy');
    }
  });
  actions.after(form);
  textarea.focus();
}

async function onAction(button) {
  if (button.disabled) return;
  if (!state.name) {
    needIdentity();
    return;
  }
  if (button.dataset.action === 'request-changes') {
    openChangesForm(button);
    return;
  }
  if (button.dataset.action === 'schedule-task') {
    openScheduleTaskForm(button);
    return;
  }
  const card = button.closest('.message-html') || button.parentElement;
  const actions = button.closest('.actions') || button.parentElement;
  let notice = actions.nextElementSibling?.classList.contains('action-notice') ? actions.nextElementSibling : null;
  if (!notice) {
    notice = el('p', { className: 'action-notice', role: 'status' });
    actions.after(notice);
  }
  notice.textContent = '';
  notice.classList.remove('is-error');

  const payload = {
    action: button.dataset.action,
    taskId: button.dataset.task,
    author: state.name,
  };
  if (button.dataset.version !== undefined && button.dataset.version !== '') {
    const v = Number(button.dataset.version);
    payload.planVersion = Number.isFinite(v) ? v : button.dataset.version;
  }
  if (button.dataset.hash) payload.planHash = button.dataset.hash;
  if (button.dataset.approval) payload.approvalId = button.dataset.approval;
  if (button.dataset.connector) payload.connector = button.dataset.connector;

  const siblings = [...card.querySelectorAll('[data-action]')];
  for (const b of siblings) b.disabled = true;
  button.setAttribute('aria-busy', 'true');
  const label = button.textContent;
  button.classList.add('is-pending');
  try {
    const body = await request('/api/actions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    // Connect: the sign-in page is this person's alone; it opens here, never on the card.
    if (body?.authorizationUrl) showSignInLink(notice, body);
    else if (body?.message) notice.textContent = body.message;
  } catch (err) {
    notice.textContent = err instanceof RequestError ? err.display : String(err);
    notice.classList.add('is-error');
    notice.setAttribute('role', 'alert');
  } finally {
    // The card is usually replaced by its updated version over SSE; if not, let the person try again.
    if (button.isConnected) {
      for (const b of siblings) b.disabled = false;
      button.removeAttribute('aria-busy');
      button.classList.remove('is-pending');
      button.textContent = label;
    }
  }
}

// ---------------------------------------------------------------------------
// Channels: #general, and each person's own notices channel (`/?channel=dm-…`)

function applyChannel() {
  const ch = state.channel;
  const mine = myPersonId() && ch === noticesChannelFor(myPersonId());
  document.title = `Handoff · #${ch}`;
  $('channel-name').textContent = ch;
  $('channel-topic').textContent = ch.startsWith('dm-')
    ? 'Notices Handoff sends one person, e.g. when a schedule they own fails. Only messages, no direct chat.'
    : 'Hand work to @handoff: mention it with a task and attach the files it needs.';
  $('channel-empty-title').textContent = mine ? 'Nothing for you yet' : `Welcome to #${ch}`;
  $('channel-messages').setAttribute('aria-label', `Messages in #${ch}`);
  document.querySelector('label[for="composer-text"]').textContent = `Message #${ch}`;
  const subtitle = document.querySelector('.thread-subtitle');
  if (subtitle) subtitle.textContent = `# ${ch}`;
  updateChannelLinks();
}

function updateChannelLinks() {
  const general = $('channel-link');
  const isGeneral = state.channel === 'general';
  general.classList.toggle('active', isGeneral);
  if (isGeneral) general.setAttribute('aria-current', 'page');
  else general.removeAttribute('aria-current');
  const id = myPersonId();
  const item = $('notices-item');
  item.hidden = !id;
  if (!id) return;
  const ch = noticesChannelFor(id);
  const link = $('notices-link');
  link.setAttribute('href', `/?channel=${encodeURIComponent(ch)}`);
  link.dataset.channel = ch;
  link.classList.toggle('active', state.channel === ch);
  if (state.channel === ch) link.setAttribute('aria-current', 'page');
  else link.removeAttribute('aria-current');
}

// ---------------------------------------------------------------------------
// Connections: the person's own per-user connections (Connect / Disconnect), and the
// sign-in page a Connect button answers with

/** An http(s) URL from the server, or null. */
function webUrl(raw) {
  try {
    const u = new URL(String(raw));
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}

/** Opens the sign-in page in a new tab and leaves a link to it in `notice` (for a blocked pop-up). */
function showSignInLink(notice, body) {
  const url = webUrl(body.authorizationUrl);
  notice.classList.remove('is-error');
  if (!url) {
    notice.textContent = 'Handoff answered with a sign-in link that is not a web address.';
    notice.classList.add('is-error');
    return;
  }
  notice.replaceChildren(
    `${body.message || 'Sign in to connect.'} `,
    el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: 'Open the sign-in page' }),
  );
  window.open(url, '_blank', 'noopener,noreferrer');
}

let connectionsRefreshTimer = null;

function toggleConnections(force) {
  const panel = $('connections-panel');
  const open = force ?? panel.hidden;
  if (open && !state.name) {
    needIdentity();
    return;
  }
  panel.hidden = !open;
  $('connections-toggle').setAttribute('aria-expanded', String(open));
  $('connections-toggle').classList.toggle('is-active', open);
  if (open) {
    setConnectionsNotice('');
    loadConnections();
  } else {
    $('connections-toggle').focus();
  }
}

function setConnectionsNotice(text, isError = false) {
  const notice = $('connections-notice');
  notice.textContent = text || '';
  notice.classList.toggle('is-error', Boolean(isError && text));
  notice.setAttribute('role', isError ? 'alert' : 'status');
}

async function loadConnections() {
  const box = $('connections-list');
  clearTimeout(connectionsRefreshTimer);
  box.setAttribute('aria-busy', 'true');
  if (!box.firstElementChild) box.replaceChildren(el('p', { className: 'muted', text: 'Loading your connections…' }));
  try {
    const body = await request(`/api/console/connections?author=${encodeURIComponent(state.name)}`);
    // Server-rendered and escaped, like a bot card.
    box.innerHTML = typeof body?.html === 'string' ? body.html : '';
  } catch (err) {
    if (box.querySelector('.muted:only-child')) box.replaceChildren();
    setConnectionsNotice(err instanceof RequestError ? err.display : String(err), true);
  } finally {
    box.removeAttribute('aria-busy');
  }
}

function refreshConnectionsSoon() {
  clearTimeout(connectionsRefreshTimer);
  connectionsRefreshTimer = setTimeout(() => {
    if (!$('connections-panel').hidden) loadConnections();
  }, 400);
}

async function onConnectionOp(button) {
  if (button.disabled) return;
  if (!state.name) {
    needIdentity();
    return;
  }
  const connector = button.dataset.connector;
  const op = button.dataset.connectionOp;
  const buttons = [...$('connections-list').querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  button.classList.add('is-pending');
  button.setAttribute('aria-busy', 'true');
  setConnectionsNotice('');
  try {
    if (op === 'connect') {
      const body = await request('/api/actions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'connect', connector, author: state.name }),
      });
      if (body?.authorizationUrl) showSignInLink($('connections-notice'), body);
      else setConnectionsNotice(body?.message || 'Connected.');
      return;
    }
    const body = await request('/api/console/connections/disconnect', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ connector, author: state.name }),
    });
    setConnectionsNotice(body?.message || 'Disconnected.');
    await loadConnections();
  } catch (err) {
    setConnectionsNotice(err instanceof RequestError ? err.display : String(err), true);
  } finally {
    if (button.isConnected) {
      for (const b of buttons) b.disabled = false;
      button.classList.remove('is-pending');
      button.removeAttribute('aria-busy');
    }
  }
}

// ---------------------------------------------------------------------------
// Instructions & memory: the channel's panel (approvers save or clear the instructions,
// forget facts, accept or dismiss proposed ones; everyone else reads them)

function setupChannelSettings() {
  $('channel-settings-toggle').addEventListener('click', () => toggleChannelSettings());
  $('channel-settings-close').addEventListener('click', () => toggleChannelSettings(false));
  $('channel-settings-refresh').addEventListener('click', () => loadChannelSettings());
  const list = $('channel-settings-list');
  list.addEventListener('click', (e) => {
    const button = e.target.closest('button[data-op]');
    if (!button || button.type === 'submit') return;
    e.preventDefault();
    sendChannelSettings(button, {
      op: button.dataset.op,
      ...(button.dataset.factId ? { factId: button.dataset.factId } : {}),
      ...(button.dataset.proposalId ? { proposalId: button.dataset.proposalId } : {}),
    });
  });
  list.addEventListener('submit', (e) => {
    const form = e.target.closest('form[data-op]');
    if (!form) return;
    e.preventDefault();
    const text = form.querySelector('textarea')?.value ?? '';
    sendChannelSettings(form.querySelector('button[type="submit"]'), { op: form.dataset.op, text });
  });
}

function toggleChannelSettings(force) {
  const panel = $('channel-settings-panel');
  const open = force ?? panel.hidden;
  panel.hidden = !open;
  $('channel-settings-toggle').setAttribute('aria-expanded', String(open));
  $('channel-settings-toggle').classList.toggle('is-active', open);
  if (open) {
    setChannelSettingsNotice('');
    loadChannelSettings();
  } else {
    $('channel-settings-toggle').focus();
  }
}

function setChannelSettingsNotice(text, isError = false) {
  const notice = $('channel-settings-notice');
  notice.textContent = text || '';
  notice.classList.toggle('is-error', Boolean(isError && text));
  notice.setAttribute('role', isError ? 'alert' : 'status');
}

async function loadChannelSettings() {
  if (!state.name && !signedInConsole()) {
    needIdentity();
    return;
  }
  const box = $('channel-settings-list');
  box.setAttribute('aria-busy', 'true');
  try {
    const query = new URLSearchParams({ channel: state.channel, ...(state.name ? { author: state.name } : {}) });
    const body = await request(`/api/console/channel-settings?${query}`);
    // Server-rendered and escaped, like a bot card.
    box.innerHTML = typeof body?.html === 'string' ? body.html : '';
  } catch (err) {
    setChannelSettingsNotice(err instanceof RequestError ? err.display : String(err), true);
  } finally {
    box.removeAttribute('aria-busy');
  }
}

async function sendChannelSettings(button, fields) {
  if (!state.name && !signedInConsole()) {
    needIdentity();
    return;
  }
  if (button) button.disabled = true;
  setChannelSettingsNotice('');
  try {
    const body = await request('/api/console/channel-settings', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: state.channel, author: state.name, ...fields }),
    });
    setChannelSettingsNotice(body?.message || 'Done.');
    await loadChannelSettings();
  } catch (err) {
    setChannelSettingsNotice(err instanceof RequestError ? err.display : String(err), true);
    if (button?.isConnected) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------
// Grants: the channel's standing grants, listed for its approvers with Revoke (anyone
// else is told the server's refusal)

function setupGrants() {
  $('grants-toggle').addEventListener('click', () => toggleGrants());
  $('grants-close').addEventListener('click', () => toggleGrants(false));
  $('grants-refresh').addEventListener('click', () => loadGrants());
  $('grants-list').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-grant-op="revoke"]');
    if (!button) return;
    e.preventDefault();
    revokeGrant(button);
  });
}

function toggleGrants(force) {
  const panel = $('grants-panel');
  const open = force ?? panel.hidden;
  panel.hidden = !open;
  $('grants-toggle').setAttribute('aria-expanded', String(open));
  $('grants-toggle').classList.toggle('is-active', open);
  if (open) {
    setGrantsNotice('');
    loadGrants();
  } else {
    $('grants-toggle').focus();
  }
}

function setGrantsNotice(text, isError = false) {
  const notice = $('grants-notice');
  notice.textContent = text || '';
  notice.classList.toggle('is-error', Boolean(isError && text));
  notice.setAttribute('role', isError ? 'alert' : 'status');
}

async function loadGrants() {
  if (!state.name && !signedInConsole()) {
    needIdentity();
    return;
  }
  const box = $('grants-list');
  box.setAttribute('aria-busy', 'true');
  try {
    const query = new URLSearchParams({ channel: state.channel, ...(state.name ? { author: state.name } : {}) });
    const body = await request(`/api/console/grants?${query}`);
    // Server-rendered and escaped, like a bot card.
    box.innerHTML = typeof body?.html === 'string' ? body.html : '';
  } catch (err) {
    // Refused (not an approver here) or unavailable: no list stays on screen.
    box.replaceChildren();
    setGrantsNotice(err instanceof RequestError ? err.display : String(err), true);
  } finally {
    box.removeAttribute('aria-busy');
  }
}

async function revokeGrant(button) {
  if (button.disabled) return;
  if (!state.name && !signedInConsole()) {
    needIdentity();
    return;
  }
  button.disabled = true;
  setGrantsNotice('');
  try {
    const body = await request('/api/console/grants/revoke', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grantId: button.dataset.grantId, author: state.name }),
    });
    setGrantsNotice(body?.message || 'Revoked.');
    await loadGrants();
  } catch (err) {
    setGrantsNotice(err instanceof RequestError ? err.display : String(err), true);
    if (button.isConnected) button.disabled = false;
  }
}

// Schedules: the channel's panel (Pause / Resume / Run now / Edit / Delete), and
// "Schedule…" on a result card

const MAX_WHEN_CHARS = 300;
const MAX_SCHEDULE_REQUEST_CHARS = 4000;
let schedulesRefreshTimer = null;

function toggleSchedules(force) {
  const panel = $('schedules-panel');
  const open = force ?? panel.hidden;
  panel.hidden = !open;
  $('schedules-toggle').setAttribute('aria-expanded', String(open));
  $('schedules-toggle').classList.toggle('is-active', open);
  if (open) {
    setSchedulesNotice('');
    loadSchedules();
  } else {
    $('schedules-toggle').focus();
  }
}

function setSchedulesNotice(text, isError = false) {
  const notice = $('schedules-notice');
  notice.textContent = text || '';
  notice.classList.toggle('is-error', Boolean(isError && text));
  notice.setAttribute('role', isError ? 'alert' : 'status');
}

async function loadSchedules() {
  const box = $('schedules-list');
  clearTimeout(schedulesRefreshTimer);
  box.setAttribute('aria-busy', 'true');
  if (!box.firstElementChild) box.replaceChildren(el('p', { className: 'muted', text: 'Loading schedules…' }));
  try {
    const body = await request(`/api/schedules?channel=${encodeURIComponent(state.channel)}`);
    // Server-rendered and escaped, like a bot card.
    box.innerHTML = typeof body?.html === 'string' ? body.html : '';
  } catch (err) {
    if (box.querySelector('.muted:only-child')) box.replaceChildren();
    setSchedulesNotice(err instanceof RequestError ? err.display : String(err), true);
  } finally {
    box.removeAttribute('aria-busy');
  }
}

/** Refreshes the open panel shortly, unless the person is filling in a form in it. */
function refreshSchedulesSoon() {
  clearTimeout(schedulesRefreshTimer);
  schedulesRefreshTimer = setTimeout(() => {
    if ($('schedules-panel').hidden) return;
    if ($('schedules-list').querySelector('form, .schedule-confirm')) return;
    loadSchedules();
  }, 400);
}

function onScheduleOp(button) {
  if (button.disabled) return;
  if (!state.name) {
    needIdentity();
    return;
  }
  const op = button.dataset.scheduleOp;
  if (op === 'edit') openScheduleEditForm(button);
  else if (op === 'delete') openDeleteConfirm(button);
  else sendScheduleOp(button, { op, scheduleId: button.dataset.schedule });
}

/** Sends one schedule action; shows the answer above the list and refreshes it. */
async function sendScheduleOp(button, fields) {
  const item = button.closest('.schedule-item');
  const buttons = item ? [...item.querySelectorAll('button')] : [button];
  for (const b of buttons) b.disabled = true;
  button.classList.add('is-pending');
  button.setAttribute('aria-busy', 'true');
  setSchedulesNotice('');
  try {
    const body = await request('/api/actions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'schedule', channel: state.channel, author: state.name, ...fields }),
    });
    setSchedulesNotice(body?.message || 'Done.');
    // An edit of the request is proposed in a new thread: open it, its plan needs approval.
    if (body?.threadId) openThread(body.threadId);
    await loadSchedules();
    return true;
  } catch (err) {
    setSchedulesNotice(err instanceof RequestError ? err.display : String(err), true);
    if (button.isConnected) {
      for (const b of buttons) b.disabled = false;
      button.classList.remove('is-pending');
      button.removeAttribute('aria-busy');
    }
    return false;
  }
}

function openDeleteConfirm(button) {
  const item = button.closest('.schedule-item');
  const existing = item?.querySelector('.schedule-confirm');
  if (existing) {
    existing.querySelector('button').focus();
    return;
  }
  const yes = el('button', { type: 'button', className: 'confirm-delete', text: 'Delete' });
  const no = el('button', { type: 'button', className: 'keep', text: 'Keep' });
  const box = el(
    'div',
    { className: 'schedule-confirm', role: 'group', 'aria-label': 'Confirm delete' },
    el('span', { text: 'Delete this schedule? It will not run again, and this cannot be undone.' }),
    yes,
    no,
  );
  no.addEventListener('click', () => {
    box.remove();
    button.focus();
  });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    no.disabled = true;
    const ok = await sendScheduleOp(button, { op: 'delete', scheduleId: button.dataset.schedule });
    if (!ok && box.isConnected) {
      yes.disabled = false;
      no.disabled = false;
    }
  });
  (button.closest('.actions') || button).after(box);
  yes.focus();
}

/** A small form: submit runs `send(values)`; the error shows under it. */
function inlineForm({ className, fields, submitLabel, onSubmit }) {
  const error = el('p', { className: 'action-notice', role: 'status' });
  const submit = el('button', { type: 'submit', className: 'send-schedule', text: submitLabel });
  const cancel = el('button', { type: 'button', className: 'cancel-schedule', text: 'Cancel' });
  const form = el(
    'form',
    { className: `inline-form ${className}` },
    ...fields.map((f) => el('label', { className: 'inline-field' }, el('span', { text: f.label }), f.input)),
    el('div', { className: 'changes-buttons' }, submit, cancel),
    error,
  );
  cancel.addEventListener('click', () => form.remove());
  for (const f of fields) {
    f.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!state.name) {
      needIdentity();
      return;
    }
    error.textContent = '';
    error.classList.remove('is-error');
    submit.disabled = true;
    for (const f of fields) f.input.readOnly = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const problem = await onSubmit({ form, error });
      if (problem) {
        error.textContent = problem;
        error.classList.add('is-error');
        error.setAttribute('role', 'alert');
      }
    } finally {
      form.removeAttribute('aria-busy');
      if (form.isConnected) {
        submit.disabled = false;
        for (const f of fields) f.input.readOnly = false;
      }
    }
  });
  return form;
}

function openScheduleEditForm(button) {
  const item = button.closest('.schedule-item');
  const existing = item?.querySelector('.schedule-edit-form');
  if (existing) {
    existing.querySelector('input').focus();
    return;
  }
  const when = el('input', {
    type: 'text',
    name: 'when',
    maxlength: String(MAX_WHEN_CHARS),
    placeholder: 'e.g. every Monday at 8:00 — empty keeps the current time',
  });
  const text = el('textarea', {
    name: 'text',
    rows: '2',
    maxlength: String(MAX_SCHEDULE_REQUEST_CHARS),
    placeholder: 'Empty keeps the request. A new request needs a new approval.',
  });
  const form = inlineForm({
    className: 'schedule-edit-form',
    submitLabel: 'Save',
    fields: [
      { label: 'New time', input: when },
      { label: 'New request', input: text },
    ],
    onSubmit: async () => {
      const fields = { op: 'edit', scheduleId: button.dataset.schedule };
      if (when.value.trim()) fields.when = when.value.trim();
      if (text.value.trim()) fields.text = text.value.trim();
      if (!fields.when && !fields.text) return 'Say the new time, or the new request, or both.';
      // Sent from outside the form: a success refreshes the list, which replaces it anyway.
      form.remove();
      const ok = await sendScheduleOp(button, fields);
      if (!ok && button.isConnected) {
        (button.closest('.actions') || button).after(form);
        return 'Not changed: see the message above the list.';
      }
      return '';
    },
  });
  (button.closest('.actions') || button).after(form);
  when.focus();
}

/** "Schedule…" on a result card: asks when, then proposes the same request on a schedule. */
function openScheduleTaskForm(button) {
  const actions = button.closest('.actions') || button.parentElement;
  const existing = actions.parentElement.querySelector(':scope > .schedule-task-form');
  if (existing) {
    existing.querySelector('input').focus();
    return;
  }
  const when = el('input', {
    type: 'text',
    name: 'when',
    maxlength: String(MAX_WHEN_CHARS),
    placeholder: 'e.g. every weekday at 9:00',
  });
  const form = inlineForm({
    className: 'schedule-task-form',
    submitLabel: 'Schedule',
    fields: [{ label: 'When?', input: when }],
    onSubmit: async ({ error }) => {
      const value = when.value.trim();
      if (!value) return 'Say when it should run, e.g. “every weekday at 9:00”.';
      try {
        const body = await request('/api/actions', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            action: 'schedule_task',
            taskId: button.dataset.task,
            when: value,
            tz: browserZone() || undefined,
            author: state.name,
          }),
        });
        error.textContent = body?.message || 'Schedule proposed.';
        form.querySelector('.send-schedule')?.remove();
        form.querySelector('.cancel-schedule')?.remove();
        if (body?.threadId) openThread(body.threadId);
        return '';
      } catch (err) {
        return err instanceof RequestError ? err.display : String(err);
      }
    },
  });
  actions.after(form);
  when.focus();
}

// ---------------------------------------------------------------------------
// Who is here: signed in (the server says who), or a typed display name (`handoff dev`)

/** Whether people sign in to this console (then the name comes from the server, never typed). */
function signedInConsole() {
  return Boolean(state.session?.signin && state.session.signin !== 'off');
}

/** Asks for a name, or for signing in, whichever this console uses. */
function needIdentity() {
  if (signedInConsole()) showSignIn();
  else askName();
}

function showSignIn() {
  const dialog = $('signin-dialog');
  const oidc = state.session?.signin === 'oidc';
  $('signin-text').textContent = oidc
    ? 'Sign in with your organisation account to use the console.'
    : 'Open the personal sign-in link you were given (an admin makes one with `handoff console add-user`).';
  const link = $('signin-link');
  link.hidden = !oidc;
  if (oidc) link.setAttribute('href', state.session.signInUrl || '/auth/login');
  if (!dialog.open) dialog.showModal();
}

/** The signed-in person: shown with a Sign out button instead of the name prompt. */
function showSignedIn(user) {
  state.name = user.name;
  $('me-name').textContent = user.name;
  $('me-name').title = user.id;
  $('change-name').hidden = true;
  $('sign-out').hidden = false;
  const av = $('me-avatar');
  av.textContent = initials(user.name);
  av.style.setProperty('--hue', String(avatarHue(user.name)));
  applyChannel();
}

async function signOut() {
  try {
    await request('/auth/signout', { method: 'POST' });
  } catch (err) {
    showUnavailable(err);
    return;
  }
  location.reload();
}

function setName(name) {
  state.name = name;
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // Storage can be disabled (private mode); the name then lasts for this page only.
  }
  $('me-name').textContent = name || 'No name yet';
  $('change-name').textContent = name ? 'Change name' : 'Set name';
  const av = $('me-avatar');
  av.textContent = initials(name);
  av.style.setProperty('--hue', String(avatarHue(name)));
  // The notices channel and its wording depend on who this is.
  applyChannel();
}

function askName() {
  const dialog = $('name-dialog');
  const input = $('name-input');
  input.value = state.name;
  $('name-error').textContent = '';
  $('name-cancel').hidden = !state.name;
  if (!dialog.open) dialog.showModal();
  input.focus();
  input.select();
}

function setupNameDialog() {
  const dialog = $('name-dialog');
  $('name-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('name-input').value.replace(/\s+/g, ' ').trim();
    if (!value) {
      $('name-error').textContent = 'Please enter a name.';
      $('name-input').focus();
      return;
    }
    setName(value.slice(0, 60));
    dialog.close();
    $('composer-text').focus();
  });
  $('name-cancel').addEventListener('click', () => dialog.close());
  // Dismissing without a name is allowed: sending or clicking a card button asks again.
  dialog.addEventListener('close', () => {
    if (!state.name) $('composer-text').focus();
  });
  $('change-name').addEventListener('click', askName);
  $('sign-out').addEventListener('click', signOut);
  // Signing in is not optional: Escape does not dismiss the sign-in dialog.
  $('signin-dialog').addEventListener('cancel', (e) => e.preventDefault());
}

// ---------------------------------------------------------------------------
// Drag and drop anywhere in the window

function setupDragAndDrop() {
  const overlay = $('drop-overlay');
  let depth = 0;
  const hasFiles = (e) => Array.from(e.dataTransfer?.types || []).includes('Files');
  window.addEventListener('dragenter', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener('dragover', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  window.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.hidden = true;
  });
  window.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    // A drop on the open thread panel attaches to the reply; anywhere else to the channel message.
    const overThread =
      !$('thread').hidden && (e.target.closest?.('#thread') || pointIn($('thread'), e.clientX, e.clientY));
    const target = overThread && threadComposer.acceptsFiles ? threadComposer : channelComposer;
    target.addFiles(e.dataTransfer.files);
    target.textarea.focus();
  });
}

function pointIn(node, x, y) {
  const r = node.getBoundingClientRect();
  return x >= r.left && x <= r.right && y >= r.top && y <= r.bottom;
}

// ---------------------------------------------------------------------------
// Start

let channelComposer;
let threadComposer;

function setupEvents() {
  document.addEventListener('click', (e) => {
    const target = e.target instanceof Element ? e.target : null;
    if (!target) return;
    const scheduleOp = target.closest('[data-schedule-op]');
    if (scheduleOp) {
      e.preventDefault();
      onScheduleOp(scheduleOp);
      return;
    }
    const connectionOp = target.closest('[data-connection-op]');
    if (connectionOp) {
      e.preventDefault();
      onConnectionOp(connectionOp);
      return;
    }
    const action = target.closest('.message-html [data-action]');
    if (action) {
      e.preventDefault();
      onAction(action);
      return;
    }
    const open = target.closest('[data-open-thread]');
    if (open) {
      openThread(open.dataset.openThread, { focus: true });
      return;
    }
  });
  $('thread-close').addEventListener('click', closeThread);
  for (const link of [$('channel-link'), $('notices-link')]) {
    link.addEventListener('click', (e) => {
      // The channel already open: just go to its message box. Another one loads its page.
      if (link.classList.contains('active')) {
        e.preventDefault();
        $('composer-text').focus();
      }
    });
  }
  $('schedules-toggle').addEventListener('click', () => toggleSchedules());
  $('schedules-close').addEventListener('click', () => toggleSchedules(false));
  $('schedules-refresh').addEventListener('click', () => loadSchedules());
  $('connections-toggle').addEventListener('click', () => toggleConnections());
  $('connections-close').addEventListener('click', () => toggleConnections(false));
  $('connections-refresh').addEventListener('click', () => loadConnections());
  setupChannelSettings();
  setupGrants();
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.openThreadId && !$('name-dialog').open) {
      closeThread();
    }
  });
}

async function loadSession() {
  const s = await request('/api/session');
  state.session = s;
  state.channel = channelFromUrl() || s?.channel || 'general';
  applyChannel();
  $('demo-banner').hidden = !s?.demo;
  const parts = [];
  if (s?.mode) parts.push(`${s.mode} mode`);
  if (s?.model) parts.push(`model: ${s.model}`);
  $('session-info').textContent = parts.join(' · ');
  if (s?.maxFiles === 0) {
    for (const label of document.querySelectorAll('.attach')) label.hidden = true;
  }
}

async function start() {
  state.channel = channelFromUrl() || state.channel;
  applyChannel();
  channelComposer = new Composer($('composer'), { threadId: () => null });
  threadComposer = new Composer($('thread-composer'), { threadId: () => state.openThreadId });
  setupEvents();
  setupNameDialog();
  setupDragAndDrop();
  followBottom($('channel-messages'));
  followBottom($('thread-messages'));

  let sessionError = null;
  try {
    await loadSession();
  } catch (err) {
    sessionError = err;
  }
  if (signedInConsole()) {
    if (!state.session.user) {
      // Nothing else loads before signing in: the server would refuse it.
      showSignIn();
      document.documentElement.dataset.ready = 'true';
      return;
    }
    showSignedIn(state.session.user);
  } else {
    let stored = '';
    try {
      stored = localStorage.getItem(NAME_KEY) || '';
    } catch {
      stored = '';
    }
    setName(stored.trim());
    if (!state.name) askName();
  }

  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('thread')) openThread(hash.get('thread'));

  try {
    if (sessionError) throw sessionError;
    await loadMessages();
  } catch (err) {
    needsCatchUp = true;
    showUnavailable(err);
  }
  renderChannel({ forceScroll: true });
  connectEvents();
  document.documentElement.dataset.ready = 'true';
}

start();
