import { describe, expect, it } from 'vitest';
import {
  describePattern,
  formatRunTime,
  isValidTimeZone,
  latestRunAtOrBefore,
  nextRuns,
  parseScheduleRule,
  resolveTimeZone,
  ruleExamples,
  smallestIntervalMs,
  splitScheduleMessage,
} from '../../../src/core/schedule-rule.ts';

const hourMs = 60 * 60 * 1000;
const dayMs = 24 * hourMs;

function patternOf(text: string): string {
  const parsed = parseScheduleRule(text);
  if (!parsed.ok) throw new Error(`expected "${text}" to parse, got: ${parsed.understood}`);
  return parsed.rule.pattern;
}

function refusalOf(text: string): string {
  const parsed = parseScheduleRule(text);
  if (parsed.ok) throw new Error(`expected "${text}" to be refused, got ${parsed.rule.pattern}`);
  expect(parsed.examples).toEqual([...ruleExamples]);
  return parsed.understood;
}

/** The calendar day (YYYY-MM-DD) an instant falls on in a zone. */
function localDay(at: Date, tz: string): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
    at,
  );
}

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());

describe('parseScheduleRule', () => {
  it.each([
    ['every weekday at 8:30', '30 8 * * 1-5'],
    ['weekdays at 8:30', '30 8 * * 1-5'],
    ['Every Weekday at 8:30', '30 8 * * 1-5'],
    ['every weekend day at 10', '0 10 * * 0,6'],
    ['monday to friday at 9', '0 9 * * 1-5'],
    ['every Monday 9:00', '0 9 * * 1'],
    ['every monday at 9am', '0 9 * * 1'],
    ['every Mon, Wed and Fri at 17:00', '0 17 * * 1,3,5'],
    ['every Tuesday and Thursday at 14:15', '15 14 * * 2,4'],
    ['every Sunday at 6pm', '0 18 * * 0'],
    ['every day at 12pm', '0 12 * * *'],
    ['every day at 12am', '0 0 * * *'],
    ['every monday at noon', '0 12 * * 1'],
    ['every day at 7', '0 7 * * *'],
    ['daily at 7:15', '15 7 * * *'],
    ['every day at 07:00', '0 7 * * *'],
    ['every hour', '0 * * * *'],
    ['hourly', '0 * * * *'],
    ['every 2 hours', '0 */2 * * *'],
    ['every 120 minutes', '0 */2 * * *'],
    ['every 2 hours between 9 and 17', '0 9-17/2 * * *'],
    ['every hour between 9 and 17 on weekdays', '0 9-17 * * 1-5'],
    ['every 15 minutes', '*/15 * * * *'],
    ['every 30 min', '*/30 * * * *'],
    ['every minute', '* * * * *'],
    ['every 15 minutes between 8 and 18', '*/15 8-17 * * *'],
    ['every 30 minutes on weekdays', '*/30 * * * 1-5'],
    ['first Monday of the month at 9', '0 9 * * 1#1'],
    ['every first Monday of the month at 9:00', '0 9 * * 1#1'],
    ['on the first Monday of each month at 9', '0 9 * * 1#1'],
    ['second Tuesday of the month at 10', '0 10 * * 2#2'],
    ['third Wednesday of the month at 11', '0 11 * * 3#3'],
    ['fourth Thursday of the month at 12', '0 12 * * 4#4'],
    ['last Friday of the month at 16:00', '0 16 * * 5L'],
    ['every month on the 1st at 9', '0 9 1 * *'],
    ['on the 15th of every month at 10:30', '30 10 15 * *'],
    ['monthly on the 1st at 9', '0 9 1 * *'],
    ['last day of the month at 18:00', '0 18 L * *'],
    ['30 8 * * 1-5', '30 8 * * 1-5'],
    ['0 9 * * 1#1', '0 9 * * 1#1'],
    ['0  16 * *  5L', '0 16 * * 5L'],
  ])('reads "%s" as %s', (text, pattern) => {
    expect(patternOf(text)).toBe(pattern);
  });

  it('describes the rule in words, without the zone', () => {
    const parsed = parseScheduleRule('every weekday at 8:30 in America/New_York');
    expect(parsed).toEqual({
      ok: true,
      rule: { pattern: '30 8 * * 1-5', tz: 'America/New_York', words: 'every weekday (Mon–Fri) at 08:30' },
    });
  });

  it('takes a trailing IANA zone, with or without "in", and fixes its case', () => {
    const zoneOf = (text: string) => {
      const parsed = parseScheduleRule(text);
      return parsed.ok ? parsed.rule.tz : parsed.understood;
    };
    expect(zoneOf('every Monday 9:00 Europe/Berlin')).toBe('Europe/Berlin');
    expect(zoneOf('every day at 9 in utc')).toBe('UTC');
    expect(zoneOf('every day at 9 europe/berlin')).toBe('Europe/Berlin');
    expect(zoneOf('every day at 9')).toBeUndefined();
  });

  it('refuses zone abbreviations and unknown zones, naming them', () => {
    expect(refusalOf('every day at 9 CET')).toContain('CET is an abbreviation');
    expect(refusalOf('every day at 9 CET')).toContain('Europe/Berlin');
    expect(refusalOf('every day at 9 in Mars/Olympus')).toContain('"Mars/Olympus" is not a time zone');
  });

  it('says what it understood when a time has no days or repeat', () => {
    expect(refusalOf('at 9:00')).toBe(
      'a time (09:00) but no days or repeat — say how often, like "every weekday at 9:00"',
    );
  });

  it('says what it understood when days have no time', () => {
    expect(refusalOf('every monday')).toBe('days (Mon) but no time — say when, like "every Monday at 9:00"');
  });

  it('refuses times that are not times of day', () => {
    expect(refusalOf('every day at 25:00')).toContain('25:00 is not a time of day');
    expect(refusalOf('every monday at 9:75')).toContain('9:75 is not a time of day');
    expect(refusalOf('every monday at 13pm')).toContain('13pm is not a time of day');
  });

  it('refuses repeats cron cannot run evenly, and explains why', () => {
    expect(refusalOf('every 0 hours')).toContain('not a repeat');
    expect(refusalOf('every 7 minutes')).toContain('cannot run evenly — cron restarts the count each hour');
    expect(refusalOf('every 90 minutes')).toContain('cannot run evenly');
    expect(refusalOf('every 5 hours')).toContain('cannot run evenly — cron restarts the count each day');
    expect(refusalOf('every 2 weeks on monday at 9')).toContain('cron cannot repeat every few days, weeks or months');
    expect(refusalOf('every 12 hours between 9 and 17')).toContain('does not fit in the window');
  });

  it('accepts an hour repeat that does not divide the day when a window bounds it', () => {
    expect(patternOf('every 5 hours between 8 and 18')).toBe('0 8-18/5 * * *');
  });

  it('refuses days past the 28th, which would skip short months', () => {
    expect(refusalOf('on the 31st at 9')).toContain('not in every month');
  });

  it('refuses combinations cron would misread', () => {
    expect(refusalOf('every mon on the 1st at 9')).toContain('more than one kind of day');
    expect(refusalOf('every 2 hours at 9')).toContain('use a window');
    expect(refusalOf('every day between 9 and 17')).toContain('no repeat for the window');
    expect(refusalOf('monthly at 9')).toContain('no day of the month');
    expect(refusalOf('every monday at 9am and 5pm')).toContain('more than one time');
  });

  it('points at the words it did not understand', () => {
    expect(refusalOf('every day at 9 please')).toBe(
      'a time (09:00) and every day but not "please" — try one of the examples',
    );
    expect(refusalOf('whenever you like')).toBe('nothing I recognise as a schedule in "whenever you like"');
  });

  it('refuses cron with seconds, with the wrong number of fields, or that cron-parser rejects', () => {
    expect(refusalOf('0 0 9 * * *')).toContain('seconds field');
    expect(refusalOf('* * * *')).toContain('4 fields');
    expect(refusalOf('0 99 * * *')).toContain('is not valid');
    expect(refusalOf('0 9 30 2 *')).toContain('is not valid');
  });

  it('gives three examples that themselves parse', () => {
    expect(ruleExamples).toHaveLength(3);
    for (const example of ruleExamples) expect(parseScheduleRule(example).ok).toBe(true);
  });
});

