import { CronExpressionParser } from 'cron-parser';
import { ErrorCodes, HandoffError } from './errors.ts';

export type TimeZoneSource = 'given' | 'channel' | 'requester' | 'default';

export interface ParsedRule {
  /** Standard 5-field cron (minute hour day-of-month month day-of-week), as BullMQ runs it with `{ pattern, tz }`. */
  pattern: string;
  /** tz named inside the text, if any */
  tz?: string;
  /** describePattern(pattern): the rule in words, without the zone. */
  words: string;
  /** From a trailing ", no catch-up" or ", catch up within 2h"; otherwise the caller's default. */
  catchUp?: 'latest' | 'none';
  catchUpWindowMs?: number;
}

export type RuleParse = { ok: true; rule: ParsedRule } | { ok: false; understood: string; examples: string[] };

export const ruleExamples: readonly string[] = [
  'every weekday at 8:30',
  'first Monday of the month at 9',
  'every 2 hours between 9 and 17',
];

const defaultTimeZone = 'UTC';
const dayNames = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
const shortDayNames = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const shortMonthNames = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
const ordinalWords = ['first', 'second', 'third', 'fourth'] as const;
const weekdaySet = '1,2,3,4,5';
const weekendSet = '0,6';

// ---------------------------------------------------------------------------
// Time zones

/** IANA zone names only: abbreviations such as CET or EST are ambiguous (and ICU maps them to arbitrary cities). */
export function isValidTimeZone(tz: string): boolean {
  const name = tz.trim();
  if (name.toUpperCase() === 'UTC') return true;
  if (!name.includes('/')) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/**
 * Fixes the case ("europe/berlin" → "Europe/Berlin") but keeps the name typed otherwise: ICU's canonical
 * names are sometimes the old ones ("Asia/Kolkata" → "Asia/Calcutta"), which would surprise people.
 */
function canonicalTimeZone(tz: string): string {
  const name = tz.trim();
  const resolved = new Intl.DateTimeFormat('en', { timeZone: name }).resolvedOptions().timeZone;
  return resolved.toLowerCase() === name.toLowerCase() ? resolved : name;
}

/**
 * Which zone applies: the one given, else the channel's, else the requester's, else UTC, and where it came from.
 * Throws a HandoffError (`handoff_invalid_input`) naming a given zone that is not valid.
 */
export function resolveTimeZone(c: { given?: string; channel?: string; requester?: string }): {
  tz: string;
  source: TimeZoneSource;
} {
  const given = c.given?.trim();
  if (given) {
    if (!isValidTimeZone(given)) {
      throw new HandoffError(
        ErrorCodes.invalidInput,
        `"${given}" is not a time zone I know. Use an IANA name such as Europe/Berlin or America/New_York.`,
      );
    }
    return { tz: canonicalTimeZone(given), source: 'given' };
  }
  // A stale or odd profile setting must not block a schedule, so these fall through to the next source.
  for (const source of ['channel', 'requester'] as const) {
    const candidate = c[source]?.trim();
    if (candidate && isValidTimeZone(candidate)) return { tz: canonicalTimeZone(candidate), source };
  }
  return { tz: defaultTimeZone, source: 'default' };
}

// ---------------------------------------------------------------------------
// Run times

function cronIterator(pattern: string, tz: string, currentDate: Date) {
  return CronExpressionParser.parse(pattern, { currentDate, tz });
}

/** The next `count` run times strictly after `from`. */
export function nextRuns(pattern: string, tz: string, from: Date, count: number): Date[] {
  const runs = cronIterator(pattern, tz, from);
  const out: Date[] = [];
  while (out.length < count) out.push(runs.next().toDate());
  return out;
}

/** The last run time at or before `at`, or undefined when the pattern never ran before it. */
export function latestRunAtOrBefore(pattern: string, tz: string, at: Date): Date | undefined {
  let latest: Date;
  try {
    latest = cronIterator(pattern, tz, at).prev().toDate();
  } catch {
    return undefined;
  }
  // prev() is strict, and across a spring-forward it skips the shifted run (02:30 → 03:30) that next()
  // does produce; stepping forward with next() makes both directions agree and includes `at` itself.
  for (;;) {
    const following = cronIterator(pattern, tz, latest).next().toDate();
    if (following.getTime() > at.getTime()) return latest;
    latest = following;
  }
}

const yearMs = 366 * 24 * 60 * 60 * 1000;
const maxOccurrences = 400;

/**
 * Smallest gap between consecutive runs over the next ~400 occurrences or one year, in ms. DST counts:
 * a daily run in Europe/Berlin is 23 hours apart once a year. Infinity when it runs less than twice.
 */
export function smallestIntervalMs(pattern: string, tz: string, from: Date): number {
  const runs = cronIterator(pattern, tz, from);
  const until = from.getTime() + yearMs;
  let smallest = Number.POSITIVE_INFINITY;
  let previous: number | undefined;
  for (let i = 0; i < maxOccurrences; i++) {
    const at = runs.next().toDate().getTime();
    if (at > until) break;
    if (previous !== undefined) smallest = Math.min(smallest, at - previous);
    previous = at;
  }
  return smallest;
}

// ---------------------------------------------------------------------------
// Formatting

const pad2 = (n: number) => String(n).padStart(2, '0');
const clock = (hour: number, minute: number) => `${pad2(hour)}:${pad2(minute)}`;

/** "CET" where en-GB knows a name, "EST" where only en-US does, else "GMT+9". */
function shortZoneName(at: Date, tz: string): string {
  let fallback = tz;
  for (const locale of ['en-GB', 'en-US']) {
    const parts = new Intl.DateTimeFormat(locale, { timeZone: tz, timeZoneName: 'short' }).formatToParts(at);
    const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? tz;
    if (!/^GMT[+-]/.test(name)) return name;
    fallback = name;
  }
  return fallback;
}

/** "Mon 7 Dec 2026, 09:00 CET" in that zone. */
export function formatRunTime(at: Date, tz: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    weekday: 'short',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    hourCycle: 'h23',
  }).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  // Month names come from our own table: ICU versions disagree on short names ("Sep" vs "Sept").
  const month = shortMonthNames[Number(part('month')) - 1];
  const time = clock(Number(part('hour')), Number(part('minute')));
  return `${part('weekday')} ${Number(part('day'))} ${month} ${part('year')}, ${time} ${shortZoneName(at, tz)}`;
}

