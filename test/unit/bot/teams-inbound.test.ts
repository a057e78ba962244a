import { describe, expect, it } from 'vitest';
import { cleanText } from '../../../src/bot/surfaces/teams/teams-app.ts';
import { HostAllowlist } from '../../../src/bot/surfaces/teams/teams-auth.ts';
import { shareId } from '../../../src/bot/surfaces/teams/teams-files.ts';

describe('HostAllowlist', () => {
  const list = new HostAllowlist(['smba.trafficmanager.net', '*.botframework.com', 'http://127.0.0.1:3978']);

  it('allows the listed hosts over HTTPS, any path', () => {
    expect(list.allows('https://smba.trafficmanager.net/amer/')).toBe(true);
    expect(list.allows('https://europe.webchat.botframework.com/')).toBe(true);
    expect(list.allows('http://127.0.0.1:3978/')).toBe(true);
  });

  it('refuses other schemes, hosts that merely end alike, ports of an exact origin, and credentials', () => {
    expect(list.allows('http://smba.trafficmanager.net/amer/')).toBe(false);
    expect(list.allows('https://evilsmba.trafficmanager.net/')).toBe(false);
    expect(list.allows('https://botframework.com.evil.example/')).toBe(false);
    expect(list.allows('https://evilbotframework.com/')).toBe(false);
    expect(list.allows('http://127.0.0.1:3979/')).toBe(false);
    expect(list.allows('https://user:pw@smba.trafficmanager.net/')).toBe(false);
    expect(list.allows('not a url')).toBe(false);
    expect(list.allows(undefined)).toBe(false);
  });

  it('names the refused host and says nothing was sent', () => {
    expect(() => list.check('https://attacker.example/x', 'the Bot Connector service URL')).toThrow(
      /"attacker\.example" is not on the allowlist; nothing was sent there/,
    );
  });
});

describe('cleanText', () => {
  it('drops the bot mention, keeps other people’s names, strips tags and decodes entities', () => {
    expect(cleanText('<at>Handoff</at> summarise <at>Ana Lopez</at>&#39;s notes &amp; the Q3 &lt;draft&gt;')).toBe(
      "summarise Ana Lopez's notes & the Q3 <draft>",
    );
    expect(cleanText('<p><at>Handoff</at>&nbsp;one</p><p>two</p>')).toBe('one\ntwo');
  });
});

describe('shareId', () => {
  it('is u! and the unpadded base64url of the sharing URL, as Graph documents', () => {
    const url = 'https://contoso.sharepoint.com/sites/fin/Shared Documents/q3.xlsx?a=1';
    const id = shareId(url);
    expect(id.startsWith('u!')).toBe(true);
    expect(id).not.toMatch(/[=+/]/);
    expect(Buffer.from(id.slice(2), 'base64url').toString('utf8')).toBe(url);
  });
});
