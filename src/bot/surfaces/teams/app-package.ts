import { crc32, deflateSync } from 'node:zlib';
import { strToU8, zipSync } from 'fflate';
import { z } from 'zod';
import { ErrorCodes, HandoffError } from '../../../core/index.ts';

/**
 * The app manifest schema the package is written for. 1.30 (August 2026) is the current
 * generally available version; Teams accepts every earlier 1.x too, so this only moves
 * forward when a newer version brings something the bot uses.
 */
export const teamsManifestVersion = '1.30';
export const teamsManifestSchemaUrl = `https://developer.microsoft.com/json-schemas/teams/v${teamsManifestVersion}/MicrosoftTeams.schema.json`;

/** Navy of the Slack app's background, so both surfaces show the same mark. */
export const defaultAccentColor = '#1F2A44';

const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const hexColorPattern = /^#[0-9a-fA-F]{6}$/;
// The manifest schema's own `semver` definition: MAJOR.MINOR.PATCH, no pre-release part.
const semverPattern = /^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$/;
const dnsLabelPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** Why `host` cannot go into `validDomains` and the bot's URLs, or undefined when it can. */
export function hostProblem(host: string): string | undefined {
  if (host === '') return 'is empty: give the bot’s public hostname, e.g. handoff.example.com';
  if (/\s/.test(host)) return `${JSON.stringify(host)} contains a space`;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) {
    return `${JSON.stringify(host)} has a scheme: give the hostname only, without https://`;
  }
  if (/[/?#\\]/.test(host)) return `${JSON.stringify(host)} has a path: give the hostname only`;
  if (host.includes('@')) return `${JSON.stringify(host)} has a user name: give the hostname only`;
  if (host.startsWith('[') || host.split(':').length > 2) {
    return `${JSON.stringify(host)} is an IP address: Teams needs the bot’s DNS name`;
  }
  if (host.includes(':')) {
    return `${JSON.stringify(host)} has a port: give the hostname only (Teams calls https://HOST on port 443)`;
  }
  if (host.includes('*')) return `${JSON.stringify(host)} is a wildcard: give the bot’s own hostname`;
  if (/^\d+(\.\d+){3}$/.test(host)) {
    return `${JSON.stringify(host)} is an IP address: Teams needs the bot’s DNS name`;
  }
  if (host.length > 253) return 'is longer than a DNS name may be (253 characters)';
  const labels = host.split('.');
  if (labels.length < 2) {
    return `${JSON.stringify(host)} is not a fully qualified name: Teams reaches the bot over the internet, e.g. handoff.example.com`;
  }
  const bad = labels.find((l) => !dnsLabelPattern.test(l));
  if (bad !== undefined) {
    return `${JSON.stringify(host)} is not a valid hostname (label ${JSON.stringify(bad)}; internationalised names go in their xn-- form)`;
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) return `${JSON.stringify(host)} is not a DNS name`;
  return undefined;
}

const httpsUrl = z
  .string()
  .max(2048, 'is longer than the manifest allows (2048 characters)')
  .refine((v) => {
    try {
      const url = new URL(v);
      return url.protocol === 'https:' && !url.username && !url.password;
    } catch {
      return false;
    }
  }, 'must be an https:// URL');

/** What an admin chooses for their app package; everything else follows from it. */
export const TeamsPackageInputSchema = z.object({
  /** The Microsoft App ID of the Azure Bot (its Entra app registration): the app id and the bot id. */
  appId: z
    .string()
    .trim()
    .regex(guidPattern, 'must be a GUID like 00000000-0000-0000-0000-000000000000 (the bot’s Microsoft App ID)')
    .refine((v) => !/^[0-]+$/.test(v), 'is the all-zero GUID, a placeholder: use the bot’s Microsoft App ID')
    .transform((v) => v.toLowerCase()),
  /** The bot's public hostname: its only valid domain, and where its messaging endpoint lives. */
  host: z
    .string()
    .superRefine((v, ctx) => {
      const problem = hostProblem(v);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .transform((v) => v.toLowerCase()),
  /** The app's version (MAJOR.MINOR.PATCH); an updated package MUST carry a higher one. */
  version: z.string().regex(semverPattern, 'must be MAJOR.MINOR.PATCH, e.g. 1.4.0'),
  /** The app's name in Teams (`name.short`). */
  name: z.string().trim().min(1, 'is empty').max(30, 'is longer than Teams allows (30 characters)').default('Handoff'),
  /** `developer.name`: who publishes the app in this organisation. */
  developerName: z
    .string()
    .trim()
    .min(1, 'is empty')
    .max(32, 'is longer than Teams allows (32 characters)')
    .default('Handoff'),
  /** Default: https://HOST/ */
  websiteUrl: httpsUrl.optional(),
  /** Default: https://HOST/privacy */
  privacyUrl: httpsUrl.optional(),
  /** Default: https://HOST/terms */
  termsOfUseUrl: httpsUrl.optional(),
  /** Background of the colour icon and Teams' accent for the app. */
  accentColor: z.string().regex(hexColorPattern, 'must be #RRGGBB').default(defaultAccentColor),
});
export type TeamsPackageInput = z.input<typeof TeamsPackageInputSchema>;

// The part of the v1.30 manifest schema this package uses, with that schema's limits, so
// a name or text that would make Teams refuse the upload fails here instead.
const scope = z.enum(['personal', 'team', 'groupChat']);
const botCommand = z.strictObject({ title: z.string().min(1).max(32), description: z.string().max(128) });
const messageAction = z.strictObject({
  id: z.string().max(64),
  type: z.literal('action'),
  title: z.string().max(32),
  description: z.string().max(128),
  context: z.array(z.enum(['compose', 'commandBox', 'message'])).max(3),
  fetchTask: z.literal(false),
  parameters: z
    .array(
      z.strictObject({
        name: z.string().max(64),
        title: z.string().max(32),
        description: z.string().max(128),
        inputType: z.enum(['text', 'textarea']),
      }),
    )
    .min(1)
    .max(5),
});

export const TeamsManifestSchema = z.strictObject({
  $schema: z.literal(teamsManifestSchemaUrl),
  manifestVersion: z.literal(teamsManifestVersion),
  version: z.string().regex(semverPattern).max(256),
  id: z.string().regex(guidPattern),
  developer: z.strictObject({
    name: z.string().max(32),
    websiteUrl: httpsUrl,
    privacyUrl: httpsUrl,
    termsOfUseUrl: httpsUrl,
  }),
  name: z.strictObject({ short: z.string().min(1).max(30), full: z.string().max(100) }),
  description: z.strictObject({ short: z.string().max(80), full: z.string().max(4000) }),
  icons: z.strictObject({ color: z.literal('color.png'), outline: z.literal('outline.png') }),
  accentColor: z.string().regex(hexColorPattern),
  bots: z
    .array(
      z.strictObject({
        botId: z.string().regex(guidPattern),
        scopes: z.array(scope).min(1).max(4),
        supportsFiles: z.boolean(),
        isNotificationOnly: z.boolean(),
        commandLists: z
          .array(z.strictObject({ scopes: z.array(scope).min(1), commands: z.array(botCommand).max(12) }))
          .max(3),
      }),
    )
    .length(1),
  composeExtensions: z
    .array(z.strictObject({ botId: z.string().regex(guidPattern), commands: z.array(messageAction).max(10) }))
    .max(1),
  permissions: z.array(z.enum(['identity', 'messageTeamMembers'])).max(2),
  validDomains: z.array(z.string().max(2048)).max(100),
  webApplicationInfo: z.strictObject({ id: z.string().regex(guidPattern), resource: z.string().max(2048) }),
  authorization: z.strictObject({
    permissions: z.strictObject({
      resourceSpecific: z
        .array(z.strictObject({ name: z.string().max(128), type: z.enum(['Application', 'Delegated']) }))
        .max(16),
    }),
  }),
});
export type TeamsManifest = z.infer<typeof TeamsManifestSchema>;

function commandsFor(where: 'personal' | 'team' | 'groupChat'): Array<z.infer<typeof botCommand>> {
  const here = where === 'personal' ? 'this chat' : where === 'team' ? 'this channel' : 'this group chat';
  return [
    { title: 'help', description: 'What Handoff can do, and how to hand it work' },
    { title: 'schedules', description: `List the schedules of ${here}` },
    {
      title: 'schedule',
      description: `Schedule a recurring brief in ${here}: schedule "every weekday at 9:00" <what to post>`,
    },
  ];
}

const fullDescription = [
  'Handoff is a self-hosted AI coworker for chat-ops.',
  'Mention it with a request and attach files, or choose "Hand off…" on any message: that message and its attachments become the task.',
  'Handoff answers with a plan card listing each step, its deliverables and budget; nothing runs until someone allowed to approve it clicks Approve.',
  'The work runs in an isolated sandbox, progress is posted in the thread, and the deliverables (spreadsheets, documents, charts) are posted back when it is done.',
  'Recurring briefs can be scheduled per channel or chat.',
].join(' ');

function invalidInput(error: z.ZodError, what: string): HandoffError {
  const problems = error.issues.map((i) => `${i.path.join('.') || 'input'} ${i.message}`);
  return new HandoffError(ErrorCodes.invalidInput, `${what}: ${problems.join('; ')}`, { cause: error });
}

/** Checks `input` and gives it with its defaults filled in; throws a HandoffError naming each problem. */
export function parseTeamsPackageInput(input: TeamsPackageInput): z.output<typeof TeamsPackageInputSchema> {
  const parsed = TeamsPackageInputSchema.safeParse(input);
  if (!parsed.success) throw invalidInput(parsed.error, 'cannot build the Teams app package');
  return parsed.data;
}

/** The app manifest for the bot: pure, and checked against the schema's limits before it is returned. */
export function teamsManifest(input: TeamsPackageInput): TeamsManifest {
  const i = parseTeamsPackageInput(input);
  const base = `https://${i.host}`;
  const manifest: TeamsManifest = {
    $schema: teamsManifestSchemaUrl,
    manifestVersion: teamsManifestVersion,
    version: i.version,
    id: i.appId,
    developer: {
      name: i.developerName,
      websiteUrl: i.websiteUrl ?? `${base}/`,
      privacyUrl: i.privacyUrl ?? `${base}/privacy`,
      termsOfUseUrl: i.termsOfUseUrl ?? `${base}/terms`,
    },
    name: { short: i.name, full: `${i.name}: hand work to an AI coworker` },
    description: {
      short: 'Hand work to an AI coworker, with plans, approvals and sandboxed runs.',
      full: fullDescription,
    },
    icons: { color: 'color.png', outline: 'outline.png' },
    accentColor: i.accentColor.toUpperCase(),
    bots: [
      {
        botId: i.appId,
        scopes: ['personal', 'team', 'groupChat'],
        supportsFiles: true,
        isNotificationOnly: false,
        commandLists: (['personal', 'team', 'groupChat'] as const).map((s) => ({
          scopes: [s],
          commands: commandsFor(s),
        })),
      },
    ],
    composeExtensions: [
      {
        botId: i.appId,
        commands: [
          {
            id: 'handoff',
            type: 'action',
            title: 'Hand off…',
            description: 'Hand this message and its attachments to Handoff as a task',
            context: ['message'],
            fetchTask: false,
            parameters: [
              {
                name: 'request',
                title: 'What should be done?',
                description: 'What Handoff should do with this message and its attachments',
                inputType: 'textarea',
              },
            ],
          },
        ],
      },
    ],
    permissions: ['identity', 'messageTeamMembers'],
    validDomains: [i.host],
    // Resource-specific consent: a team owner who adds the app lets it read that team's
    // channel messages through Graph (a mention's thread context). RSC needs
    // webApplicationInfo with the app id; its `resource` is unused by RSC but must be set.
    webApplicationInfo: { id: i.appId, resource: `api://${i.host}/${i.appId}` },
    authorization: {
      permissions: { resourceSpecific: [{ name: 'ChannelMessage.Read.Group', type: 'Application' }] },
    },
  };
  const checked = TeamsManifestSchema.safeParse(manifest);
  if (!checked.success) throw invalidInput(checked.error, 'the Teams app manifest would be refused');
  return checked.data;
}

/** The zip to upload to Teams: manifest.json, color.png and outline.png at its root. */
export function teamsAppPackage(input: TeamsPackageInput): Uint8Array {
  const manifest = teamsManifest(input);
  return zipSync({
    'manifest.json': strToU8(`${JSON.stringify(manifest, null, 2)}\n`),
    // PNGs are deflated already: storing them again compressed gains nothing.
    'color.png': [pngIcon('color', manifest.accentColor), { level: 0 }],
    'outline.png': [pngIcon('outline'), { level: 0 }],
  });
}

// --- icons ------------------------------------------------------------------------------

/** Encodes 8-bit RGBA pixels (row by row, 4 bytes each) as a PNG, every row with filter 0. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new HandoffError(ErrorCodes.invalidInput, `PNG size ${width}×${height} is not positive whole pixels`);
  }
  const stride = width * 4;
  if (rgba.length !== stride * height) {
    throw new HandoffError(ErrorCodes.invalidInput, `PNG pixels: ${rgba.length} bytes for ${width}×${height} RGBA`);
  }
  const raw = new Uint8Array((stride + 1) * height);
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header.set([8, 6, 0, 0, 0], 8); // bit depth 8, colour type 6 (RGBA), deflate, filter 0, no interlace
  return concat([
    Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(raw, { level: 9 })),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const typeBytes = strToU8(type);
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(typeBytes, 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(data, crc32(typeBytes)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The hand-off mark in a unit square: a dot (the work) passing to an arrow (onward),
 * simple enough to stay legible at 32 pixels.
 */
function inGlyph(u: number, v: number): boolean {
  const dot = (u - 0.19) ** 2 + (v - 0.5) ** 2 <= 0.14 ** 2;
  const shaft = u >= 0.38 && u <= 0.64 && Math.abs(v - 0.5) <= 0.085;
  // Arrowhead: the triangle (0.58, 0.2), (0.94, 0.5), (0.58, 0.8).
  const head = u >= 0.58 && Math.abs(v - 0.5) <= 0.3 * (1 - (u - 0.58) / 0.36);
  return dot || shaft || head;
}

function inRoundedSquare(x: number, y: number, size: number, radius: number): boolean {
  const half = size / 2;
  const qx = Math.abs(x - half) - (half - radius);
  const qy = Math.abs(y - half) - (half - radius);
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) <= radius;
}

const samplesPerAxis = 4;

/**
 * The app's icons, as Teams requires them: `color` is 192×192, the white mark in the
 * centre 96×96 on a rounded square of `accentColor`; `outline` is 32×32, the mark in
 * pure white on transparent (edges are smoothed with alpha only, never with grey).
 */
export function pngIcon(kind: 'color' | 'outline', accentColor: string = defaultAccentColor): Uint8Array {
  if (!hexColorPattern.test(accentColor)) {
    throw new HandoffError(ErrorCodes.invalidInput, `accent colour ${JSON.stringify(accentColor)} must be #RRGGBB`);
  }
  const accent = [1, 3, 5].map((at) => Number.parseInt(accentColor.slice(at, at + 2), 16));
  const size = kind === 'color' ? 192 : 32;
  // Where the mark sits: Teams' safe area of the colour icon, nearly all of the outline.
  const [from, span] = kind === 'color' ? [48, 96] : [1, 30];
  const rgba = new Uint8Array(size * size * 4);
  const n = samplesPerAxis * samplesPerAxis;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let sy = 0; sy < samplesPerAxis; sy++) {
        for (let sx = 0; sx < samplesPerAxis; sx++) {
          const px = x + (sx + 0.5) / samplesPerAxis;
          const py = y + (sy + 0.5) / samplesPerAxis;
          if (inGlyph((px - from) / span, (py - from) / span)) {
            r += 255;
            g += 255;
            b += 255;
            a += 1;
          } else if (kind === 'color' && inRoundedSquare(px, py, size, size * 0.22)) {
            r += accent[0]!;
            g += accent[1]!;
            b += accent[2]!;
            a += 1;
          }
        }
      }
      const at = (y * size + x) * 4;
      if (kind === 'outline') {
        rgba.set([255, 255, 255, Math.round((a / n) * 255)], at);
      } else if (a > 0) {
        rgba.set([Math.round(r / a), Math.round(g / a), Math.round(b / a), Math.round((a / n) * 255)], at);
      }
    }
  }
  return encodePng(size, size, rgba);
}