// ---------------------------------------------------------------------------
// Describing patterns

interface CronFields {
  minute: string;
  hour: string;
  dayOfMonth: string;
  month: string;
  dayOfWeek: string;
}

function splitFields(pattern: string): CronFields | undefined {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length !== 5) return undefined;
  const [minute, hour, dayOfMonth, month, dayOfWeek] = fields as [string, string, string, string, string];
  return { minute, hour, dayOfMonth, month, dayOfWeek };
}

const isNumber = (s: string) => /^\d{1,2}$/.test(s);
const ordinal = (n: number) => {
  const suffix =
    n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th';
  return `${n}${suffix}`;
};

function listInWords(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/** Day-of-week numbers in a plain list or range field (0–7, 7 is Sunday), or undefined for other forms. */
function daysOfWeek(field: string): number[] | undefined {
  const days = new Set<number>();
  for (const item of field.split(',')) {
    const range = /^(\d)(?:-(\d))?$/.exec(item);
    if (!range) return undefined;
    const start = Number(range[1]);
    const end = range[2] === undefined ? start : Number(range[2]);
    if (start > 7 || end > 7 || start > end) return undefined;
    for (let d = start; d <= end; d++) days.add(d % 7);
  }
  return [...days].sort((a, b) => a - b);
}

/** Mondays first, as people list them. */
const mondayFirst = (days: number[]) => [...days.filter((d) => d !== 0), ...days.filter((d) => d === 0)];

/** "every weekday (Mon–Fri)" / "every Monday" / "on the first Monday of each month" / "every day"; undefined when unknown. */
function describeDays(f: CronFields): { every: string; on: string } | undefined {
  if (f.month !== '*') return undefined;
  if (f.dayOfWeek === '*' || f.dayOfWeek === '?') return describeDaysOfMonth(f.dayOfMonth);
  if (f.dayOfMonth !== '*' && f.dayOfMonth !== '?') return undefined;
  const nth = /^(\d)(?:#(\d)|(L))$/.exec(f.dayOfWeek);
  if (nth) {
    const day = dayNames[Number(nth[1]) % 7];
    const which = nth[3] ? 'last' : ordinalWords[Number(nth[2]) - 1];
    if (!which) return undefined;
    const words = `on the ${which} ${day} of each month`;
    return { every: words, on: words };
  }
  const days = daysOfWeek(f.dayOfWeek);
  if (!days) return undefined;
  const set = days.join(',');
  if (set === weekdaySet) return { every: 'every weekday (Mon–Fri)', on: 'on weekdays (Mon–Fri)' };
  if (set === weekendSet) return { every: 'every weekend day (Sat–Sun)', on: 'on weekend days (Sat–Sun)' };
  if (days.length === 7) return { every: 'every day', on: '' };
  const names = mondayFirst(days).map((d) => dayNames[d] as string);
  return { every: `every ${listInWords(names)}`, on: `on ${listInWords(names.map((n) => `${n}s`))}` };
}

function describeDaysOfMonth(field: string): { every: string; on: string } | undefined {
  if (field === '*' || field === '?') return { every: 'every day', on: '' };
  if (field === 'L') return { every: 'on the last day of each month', on: 'on the last day of each month' };
  if (!isNumber(field) || Number(field) < 1 || Number(field) > 31) return undefined;
  const words = `on the ${ordinal(Number(field))} of each month`;
  return { every: words, on: words };
}

/** "every 2 hours from 09:00 to 17:00", "every 15 minutes", "at 09:00"; undefined when unknown. */
function describeTimes(minute: string, hour: string): { at: string } | { repeat: string } | undefined {
  if (isNumber(minute) && isNumber(hour)) return { at: `at ${clock(Number(hour), Number(minute))}` };
  const minuteStep = minute === '*' ? 1 : Number(/^\*\/(\d{1,2})$/.exec(minute)?.[1]);
  // "*/7" restarts at :00 each hour, so "every 7 minutes" would be untrue; leave such forms to the fallback.
  if (minuteStep >= 1 && 60 % minuteStep === 0) {
    const every = minuteStep === 1 ? 'every minute' : `every ${minuteStep} minutes`;
    if (hour === '*') return { repeat: every };
    const hours = /^(\d{1,2})(?:-(\d{1,2}))?$/.exec(hour);
    if (!hours) return undefined;
    const first = Number(hours[1]);
    const last = Number(hours[2] ?? hours[1]);
    const lastMinute = Math.floor(59 / minuteStep) * minuteStep;
    return { repeat: `${every} from ${clock(first, 0)} to ${clock(last, lastMinute)}` };
  }
  if (!isNumber(minute)) return undefined;
  return describeHourRepeat(Number(minute), hour);
}

function describeHourRepeat(minute: number, hour: string): { repeat: string } | undefined {
  const m = /^(?:\*|(\d{1,2})-(\d{1,2}))(?:\/(\d{1,2}))?$/.exec(hour);
  if (!m) return undefined;
  const step = Number(m[3] ?? 1);
  if (step < 1) return undefined;
  const every = step === 1 ? 'every hour' : `every ${step} hours`;
  if (m[1] === undefined) {
    if (24 % step !== 0) return undefined;
    return { repeat: minute === 0 ? every : `${every} at ${minute} minutes past` };
  }
  const first = Number(m[1]);
  const last = first + Math.floor((Number(m[2]) - first) / step) * step;
  return { repeat: `${every} from ${clock(first, minute)} to ${clock(last, minute)}` };
}

/**
 * Words for a pattern, e.g. "every weekday (Mon–Fri) at 08:30" or "every 2 hours from 09:00 to 17:00";
 * `on the cron schedule "…"` for forms it does not recognise.
 */
export function describePattern(pattern: string): string {
  const fallback = `on the cron schedule "${pattern.trim()}"`;
  const f = splitFields(pattern);
  if (!f) return fallback;
  const days = describeDays(f);
  const times = describeTimes(f.minute, f.hour);
  if (!days || !times) return fallback;
  if ('at' in times) return `${days.every} ${times.at}`;
  return days.on ? `${times.repeat} ${days.on}` : times.repeat;
}

// ---------------------------------------------------------------------------
// Parsing what people type

interface Clock {
  hour: number;
  minute: number;
}

/** What the phrase recogniser found; `timeFields` and `daysFields` turn it into cron fields or a Refusal. */
interface Parts {
  time?: Clock;
  interval?: { unit: 'minute' | 'hour'; every: number };
  window?: { from: Clock; to: Clock };
  days?: Set<number>;
  daily?: boolean;
  weekly?: boolean;
  monthly?: boolean;
  nthWeekday?: { day: number; nth: number | 'last' };
  dayOfMonth?: number | 'last';
}

/** Why a phrase was refused, in words that complete "<what was understood> but …". */
class Refusal extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'Refusal';
  }
}

