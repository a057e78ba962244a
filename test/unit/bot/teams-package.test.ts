import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, inflateSync } from 'node:zlib';
import { strFromU8, unzipSync } from 'fflate';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  encodePng,
  pngIcon,
  type TeamsPackageInput,
  teamsAppPackage,
  teamsManifest,
} from '../../../src/bot/surfaces/teams/app-package.ts';
import { teamsCommand } from '../../../src/bot/surfaces/teams/package-cli.ts';
import { HandoffError } from '../../../src/core/index.ts';

const appId = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const host = 'handoff.example.com';
const packageVersion = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
const input: TeamsPackageInput = { appId, host, version: packageVersion };

// Copied by hand from MicrosoftTeams.schema.json v1.30 (developer.microsoft.com/json-schemas/teams/v1.30), so
// these checks do not share a mistake with the code under test. Titles of bot commands are held to 32
// characters, the limit Teams documents for the command menu (the schema itself allows 128).
const schemaUrl = 'https://developer.microsoft.com/json-schemas/teams/v1.30/MicrosoftTeams.schema.json';
const guid = /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;
const semver = /^([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)\.([0-9]|[1-9]+[0-9]*)$/;
const hexColor = /^#[0-9a-fA-F]{6}$/;
const httpsUrl = /^https:\/\//i;

type Json = Record<string, unknown>;

/** Every way `m` breaks the rules of the schema for the parts a bot's manifest uses. */
function manifestProblems(m: Json): string[] {
  const problems: string[] = [];
  const obj = (at: string, v: unknown, allowed: string[], required: string[]): Json => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      problems.push(`${at} is not an object`);
      return {};
    }
    for (const k of Object.keys(v)) if (!allowed.includes(k)) problems.push(`${at}.${k} is not allowed`);
    for (const k of required) if (!(k in v)) problems.push(`${at}.${k} is missing`);
    return v as Json;
  };
  const str = (at: string, v: unknown, max: number, pattern?: RegExp): void => {
    if (v === undefined) return;
    if (typeof v !== 'string') {
      problems.push(`${at} is not a string`);
      return;
    }
    if (v.length > max) problems.push(`${at} is longer than ${max}`);
    if (pattern && !pattern.test(v)) problems.push(`${at} does not match ${pattern}`);
  };
  const arr = (at: string, v: unknown, max: number, min = 0): unknown[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      problems.push(`${at} is not an array`);
      return [];
    }
    if (v.length > max) problems.push(`${at} has more than ${max} items`);
    if (v.length < min) problems.push(`${at} has fewer than ${min} items`);
    return v;
  };
  const oneOf = (at: string, v: unknown, allowed: unknown[]) => {
    if (!allowed.includes(v)) problems.push(`${at} is ${JSON.stringify(v)}, not one of ${JSON.stringify(allowed)}`);
  };
  const bool = (at: string, v: unknown) => {
    if (v !== undefined && typeof v !== 'boolean') problems.push(`${at} is not a boolean`);
  };

  const root = obj(
    '',
    m,
    [
      '$schema',
      'manifestVersion',
      'version',
      'id',
      'developer',
      'name',
      'description',
      'icons',
      'accentColor',
      'bots',
      'composeExtensions',
      'permissions',
      'validDomains',
      'webApplicationInfo',
      'authorization',
    ],
    ['manifestVersion', 'version', 'id', 'developer', 'name', 'description', 'icons', 'accentColor'],
  );
  oneOf('$schema', root.$schema, [schemaUrl]);
  oneOf('manifestVersion', root.manifestVersion, ['1.30']);
  str('version', root.version, 256, semver);
  str('id', root.id, 100, guid);
  const dev = obj(
    'developer',
    root.developer,
    ['name', 'mpnId', 'websiteUrl', 'privacyUrl', 'termsOfUseUrl'],
    ['name', 'websiteUrl', 'privacyUrl', 'termsOfUseUrl'],
  );
  str('developer.name', dev.name, 32);
  for (const k of ['websiteUrl', 'privacyUrl', 'termsOfUseUrl']) str(`developer.${k}`, dev[k], 2048, httpsUrl);
  const name = obj('name', root.name, ['short', 'full'], ['short']);
  str('name.short', name.short, 30);
  str('name.full', name.full, 100);
  const description = obj('description', root.description, ['short', 'full', 'features'], ['short', 'full']);
  str('description.short', description.short, 80);
  str('description.full', description.full, 4000);
  const icons = obj('icons', root.icons, ['outline', 'color', 'color32x32'], ['outline', 'color']);
  str('icons.outline', icons.outline, 2048);
  str('icons.color', icons.color, 2048);
  str('accentColor', root.accentColor, 7, hexColor);

  arr('bots', root.bots, 1).forEach((b, i) => {
    const at = `bots[${i}]`;
    const bot = obj(
      at,
      b,
      ['botId', 'scopes', 'supportsFiles', 'isNotificationOnly', 'commandLists', 'needsChannelSelector'],
      ['botId', 'scopes'],
    );
    str(`${at}.botId`, bot.botId, 100, guid);
    for (const s of arr(`${at}.scopes`, bot.scopes, 4)) oneOf(`${at}.scopes`, s, ['team', 'personal', 'groupChat']);
    bool(`${at}.supportsFiles`, bot.supportsFiles);
    bool(`${at}.isNotificationOnly`, bot.isNotificationOnly);
    arr(`${at}.commandLists`, bot.commandLists, 3).forEach((l, j) => {
      const lat = `${at}.commandLists[${j}]`;
      const list = obj(lat, l, ['scopes', 'commands'], ['scopes', 'commands']);
      for (const s of arr(`${lat}.scopes`, list.scopes, 4))
        oneOf(`${lat}.scopes`, s, ['team', 'personal', 'groupChat']);
      arr(`${lat}.commands`, list.commands, 12).forEach((c, k) => {
        const command = obj(`${lat}.commands[${k}]`, c, ['title', 'description'], ['title']);
        str(`${lat}.commands[${k}].title`, command.title, 32);
        str(`${lat}.commands[${k}].description`, command.description, 128);
      });
    });
  });

  arr('composeExtensions', root.composeExtensions, 1).forEach((e, i) => {
    const at = `composeExtensions[${i}]`;
    const ext = obj(at, e, ['id', 'botId', 'composeExtensionType', 'commands'], []);
    str(`${at}.botId`, ext.botId, 100, guid);
    arr(`${at}.commands`, ext.commands, 10).forEach((c, j) => {
      const cat = `${at}.commands[${j}]`;
      const command = obj(
        cat,
        c,
        ['id', 'type', 'title', 'description', 'context', 'fetchTask', 'parameters', 'initialRun'],
        ['id', 'title'],
      );
      str(`${cat}.id`, command.id, 64);
      oneOf(`${cat}.type`, command.type, ['query', 'action']);
      str(`${cat}.title`, command.title, 32);
      str(`${cat}.description`, command.description, 128);
      for (const x of arr(`${cat}.context`, command.context, 3))
        oneOf(`${cat}.context`, x, ['compose', 'commandBox', 'message']);
      bool(`${cat}.fetchTask`, command.fetchTask);
      arr(`${cat}.parameters`, command.parameters, 5, 1).forEach((p, k) => {
        const pat = `${cat}.parameters[${k}]`;
        const param = obj(
          pat,
          p,
          ['name', 'title', 'description', 'inputType', 'isRequired', 'value'],
          ['name', 'title'],
        );
        str(`${pat}.name`, param.name, 64);
        str(`${pat}.title`, param.title, 32);
        str(`${pat}.description`, param.description, 128);
        oneOf(`${pat}.inputType`, param.inputType, [
          'text',
          'textarea',
          'number',
          'date',
          'time',
          'toggle',
          'choiceset',
        ]);
      });
    });
  });

  for (const p of arr('permissions', root.permissions, 2)) oneOf('permissions', p, ['identity', 'messageTeamMembers']);
  if (root.webApplicationInfo !== undefined) {
    const web = obj('webApplicationInfo', root.webApplicationInfo, ['id', 'resource'], ['id']);
    str('webApplicationInfo.id', web.id, 100, guid);
    str('webApplicationInfo.resource', web.resource, 2048);
  }
  if (root.authorization !== undefined) {
    const auth = obj('authorization', root.authorization, ['permissions'], []);
    const perms = obj('authorization.permissions', auth.permissions, ['resourceSpecific'], []);
    arr('authorization.permissions.resourceSpecific', perms.resourceSpecific, 16).forEach((r, i) => {
      const at = `authorization.permissions.resourceSpecific[${i}]`;
      const rsc = obj(at, r, ['name', 'type'], ['name', 'type']);
      str(`${at}.name`, rsc.name, 128);
      oneOf(`${at}.type`, rsc.type, ['Application', 'Delegated']);
    });
  }
  for (const d of arr('validDomains', root.validDomains, 100)) {
    str('validDomains[]', d, 2048);
    if (typeof d === 'string' && /[:/\s]/.test(d))
      problems.push(`validDomains has ${JSON.stringify(d)}, not a bare host`);
  }
  return problems;
}