describe('describePattern', () => {
  it.each([
    ['30 8 * * 1-5', 'every weekday (Mon–Fri) at 08:30'],
    ['0 9 * * 1', 'every Monday at 09:00'],
    ['0 17 * * 1,3,5', 'every Monday, Wednesday and Friday at 17:00'],
    ['0 10 * * 0,6', 'every weekend day (Sat–Sun) at 10:00'],
    ['0 9 * * 7', 'every Sunday at 09:00'],
    ['0 7 * * *', 'every day at 07:00'],
    ['0 9 * * 1#1', 'on the first Monday of each month at 09:00'],
    ['0 16 * * 5L', 'on the last Friday of each month at 16:00'],
    ['30 10 15 * *', 'on the 15th of each month at 10:30'],
    ['0 18 L * *', 'on the last day of each month at 18:00'],
    ['0 * * * *', 'every hour'],
    ['30 * * * *', 'every hour at 30 minutes past'],
    ['0 */2 * * *', 'every 2 hours'],
    ['0 9-17/2 * * *', 'every 2 hours from 09:00 to 17:00'],
    ['0 8-18/5 * * *', 'every 5 hours from 08:00 to 18:00'],
    ['0 9-16/2 * * *', 'every 2 hours from 09:00 to 15:00'],
    ['0 9-17 * * 1-5', 'every hour from 09:00 to 17:00 on weekdays (Mon–Fri)'],
    ['*/30 * * * *', 'every 30 minutes'],
    ['* * * * *', 'every minute'],
    ['*/15 8-17 * * *', 'every 15 minutes from 08:00 to 17:45'],
    ['*/30 * * * 1,3', 'every 30 minutes on Mondays and Wednesdays'],
  ])('describes %s as "%s"', (pattern, words) => {
    expect(describePattern(pattern)).toBe(words);
  });

  it.each(['*/7 * * * *', '0 */5 * * *', '0 9 1 * 1', '0 9 * 6 *', '0 9,17 * * *', '0 9 * * MON-FRI', '0 0 9 * * *'])(
    'falls back to the cron text for %s, rather than words that would be wrong',
    (pattern) => {
      expect(describePattern(pattern)).toBe(`on the cron schedule "${pattern}"`);
    },
  );
});