const dayPattern =
  '(monday|mon|tuesday|tues|tue|wednesday|wed|thursday|thurs|thur|thu|friday|fri|saturday|sat|sunday|sun)s?';
const dayIndex = (name: string) => shortDayNames.findIndex((d) => name.startsWith(d.toLowerCase()));
const windowEndPattern = '(\\d{1,2})(?::(\\d{2}))? ?(am|pm)?';
const abbreviations = new Set(
  'CET CEST EET EEST WET WEST BST GMT IST EST EDT CST CDT MST MDT PST PDT AKST HST JST KST AEST AEDT SGT HKT'.split(
    ' ',
  ),
);
const fillerWords = new Set(['every', 'each', 'on', 'at', 'the', 'and', 'of', 'in', 'a', 'an', 'from', 'to', '&']);

/** Removes the first match of `re` from the text it scans, so leftovers show what was not understood. */
class Scanner {
  constructor(public rest: string) {}

  take(re: RegExp): RegExpExecArray | undefined {
    const m = re.exec(this.rest);
    if (!m) return undefined;
    this.rest = `${this.rest.slice(0, m.index)} ${this.rest.slice(m.index + m[0].length)}`;
    return m;
  }

  leftovers(): string[] {
    return this.rest.split(/[\s,.;]+/).filter((w) => w !== '' && !fillerWords.has(w));
  }
}