interface DecodedPng {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  pixels: Uint8Array;
}

/** Reads a PNG as a viewer would, checking the signature, every chunk's CRC and the row filters. */
function decodePng(png: Uint8Array): DecodedPng {
  const bytes = Buffer.from(png);
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  let at = 8;
  let header: Buffer | undefined;
  const idat: Buffer[] = [];
  let ended = false;
  while (at < bytes.length) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.subarray(at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    expect(bytes.readUInt32BE(at + 8 + length), `CRC of ${type}`).toBe(crc32(data, crc32(type)));
    const name = type.toString('ascii');
    if (name === 'IHDR') header = data;
    if (name === 'IDAT') idat.push(data);
    if (name === 'IEND') ended = true;
    at += 12 + length;
  }
  expect(ended).toBe(true);
  if (!header) throw new Error('no IHDR');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  expect(raw.length).toBe((stride + 1) * height);
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    expect(raw[y * (stride + 1)], `filter of row ${y}`).toBe(0);
    pixels.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * stride);
  }
  return { width, height, bitDepth: header[8]!, colorType: header[9]!, pixels };
}

function pixel(png: DecodedPng, x: number, y: number): number[] {
  const at = (y * png.width + x) * 4;
  return [...png.pixels.subarray(at, at + 4)];
}