describe('time zones', () => {
  it('accepts IANA names and UTC, not abbreviations or made-up zones', () => {
    expect(isValidTimeZone('Europe/Berlin')).toBe(true);
    expect(isValidTimeZone('America/New_York')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(isValidTimeZone('CET')).toBe(false);
    expect(isValidTimeZone('PST')).toBe(false);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });

  it('prefers the given zone, then the channel, then the requester, then UTC', () => {
    const all = { given: 'Asia/Tokyo', channel: 'Europe/Berlin', requester: 'America/New_York' };
    expect(resolveTimeZone(all)).toEqual({ tz: 'Asia/Tokyo', source: 'given' });
    expect(resolveTimeZone({ ...all, given: undefined })).toEqual({ tz: 'Europe/Berlin', source: 'channel' });
    expect(resolveTimeZone({ requester: 'America/New_York' })).toEqual({ tz: 'America/New_York', source: 'requester' });
    expect(resolveTimeZone({})).toEqual({ tz: 'UTC', source: 'default' });
  });

  it('skips an invalid channel or requester zone', () => {
    expect(resolveTimeZone({ channel: 'CET', requester: 'Europe/Paris' })).toEqual({
      tz: 'Europe/Paris',
      source: 'requester',
    });
    expect(resolveTimeZone({ channel: 'Mars/Olympus', requester: 'PST' })).toEqual({ tz: 'UTC', source: 'default' });
  });

  it('throws for an invalid given zone, naming it and giving an example', () => {
    expect(() => resolveTimeZone({ given: 'CET', channel: 'Europe/Berlin' })).toThrow(
      /"CET" is not a time zone I know.*Europe\/Berlin/,
    );
  });
});

describe('nextRuns', () => {
  it('lists runs strictly after the start, in the zone', () => {
    // Monday 4 Jan 2027, exactly at a run time: that run is not included.
    const from = new Date('2027-01-04T08:30:00Z');
    expect(iso(nextRuns('30 8 * * 1-5', 'UTC', from, 5))).toEqual([
      '2027-01-05T08:30:00.000Z',
      '2027-01-06T08:30:00.000Z',
      '2027-01-07T08:30:00.000Z',
      '2027-01-08T08:30:00.000Z',
      '2027-01-11T08:30:00.000Z',
    ]);
    expect(iso(nextRuns('0 9 * * 1', 'Europe/Berlin', from, 1))).toEqual(['2027-01-11T08:00:00.000Z']);
  });

  it('runs "every 2 hours between 9 and 17" at 9, 11, 13, 15 and 17', () => {
    const runs = nextRuns(patternOf('every 2 hours between 9 and 17'), 'UTC', new Date('2027-01-04T00:00:00Z'), 6);
    expect(iso(runs)).toEqual([
      '2027-01-04T09:00:00.000Z',
      '2027-01-04T11:00:00.000Z',
      '2027-01-04T13:00:00.000Z',
      '2027-01-04T15:00:00.000Z',
      '2027-01-04T17:00:00.000Z',
      '2027-01-05T09:00:00.000Z',
    ]);
  });

  it('runs the first Monday and the last Friday of each month', () => {
    const from = new Date('2027-01-01T00:00:00Z');
    expect(iso(nextRuns('0 9 * * 1#1', 'UTC', from, 3))).toEqual([
      '2027-01-04T09:00:00.000Z',
      '2027-02-01T09:00:00.000Z',
      '2027-03-01T09:00:00.000Z',
    ]);
    expect(iso(nextRuns(patternOf('last Friday of the month at 16:00'), 'UTC', from, 3))).toEqual([
      '2027-01-29T16:00:00.000Z',
      '2027-02-26T16:00:00.000Z',
      '2027-03-26T16:00:00.000Z',
    ]);
  });

  describe('across daylight saving time in Europe/Berlin', () => {
    const tz = 'Europe/Berlin';

    it('runs a 02:30 schedule once on the spring-forward day, at 03:30 local', () => {
      const runs = nextRuns('30 2 * * *', tz, new Date('2027-03-26T12:00:00Z'), 4);
      const onTheDay = runs.filter((r) => localDay(r, tz) === '2027-03-28');
      expect(iso(onTheDay)).toEqual(['2027-03-28T01:30:00.000Z']);
      expect(formatRunTime(onTheDay[0]!, tz)).toBe('Sun 28 Mar 2027, 03:30 CEST');
    });

    it('runs a 02:30 schedule once on the fall-back day, at the first 02:30', () => {
      const runs = nextRuns('30 2 * * *', tz, new Date('2027-10-29T12:00:00Z'), 4);
      const onTheDay = runs.filter((r) => localDay(r, tz) === '2027-10-31');
      expect(iso(onTheDay)).toEqual(['2027-10-31T00:30:00.000Z']);
      expect(formatRunTime(onTheDay[0]!, tz)).toBe('Sun 31 Oct 2027, 02:30 CEST');
    });
  });
});

describe('latestRunAtOrBefore', () => {
  it('includes a run exactly at the given time', () => {
    const at = new Date('2027-01-04T08:30:00Z');
    expect(latestRunAtOrBefore('30 8 * * 1-5', 'UTC', at)?.toISOString()).toBe('2027-01-04T08:30:00.000Z');
  });

  it('finds the last run before the given time, skipping the weekend', () => {
    const at = new Date('2027-01-04T08:29:59Z');
    expect(latestRunAtOrBefore('30 8 * * 1-5', 'UTC', at)?.toISOString()).toBe('2027-01-01T08:30:00.000Z');
  });

  it('finds the shifted spring-forward run that cron-parser prev() alone skips', () => {
    const at = new Date('2027-03-28T12:00:00Z');
    expect(latestRunAtOrBefore('30 2 * * *', 'Europe/Berlin', at)?.toISOString()).toBe('2027-03-28T01:30:00.000Z');
  });
});

describe('smallestIntervalMs', () => {
  const from = new Date('2027-01-01T00:00:00Z');

  it('is one day for a weekday schedule', () => {
    expect(smallestIntervalMs(patternOf('every weekday at 8:30'), 'UTC', from)).toBe(dayMs);
  });

  it('counts the 23-hour day when the clocks go forward (a Sunday, so only for daily schedules)', () => {
    expect(smallestIntervalMs(patternOf('every day at 8:30'), 'Europe/Berlin', from)).toBe(dayMs - hourMs);
    expect(smallestIntervalMs(patternOf('every weekday at 8:30'), 'Europe/Berlin', from)).toBe(dayMs);
  });

  it('is two hours for "every 2 hours between 9 and 17"', () => {
    expect(smallestIntervalMs(patternOf('every 2 hours between 9 and 17'), 'Europe/Berlin', from)).toBe(2 * hourMs);
  });

  it('is one minute for "every minute"', () => {
    expect(smallestIntervalMs(patternOf('every minute'), 'UTC', from)).toBe(60_000);
  });

  it('is infinite for a schedule that runs once in the coming year', () => {
    expect(smallestIntervalMs('0 9 29 2 *', 'UTC', from)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('formatRunTime', () => {
  it('shows the day, date, time and zone abbreviation in the zone', () => {
    const at = new Date('2026-12-07T08:00:00Z');
    expect(formatRunTime(at, 'Europe/Berlin')).toBe('Mon 7 Dec 2026, 09:00 CET');
    expect(formatRunTime(at, 'America/New_York')).toBe('Mon 7 Dec 2026, 03:00 EST');
    expect(formatRunTime(at, 'UTC')).toBe('Mon 7 Dec 2026, 08:00 UTC');
    expect(formatRunTime(at, 'Asia/Tokyo')).toBe('Mon 7 Dec 2026, 17:00 GMT+9');
  });

  it('shows midnight as 00:00 on the new day', () => {
    expect(formatRunTime(new Date('2026-09-30T22:00:00Z'), 'Europe/Berlin')).toBe('Thu 1 Oct 2026, 00:00 CEST');
  });
});

describe('splitScheduleMessage', () => {
  it('splits at the colon after the zone, not the one inside 9:00', () => {
    expect(splitScheduleMessage('every Monday 9:00 Europe/Berlin: post the sales brief')).toEqual({
      when: 'every Monday 9:00 Europe/Berlin',
      request: 'post the sales brief',
    });
  });

  it.each([
    ['weekdays at 8:30: summarise yesterday', 'weekdays at 8:30', 'summarise yesterday'],
    ['Daily at 7: check the inbox', 'Daily at 7', 'check the inbox'],
    ['hourly: check the queue', 'hourly', 'check the queue'],
    ['each Friday at 16:00: weekly report', 'each Friday at 16:00', 'weekly report'],
    ['On the first Monday of the month at 9: board pack', 'On the first Monday of the month at 9', 'board pack'],
    ['first Monday at 9:board pack', 'first Monday at 9', 'board pack'],
    ['0 9 * * 1-5: standup notes', '0 9 * * 1-5', 'standup notes'],
  ])('splits "%s"', (text, when, request) => {
    expect(splitScheduleMessage(text)).toEqual({ when, request });
  });

  it.each(['please summarise this: thanks', 'every day at 9:00', 'every day at 9:   ', 'Summary: every Monday at 9'])(
    'leaves "%s" alone',
    (text) => {
      expect(splitScheduleMessage(text)).toBeUndefined();
    },
  );
});

describe('catch-up clauses', () => {
  it('reads ", no catch-up" and ", catch up within 2h" after the rule and its zone', () => {
    const none = parseScheduleRule('every weekday at 8:30 Europe/Berlin, no catch-up');
    expect(none).toMatchObject({ ok: true, rule: { pattern: '30 8 * * 1-5', tz: 'Europe/Berlin', catchUp: 'none' } });
    expect(parseScheduleRule('every day at 7 without catch up')).toMatchObject({ ok: true, rule: { catchUp: 'none' } });
    const within = parseScheduleRule('every hour, catch up within 2h');
    expect(within).toMatchObject({
      ok: true,
      rule: { pattern: '0 * * * *', catchUp: 'latest', catchUpWindowMs: 7_200_000 },
    });
    expect(parseScheduleRule('every day at 7; catch-up within 90 minutes')).toMatchObject({
      ok: true,
      rule: { catchUpWindowMs: 5_400_000 },
    });
    expect(parseScheduleRule('every day at 7')).toMatchObject({ ok: true });
    expect((parseScheduleRule('every day at 7') as { rule: object }).rule).not.toHaveProperty('catchUp');
  });

  it('refuses a window past 48 hours, saying why', () => {
    const r = parseScheduleRule('every day at 7, catch up within 72h');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.understood).toMatch(/between 1 minute and 48 hours/);
  });
});