function toClock(hourText: string | undefined, minuteText: string | undefined, meridiem: string | undefined): Clock {
  if (hourText === 'noon') return { hour: 12, minute: 0 };
  if (hourText === 'midnight') return { hour: 0, minute: 0 };
  const shown = `${hourText}${minuteText === undefined ? '' : `:${minuteText}`}${meridiem ?? ''}`;
  let hour = Number(hourText);
  const minute = Number(minuteText ?? 0);
  if (meridiem) {
    if (hour < 1 || hour > 12) throw new Refusal(`${shown} is not a time of day (use 1–12 with am/pm)`);
    hour = (hour % 12) + (meridiem === 'pm' ? 12 : 0);
  }
  if (hour > 23 || minute > 59) throw new Refusal(`${shown} is not a time of day (use 00:00 to 23:59)`);
  return { hour, minute };
}

const clockFrom = (m: RegExpExecArray, at: number) => toClock(m[at], m[at + 1], m[at + 2]);

/** Finds the phrase's parts; throws a Refusal for values that are recognisable but wrong. Order matters: each step removes what it took. */
function recognise(text: string, parts: Parts): string[] {
  const s = new Scanner(` ${text.toLowerCase().replace(/\s+/g, ' ')} `);
  if (s.take(/\bevery (?:\d+ |other )?(?:days|weeks|months)\b|\b(?:fortnightly|biweekly)\b/)) {
    throw new Refusal(
      'cron cannot repeat every few days, weeks or months evenly — name the days instead, like "every Mon, Wed and Fri at 9:00"',
    );
  }
  // Windows first, so their bare hours ("between 9 and 17") are not read as times.
  const window = s.take(
    new RegExp(`\\b(?:between|from) ${windowEndPattern} ?(?:and|to|until|till|-) ?${windowEndPattern}\\b`),
  );
  if (window) parts.window = { from: clockFrom(window, 1), to: clockFrom(window, 4) };
  recogniseMonthDays(s, parts);
  recogniseRepeat(s, parts);
  recogniseWeekDays(s, parts);
  if (s.take(/\b(?:daily|days?)\b/)) parts.daily = true;
  if (s.take(/\bweekly\b|\bweek\b/)) parts.weekly = true;
  if (s.take(/\b(?:monthly|month)\b/)) parts.monthly = true;
  recogniseTime(s, parts);
  return s.leftovers();
}