function unpack(zip: Uint8Array): { files: string[]; manifest: Json; color: DecodedPng; outline: DecodedPng } {
  const entries = unzipSync(zip);
  return {
    files: Object.keys(entries).sort(),
    manifest: JSON.parse(strFromU8(entries['manifest.json']!)) as Json,
    color: decodePng(entries['color.png']!),
    outline: decodePng(entries['outline.png']!),
  };
}

describe('Teams app package', () => {
  it('holds manifest.json, color.png and outline.png at the root of the zip, the icons the manifest names', () => {
    const { files, manifest } = unpack(teamsAppPackage(input));
    expect(files).toEqual(['color.png', 'manifest.json', 'outline.png']);
    expect(manifest.icons).toEqual({ color: 'color.png', outline: 'outline.png' });
  });

  it('writes a manifest that keeps every rule of the 1.30 schema it touches', () => {
    const { manifest } = unpack(teamsAppPackage(input));
    expect(manifestProblems(manifest)).toEqual([]);
    expect(manifest.$schema).toBe(schemaUrl);
    expect(manifest.manifestVersion).toBe('1.30');
    expect(manifest.version).toBe(packageVersion);
  });

  it('asks for resource-specific consent to read channel messages, so a mention can take its thread along', () => {
    // Reading a channel thread through Graph (thread context) needs ChannelMessage.Read.Group,
    // granted per team when it adds the app; RSC requires webApplicationInfo with the app id.
    const m = teamsManifest(input);
    expect(m.webApplicationInfo.id).toBe(appId);
    expect(m.webApplicationInfo.resource.length).toBeGreaterThan(0);
    expect(m.authorization).toEqual({
      permissions: { resourceSpecific: [{ name: 'ChannelMessage.Read.Group', type: 'Application' }] },
    });
  });

  it('the rule check above finds broken manifests', () => {
    const m = structuredClone(teamsManifest(input)) as unknown as Json & {
      name: Json;
      bots: Array<Json & { commandLists: Array<{ commands: Json[] }> }>;
      composeExtensions: Array<{ commands: Json[] }>;
    };
    m.name.short = 'x'.repeat(31);
    m.extra = true;
    m.bots[0]!.botId = 'not-a-guid';
    m.bots[0]!.commandLists[0]!.commands[0]!.description = 'd'.repeat(129);
    m.composeExtensions[0]!.commands[0]!.title = 't'.repeat(33);
    m.validDomains = ['https://handoff.example.com/'];
    (m as Json).authorization = {
      permissions: { resourceSpecific: [{ name: 'ChannelMessage.Read.Group', type: 'App' }] },
    };
    expect(manifestProblems(m)).toEqual([
      '.extra is not allowed',
      'name.short is longer than 30',
      `bots[0].botId does not match ${guid}`,
      'bots[0].commandLists[0].commands[0].description is longer than 128',
      'composeExtensions[0].commands[0].title is longer than 32',
      'authorization.permissions.resourceSpecific[0].type is "App", not one of ["Application","Delegated"]',
      'validDomains has "https://handoff.example.com/", not a bare host',
    ]);
  });

  it('uses the app id for the app, the bot and the message action, and the host as the only valid domain', () => {
    const m = teamsManifest(input);
    expect(m.id).toBe(appId);
    expect(m.bots).toHaveLength(1);
    expect(m.bots[0]!.botId).toBe(appId);
    expect(m.composeExtensions[0]!.botId).toBe(appId);
    expect(m.validDomains).toEqual([host]);
    expect(m.permissions).toEqual(['identity', 'messageTeamMembers']);
    expect(m.developer).toEqual({
      name: 'Handoff',
      websiteUrl: 'https://handoff.example.com/',
      privacyUrl: 'https://handoff.example.com/privacy',
      termsOfUseUrl: 'https://handoff.example.com/terms',
    });
    expect(m.accentColor).toMatch(hexColor);
  });

  it('is a conversational bot in personal chats, teams and group chats, with help and schedule commands in each', () => {
    const bot = teamsManifest(input).bots[0]!;
    expect(bot.scopes).toEqual(['personal', 'team', 'groupChat']);
    expect(bot.supportsFiles).toBe(true);
    expect(bot.isNotificationOnly).toBe(false);
    for (const scope of ['personal', 'team', 'groupChat'] as const) {
      const list = bot.commandLists.find((l) => l.scopes.includes(scope));
      expect(
        list?.commands.map((c) => c.title),
        scope,
      ).toEqual(['help', 'schedules', 'schedule']);
      for (const c of list!.commands) expect(c.description.length).toBeGreaterThan(0);
    }
  });

  it('offers "Hand off…" on any message, asking what should be done', () => {
    expect(teamsManifest(input).composeExtensions[0]!.commands).toEqual([
      {
        id: 'handoff',
        type: 'action',
        title: 'Hand off…',
        description: expect.stringMatching(/\S/),
        context: ['message'],
        fetchTask: false,
        parameters: [
          {
            name: 'request',
            title: 'What should be done?',
            description: expect.stringMatching(/\S/),
            inputType: 'textarea',
          },
        ],
      },
    ]);
  });

  it('takes the name and the developer pages the admin gives, within the limits', () => {
    const name = 'Contoso Ops Assistant 2026 abc'; // 30 characters, the most Teams allows
    const m = teamsManifest({
      ...input,
      name,
      websiteUrl: 'https://contoso.example/',
      privacyUrl: 'https://contoso.example/privacy',
      termsOfUseUrl: 'https://contoso.example/terms',
    });
    expect(m.name.short).toBe(name);
    expect(m.name.full.startsWith(name)).toBe(true);
    expect(manifestProblems(m as unknown as Json)).toEqual([]);
    expect(m.developer).toMatchObject({
      websiteUrl: 'https://contoso.example/',
      privacyUrl: 'https://contoso.example/privacy',
      termsOfUseUrl: 'https://contoso.example/terms',
    });
    expect(() => teamsManifest({ ...input, name: `${name}d` })).toThrow(/name .*30 characters/);
    expect(() => teamsManifest({ ...input, name: '   ' })).toThrow(/name is empty/);
  });

  it('lower-cases the app id and the host', () => {
    const m = teamsManifest({ ...input, appId: appId.toUpperCase(), host: 'Handoff.Example.COM' });
    expect(m.id).toBe(appId);
    expect(m.validDomains).toEqual(['handoff.example.com']);
  });

  it.each([
    ['', 'empty'],
    ['handoff', 'a word'],
    ['3f2504e04f8941d39a0c0305e82c3301', 'no dashes'],
    [`{${appId}}`, 'braces'],
    ['3f2504e0-4f89-41d3-9a0c-0305e82c330', 'one digit short'],
    ['3f2504e0-4f89-41d3-9a0c-0305e82c330g', 'not hex'],
    ['00000000-0000-0000-0000-000000000000', 'the all-zero placeholder'],
  ])('refuses the app id %j (%s)', (bad) => {
    let error: unknown;
    try {
      teamsManifest({ ...input, appId: bad });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(HandoffError);
    expect((error as HandoffError).code).toBe('handoff_invalid_input');
    expect((error as HandoffError).message).toMatch(/appId (must be a GUID|is the all-zero GUID)/);
  });

  it.each([
    ['', /empty/],
    ['https://handoff.example.com', /scheme/],
    ['handoff.example.com/api/messages', /path/],
    ['handoff example.com', /space/],
    [' handoff.example.com', /space/],
    ['handoff.example.com:8443', /port/],
    ['*.example.com', /wildcard/],
    ['10.0.0.1', /IP address/],
    ['[::1]', /IP address/],
    ['localhost', /fully qualified/],
    ['-bad.example.com', /not a valid hostname/],
    ['handoff.example.com.', /not a valid hostname/],
    ['bücher.example', /xn--/],
    ['user@handoff.example.com', /user name/],
  ])('refuses the host %j', (bad, why) => {
    expect(() => teamsManifest({ ...input, host: bad })).toThrow(HandoffError);
    expect(() => teamsManifest({ ...input, host: bad })).toThrow(why);
  });

  it.each(['handoff.example.com', 'bot.eu.contoso.example', 'xn--bcher-kva.example', 'a-b.c-d.example.org'])(
    'accepts the host %j',
    (good) => {
      expect(teamsManifest({ ...input, host: good }).validDomains).toEqual([good]);
    },
  );

  it.each([
    ['websiteUrl', 'http://contoso.example/'],
    ['privacyUrl', 'contoso.example/privacy'],
    ['termsOfUseUrl', `https://contoso.example/${'t'.repeat(2048)}`],
  ] as const)('refuses %s %j', (field, bad) => {
    expect(() => teamsManifest({ ...input, [field]: bad })).toThrow(new RegExp(field));
  });

  it('refuses a version that is not MAJOR.MINOR.PATCH', () => {
    expect(() => teamsManifest({ ...input, version: '1.2' })).toThrow(/version/);
    expect(() => teamsManifest({ ...input, version: '1.2.0-rc.1' })).toThrow(/version/);
  });
});

describe('Teams app icons', () => {
  it('colour icon: 192×192 RGBA, the white mark on the accent colour, corners rounded off', () => {
    const { color } = unpack(teamsAppPackage(input));
    expect([color.width, color.height, color.bitDepth, color.colorType]).toEqual([192, 192, 8, 6]);
    expect(pixel(color, 0, 0)[3]).toBe(0); // rounded corner
    expect(pixel(color, 96, 20)).toEqual([0x1f, 0x2a, 0x44, 255]); // background, outside the mark
    expect(pixel(color, 66, 96)).toEqual([255, 255, 255, 255]); // inside the dot of the mark
    const colours = new Set<string>();
    for (let i = 0; i < color.pixels.length; i += 4) {
      if (color.pixels[i + 3] === 255) colours.add(`${color.pixels[i]},${color.pixels[i + 1]},${color.pixels[i + 2]}`);
    }
    expect(colours.has('31,42,68')).toBe(true);
    expect(colours.has('255,255,255')).toBe(true);
  });

  it('colour icon takes the accent colour it is given', () => {
    const color = decodePng(pngIcon('color', '#C0FFEE'));
    expect(pixel(color, 96, 20)).toEqual([0xc0, 0xff, 0xee, 255]);
    expect(() => pngIcon('color', 'red')).toThrow(/#RRGGBB/);
  });

  it('outline icon: 32×32 RGBA, only white pixels, the mark opaque and the rest transparent', () => {
    const { outline } = unpack(teamsAppPackage(input));
    expect([outline.width, outline.height, outline.bitDepth, outline.colorType]).toEqual([32, 32, 8, 6]);
    let opaque = 0;
    let transparent = 0;
    for (let i = 0; i < outline.pixels.length; i += 4) {
      const [r, g, b, a] = outline.pixels.subarray(i, i + 4);
      if (a !== 0) expect([r, g, b], `pixel ${i / 4}`).toEqual([255, 255, 255]);
      if (a === 255) opaque++;
      if (a === 0) transparent++;
    }
    expect(opaque).toBeGreaterThan(100);
    expect(transparent).toBeGreaterThan(400);
    expect(pixel(outline, 0, 0)[3]).toBe(0);
    expect(pixel(outline, 6, 16)).toEqual([255, 255, 255, 255]); // the dot
  });

  it('encodes any RGBA pixels so that they decode back unchanged', () => {
    const pixels = new Uint8Array(5 * 3 * 4).map((_, i) => (i * 37 + 11) % 256);
    const png = decodePng(encodePng(5, 3, pixels));
    expect([png.width, png.height, png.colorType]).toEqual([5, 3, 6]);
    expect([...png.pixels]).toEqual([...pixels]);
    expect(() => encodePng(5, 3, pixels.subarray(1))).toThrow(HandoffError);
  });
});

class Recorder {
  readonly logs: string[] = [];
  readonly errors: string[] = [];
  log(line: string): void {
    this.logs.push(line);
  }
  error(line: string): void {
    this.errors.push(line);
  }
  get stdout(): string {
    return this.logs.join('\n');
  }
  get stderr(): string {
    return this.errors.join('\n');
  }
}

describe('handoff teams package', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'handoff-teams-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the package and says what to do next', async () => {
    const file = join(dir, 'app.zip');
    const out = new Recorder();
    const code = await teamsCommand(['package', '--app-id', appId, '--host', host, '--out', file], out);
    expect(out.stderr).toBe('');
    expect(code).toBe(0);
    const { files, manifest } = unpack(readFileSync(file));
    expect(files).toEqual(['color.png', 'manifest.json', 'outline.png']);
    expect(manifest.id).toBe(appId);
    expect(manifest.version).toBe(packageVersion);
    expect(manifestProblems(manifest)).toEqual([]);
    expect(out.stdout).toContain(file);
    expect(out.stdout).toContain('Upload an app');
    expect(out.stdout).toContain('https://handoff.example.com/api/messages');
    expect(out.stdout).toContain(`TEAMS_APP_ID=${appId}`);
    expect(out.stdout).toContain('TEAMS_APP_PASSWORD=');
    expect(out.stdout).toContain('TEAMS_TENANT_ID=');
  });

  it('passes --name, --website, --privacy and --terms into the manifest', async () => {
    const file = join(dir, 'app.zip');
    const args = ['package', '--app-id', appId, '--host', host, '--out', file, '--name', 'Ops Bot'];
    args.push(
      '--website',
      'https://ops.example/',
      '--privacy',
      'https://ops.example/p',
      '--terms',
      'https://ops.example/t',
    );
    expect(await teamsCommand(args, new Recorder())).toBe(0);
    const { manifest } = unpack(readFileSync(file));
    expect((manifest.name as Json).short).toBe('Ops Bot');
    expect(manifest.developer).toMatchObject({
      websiteUrl: 'https://ops.example/',
      privacyUrl: 'https://ops.example/p',
      termsOfUseUrl: 'https://ops.example/t',
    });
  });

  it('writes ./handoff-teams.zip when no --out is given', async () => {
    const before = process.cwd();
    process.chdir(dir);
    try {
      expect(await teamsCommand(['package', '--app-id', appId, '--host', host], new Recorder())).toBe(0);
    } finally {
      process.chdir(before);
    }
    expect(Object.keys(unzipSync(readFileSync(join(dir, 'handoff-teams.zip')))).sort()).toEqual([
      'color.png',
      'manifest.json',
      'outline.png',
    ]);
  });

  it('refuses to overwrite a file unless --force is given', async () => {
    const file = join(dir, 'app.zip');
    writeFileSync(file, 'keep me');
    const out = new Recorder();
    expect(await teamsCommand(['package', '--app-id', appId, '--host', host, '--out', file], out)).toBe(2);
    expect(out.stderr).toMatch(/already exists; pass --force/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');

    expect(await teamsCommand(['package', '--app-id', appId, '--host', host, '--out', file, '--force'], out)).toBe(0);
    expect(unpack(readFileSync(file)).manifest.id).toBe(appId);
  });

  it('returns 1 when the file cannot be written', async () => {
    const out = new Recorder();
    const file = join(dir, 'no-such-dir', 'app.zip');
    expect(await teamsCommand(['package', '--app-id', appId, '--host', host, '--out', file], out)).toBe(1);
    expect(out.stderr).toContain(`cannot write ${file}`);
  });

  it.each<[string, string[], RegExp]>([
    ['no subcommand', [], /missing subcommand/],
    ['an unknown subcommand', ['deploy'], /unknown subcommand "deploy"/],
    ['an extra argument', ['package', 'now', '--app-id', appId, '--host', host], /unexpected argument "now"/],
    ['no --app-id', ['package', '--host', host], /--app-id required/],
    ['no --app-id nor --host', ['package'], /--app-id and --host required/],
    ['no --host', ['package', '--app-id', appId], /--host required/],
    ['an unknown option', ['package', '--app-id', appId, '--host', host, '--bogus'], /--bogus/],
    ['a non-GUID app id', ['package', '--app-id', 'my-bot', '--host', host], /--app-id must be a GUID/],
    ['a host with a scheme', ['package', '--app-id', appId, '--host', `https://${host}`], /--host .*scheme/],
    ['a host with a path', ['package', '--app-id', appId, '--host', `${host}/bot`], /--host .*path/],
    ['a host with a space', ['package', '--app-id', appId, '--host', 'handoff example.com'], /--host .*space/],
    ['a long name', ['package', '--app-id', appId, '--host', host, '--name', 'n'.repeat(31)], /--name .*30/],
    ['an http website', ['package', '--app-id', appId, '--host', host, '--website', 'http://x.example/'], /--website/],
  ])('returns 2 and names the problem for %s', async (_, args, message) => {
    const out = new Recorder();
    expect(await teamsCommand([...args, '--out', join(dir, 'app.zip')], out)).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('prints the help with --help', async () => {
    const out = new Recorder();
    expect(await teamsCommand(['package', '--help'], out)).toBe(0);
    expect(out.stdout).toContain('handoff teams package --app-id GUID --host HOST');
    expect(out.stderr).toBe('');
    expect(existsSync(join(dir, 'app.zip'))).toBe(false);
  });
});