/** "first Monday", "last Friday", "the 15th", "last day"; before day names, which would take "Monday" alone. */
function recogniseMonthDays(s: Scanner, parts: Parts): void {
  const nth = s.take(new RegExp(`\\b(first|1st|second|2nd|third|3rd|fourth|4th|last) ${dayPattern}\\b`));
  if (nth) {
    const which = nth[1] as string;
    const index = ordinalWords.findIndex((w, i) => which === w || which === ordinal(i + 1));
    parts.nthWeekday = { day: dayIndex(nth[2] as string), nth: which === 'last' ? 'last' : index + 1 };
  }
  if (s.take(/\blast day\b/)) parts.dayOfMonth = 'last';
  else if (s.take(/\bfirst day\b/)) parts.dayOfMonth = 1;
  const dom = s.take(/\b(\d{1,2})(?:st|nd|rd|th)(?: day)?\b/);
  if (dom) parts.dayOfMonth = dayOfMonth(Number(dom[1]));
}

function recogniseRepeat(s: Scanner, parts: Parts): void {
  const interval = s.take(/\bevery (\d+) ?(minutes?|mins?|hours?|hrs?)\b/);
  if (interval) {
    const unit = (interval[2] as string).startsWith('h') ? 'hour' : 'minute';
    parts.interval = { unit, every: Number(interval[1]) };
  } else if (s.take(/\bevery minute\b/)) parts.interval = { unit: 'minute', every: 1 };
  else if (s.take(/\bevery half hour\b/)) parts.interval = { unit: 'minute', every: 30 };
  else if (s.take(/\bevery hour\b|\bhourly\b/)) parts.interval = { unit: 'hour', every: 1 };
}

function recogniseWeekDays(s: Scanner, parts: Parts): void {
  if (s.take(/\bweekdays?\b/)) parts.days = new Set([1, 2, 3, 4, 5]);
  else if (s.take(/\bweekends?(?: ?days?)?\b/)) parts.days = new Set([0, 6]);
  recogniseDayNames(s, parts);
}

/** "9:00", "9am", "at 9", "noon"; a bare number only after "at", so "every 2 hours" is not a time. */
function recogniseTime(s: Scanner, parts: Parts): void {
  const time = s.take(/\b(?:at )?(?:(\d{1,2})(?::(\d{2}))? ?(am|pm)|(\d{1,2}):(\d{2})|(noon|midnight))\b/);
  if (time) {
    if (time[6]) parts.time = toClock(time[6], undefined, undefined);
    else parts.time = time[1] ? clockFrom(time, 1) : clockFrom(time, 4);
  } else {
    const bare = s.take(/\bat (\d{1,2})\b/);
    if (bare) parts.time = toClock(bare[1], undefined, undefined);
  }
  if (parts.time && s.take(/\b(?:at )?(?:\d{1,2}:\d{2}|\d{1,2} ?(?:am|pm)|noon|midnight)\b/)) {
    throw new Refusal('more than one time — make one schedule per time of day');
  }
}

function dayOfMonth(day: number): number {
  // Days past the 28th would silently skip short months.
  if (day < 1 || day > 28) {
    throw new Refusal(`day ${day} of the month is not in every month — use the 1st to the 28th, or "the last day"`);
  }
  return day;
}

/** Single days, lists ("Mon, Wed and Fri") and ranges ("Monday to Friday", "mon-fri"). */
function recogniseDayNames(s: Scanner, parts: Parts): void {
  const rangeRe = new RegExp(`\\b${dayPattern} ?(?:to|through|till|until|-) ?${dayPattern}\\b`);
  const singleRe = new RegExp(`\\b${dayPattern}\\b`);
  for (let range = s.take(rangeRe); range; range = s.take(rangeRe)) {
    parts.days ??= new Set();
    const start = dayIndex(range[1] as string);
    const end = dayIndex(range[2] as string);
    // Ranges may wrap around the week ("Fri to Mon").
    let d = start;
    do {
      parts.days.add(d);
      d = (d + 1) % 7;
    } while (d !== (end + 1) % 7);
  }
  for (let day = s.take(singleRe); day; day = s.take(singleRe)) {
    parts.days ??= new Set();
    parts.days.add(dayIndex(day[1] as string));
  }
}

/** "a time (09:00) and Mon, Wed" — what was understood, for the refusal message. */
function describeParts(parts: Parts): string {
  const seen: string[] = [];
  if (parts.interval) {
    const { every, unit } = parts.interval;
    seen.push(`a repeat (every ${every === 1 ? unit : `${every} ${unit}s`})`);
  }
  const hhmm = (c: Clock) => clock(c.hour, c.minute);
  if (parts.window) seen.push(`a window (${hhmm(parts.window.from)}–${hhmm(parts.window.to)})`);
  if (parts.time) seen.push(`a time (${hhmm(parts.time)})`);
  if (parts.days) {
    const names = mondayFirst([...parts.days].sort()).map((d) => shortDayNames[d]);
    seen.push(`days (${names.join(', ')})`);
  }
  if (parts.nthWeekday) {
    const which = parts.nthWeekday.nth === 'last' ? 'last' : ordinalWords[parts.nthWeekday.nth - 1];
    seen.push(`the ${which} ${dayNames[parts.nthWeekday.day]} of the month`);
  }
  if (parts.dayOfMonth !== undefined) {
    seen.push(
      parts.dayOfMonth === 'last' ? 'the last day of the month' : `the ${ordinal(parts.dayOfMonth)} of the month`,
    );
  }
  if (parts.daily && !parts.days) seen.push('every day');
  if (parts.weekly) seen.push('weekly');
  if (parts.monthly && parts.dayOfMonth === undefined && !parts.nthWeekday) seen.push('monthly');
  return listInWords(seen);
}

/** The day-of-week field: ranges for runs of three or more days ("1-5"), else a list ("1,3,5"). */
function dayOfWeekField(days: Set<number>): string {
  if (days.size === 7) return '*';
  const sorted = [...days].sort((a, b) => a - b);
  const items: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] as number) + 1) j++;
    items.push(j - i >= 2 ? `${sorted[i]}-${sorted[j]}` : sorted.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return items.join(',');
}

function daysFields(parts: Parts): { dayOfMonth: string; dayOfWeek: string } {
  const daySpecs = [parts.days, parts.nthWeekday, parts.dayOfMonth].filter((x) => x !== undefined).length;
  if (daySpecs > 1) {
    throw new Refusal(
      'more than one kind of day (days of the week and of the month) — cron would run on either; pick one',
    );
  }
  if (parts.monthly && daySpecs === 0) {
    throw new Refusal('no day of the month — say which, like "monthly on the 1st at 9"');
  }
  if (parts.weekly && !parts.days) {
    throw new Refusal('no day of the week — say which, like "weekly on Monday at 9"');
  }
  if (parts.nthWeekday) {
    const { day, nth } = parts.nthWeekday;
    return { dayOfMonth: '*', dayOfWeek: nth === 'last' ? `${day}L` : `${day}#${nth}` };
  }
  if (parts.dayOfMonth !== undefined) {
    return { dayOfMonth: parts.dayOfMonth === 'last' ? 'L' : String(parts.dayOfMonth), dayOfWeek: '*' };
  }
  return { dayOfMonth: '*', dayOfWeek: parts.days ? dayOfWeekField(parts.days) : '*' };
}

function timeFields(parts: Parts): { minute: string; hour: string } {
  const { time, interval, window } = parts;
  if (time && interval) {
    throw new Refusal('not both — for a repeat within hours use a window, like "every 2 hours between 9 and 17"');
  }
  if (window && !interval) {
    throw new Refusal('no repeat for the window — say how often, like "every hour between 9 and 17"');
  }
  if (time) {
    const hasDays = parts.daily || parts.days || parts.nthWeekday || parts.dayOfMonth !== undefined;
    if (!hasDays) throw new Refusal('no days or repeat — say how often, like "every weekday at 9:00"');
    return { minute: String(time.minute), hour: String(time.hour) };
  }
  if (!interval) throw new Refusal('no time — say when, like "every Monday at 9:00"');
  if (window && (window.from.minute !== 0 || window.to.minute !== 0 || window.from.hour >= window.to.hour)) {
    throw new Refusal('a window must run forward over whole hours, like "between 9 and 17"');
  }
  return interval.unit === 'minute' ? minuteRepeat(interval.every, window) : hourRepeat(interval.every, window);
}

function minuteRepeat(every: number, window: Parts['window']): { minute: string; hour: string } {
  if (every < 1) throw new Refusal('that is not a repeat — use 1 or more');
  if (every >= 60 && every % 60 === 0) return hourRepeat(every / 60, window);
  if (60 % every !== 0) {
    throw new Refusal(
      'that cannot run evenly — cron restarts the count each hour; use 1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30 minutes, or whole hours',
    );
  }
  const minute = every === 1 ? '*' : `*/${every}`;
  if (!window) return { minute, hour: '*' };
  // The window's end is exclusive for minute repeats: cron cannot add the single run at 17:00 to "*/15 9-16".
  const lastHour = window.to.hour - 1;
  return { minute, hour: lastHour === window.from.hour ? String(lastHour) : `${window.from.hour}-${lastHour}` };
}

function hourRepeat(every: number, window: Parts['window']): { minute: string; hour: string } {
  if (every < 1) throw new Refusal('that is not a repeat — use 1 or more');
  if (window) {
    const span = window.to.hour - window.from.hour;
    if (every > span) throw new Refusal('that does not fit in the window — it would run once a day');
    const range = `${window.from.hour}-${window.to.hour}`;
    return { minute: '0', hour: every === 1 ? range : `${range}/${every}` };
  }
  if (every >= 24 || 24 % every !== 0) {
    throw new Refusal(
      'that cannot run evenly — cron restarts the count each day; use 1, 2, 3, 4, 6, 8 or 12 hours, or a time like "every day at 9:00"',
    );
  }
  return { minute: '0', hour: every === 1 ? '*' : `*/${every}` };
}

/** Splits a trailing "in Europe/Berlin" / "UTC" off the text; refuses abbreviations and unknown zones. */
function takeTimeZone(text: string): { rest: string; tz?: string } {
  const named = /(?:^|\s)(?:in\s+)?([A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)+|utc)\s*$/i.exec(text);
  if (named) {
    const tz = named[1] as string;
    if (!isValidTimeZone(tz))
      throw new Refusal(`"${tz}" is not a time zone I know — use an IANA name like Europe/Berlin`);
    return { rest: text.slice(0, named.index), tz: canonicalTimeZone(tz) };
  }
  const abbreviation = /\s(?:in\s+)?([A-Z]{2,5})\s*$/.exec(text);
  if (abbreviation && abbreviations.has(abbreviation[1] as string)) {
    throw new Refusal(
      `${abbreviation[1]} is an abbreviation that does not say when summer time applies — use an IANA name like Europe/Berlin or America/New_York`,
    );
  }
  return { rest: text };
}

/** Longest catch-up window a rule may ask for. */
const maxCatchUpWindowMs = 48 * 3_600_000;

/**
 * A trailing catch-up clause: ", no catch-up" (a missed tick is skipped) or ", catch up
 * within 2h" (the window in which the latest missed tick still runs).
 */
function takeCatchUp(text: string): { rest: string; catchUp?: Pick<ParsedRule, 'catchUp' | 'catchUpWindowMs'> } {
  const none = /[,;]?\s*(?:with\s+no|no|without|skip(?:ping)?)\s+catch[- ]?ups?\s*$/i.exec(text);
  if (none) return { rest: text.slice(0, none.index).trim(), catchUp: { catchUp: 'none' } };
  const within = /[,;]?\s*catch[- ]?up\s+(?:within|for|up\s+to)\s+(\d{1,4})\s*(h|hours?|m|mins?|minutes?)\s*$/i.exec(
    text,
  );
  if (!within) return { rest: text };
  const amount = Number(within[1]);
  const ms = amount * (/^h/i.test(within[2] ?? '') ? 3_600_000 : 60_000);
  if (ms <= 0 || ms > maxCatchUpWindowMs) throw new Refusal('a catch-up window must be between 1 minute and 48 hours');
  return { rest: text.slice(0, within.index).trim(), catchUp: { catchUp: 'latest', catchUpWindowMs: ms } };
}

/** Digits and cron punctuation only, starting like a minute field; names (MON-FRI) and H are left to the phrase parser. */
const looksLikeCron = (text: string) => {
  const tokens = text.trim().split(/\s+/);
  return tokens.length >= 4 && /^[\d*]/.test(tokens[0] ?? '') && tokens.every((t) => /^[\d*?,/#L-]+$/i.test(t));
};

function parseRawCron(text: string): string {
  const fields = text.trim().split(/\s+/);
  if (fields.length === 6)
    throw new Refusal('a cron expression with a seconds field — use 5 fields: minute hour day month weekday');
  if (fields.length !== 5)
    throw new Refusal(`a cron expression with ${fields.length} fields — use 5: minute hour day month weekday`);
  const pattern = fields.join(' ');
  try {
    // next() as well: patterns like "0 9 30 2 *" parse but can never run.
    CronExpressionParser.parse(pattern, { tz: 'UTC' }).next();
  } catch (err) {
    throw new Refusal(`the cron expression "${pattern}" is not valid (${(err as Error).message})`);
  }
  return pattern;
}

function refusal(understood: string): RuleParse {
  return { ok: false, understood, examples: [...ruleExamples] };
}

/** Deterministic parser for schedule phrases ("every weekday at 8:30 Europe/Berlin") and raw 5-field cron. */
export function parseScheduleRule(text: string): RuleParse {
  const parts: Parts = {};
  try {
    const { rest: beforeCatchUp, catchUp } = takeCatchUp(text.trim());
    const { rest, tz } = takeTimeZone(beforeCatchUp);
    const withZone = (pattern: string): RuleParse => ({
      ok: true,
      rule: { pattern, ...(tz ? { tz } : {}), words: describePattern(pattern), ...catchUp },
    });
    if (looksLikeCron(rest)) return withZone(parseRawCron(rest));

    const leftovers = recognise(rest, parts);
    const understood = describeParts(parts);
    if (!understood) return refusal(`nothing I recognise as a schedule in "${text.trim()}"`);
    if (leftovers.length > 0)
      return refusal(`${understood} but not "${leftovers.join(' ')}" — try one of the examples`);
    const { dayOfMonth, dayOfWeek } = daysFields(parts);
    const { minute, hour } = timeFields(parts);
    return withZone(`${minute} ${hour} ${dayOfMonth} * ${dayOfWeek}`);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const understood = describeParts(parts);
    return refusal(understood ? `${understood} but ${err.reason}` : err.reason);
  }
}

// ---------------------------------------------------------------------------
// Splitting a chat message

const scheduleStartRe = new RegExp(
  `^(?:every|each|daily|weekdays?|weekly|hourly|monthly|(?:on )?(?:the )?(?:first|second|third|fourth|last|1st|2nd|3rd|4th) ${dayPattern})\\b`,
  'i',
);

/** The first ':' that separates, skipping those inside times like 9:00. */
function separatorIndex(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== ':') continue;
    const next = text[i + 1] ?? '';
    const betweenDigits = /\d/.test(text[i - 1] ?? '') && /\d/.test(next);
    if (/\s/.test(next) || !betweenDigits) return i;
  }
  return -1;
}

/** Splits "every Monday 9:00 Europe/Berlin: write the brief" into when + request; undefined for other messages. */
export function splitScheduleMessage(text: string): { when: string; request: string } | undefined {
  const trimmed = text.trim();
  const at = separatorIndex(trimmed);
  if (at <= 0) return undefined;
  const when = trimmed.slice(0, at).trim();
  const request = trimmed.slice(at + 1).trim();
  if (!request || !(scheduleStartRe.test(when) || looksLikeCron(when.split(/\s+/).slice(0, 5).join(' ')))) {
    return undefined;
  }
  return { when, request };
}
