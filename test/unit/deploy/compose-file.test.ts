/**
 * docker-compose.yml as docs/deploy-compose.md describes it, read without Docker (the
 * running stack is checked by test/integration/compose.test.ts).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

type Service = {
  image?: string;
  command?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  group_add?: string[];
};
const file = new URL('../../../docker-compose.yml', import.meta.url);
const compose = parse(readFileSync(file, 'utf8'), { merge: true }) as {
  version?: string;
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = Object.entries(compose.services);
// biome-ignore lint/suspicious/noTemplateCurlyInString: a compose variable reference, not a JS template
const dataDirRef = '${HANDOFF_DATA_DIR}';
const app = services.filter(([, s]) => s.image?.includes('HANDOFF_APP_IMAGE'));

describe('docker-compose.yml', () => {
  it('has 2 bots, 2 runners and Redis, and no `version:` key (compose 1.29 and v2 both read it)', () => {
    expect(compose.version).toBeUndefined();
    expect(Object.keys(compose.services).sort()).toEqual(['bot-1', 'bot-2', 'redis', 'runner-1', 'runner-2']);
    expect(app.map(([, s]) => s.command?.[0]).sort()).toEqual(['bot', 'bot', 'runner', 'runner']);
  });

  it('publishes every port on 127.0.0.1 only', () => {
    const ports = services.flatMap(([name, s]) => (s.ports ?? []).map((p) => [name, p] as const));
    expect(ports.length).toBeGreaterThan(0);
    for (const [name, p] of ports) expect(p, name).toMatch(/^127\.0\.0\.1:/);
  });

  it('runs every bot and runner with a read-only root, no capabilities and no-new-privileges', () => {
    for (const [name, s] of app) {
      expect(s.read_only, name).toBe(true);
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.security_opt, name).toContain('no-new-privileges:true');
    }
  });

  it('mounts the data dir at the same path inside and outside, and the Docker socket in runners only', () => {
    for (const [name, s] of app) {
      expect(s.volumes, name).toContain(`${dataDirRef}:${dataDirRef}`);
      expect(s.environment?.HANDOFF_DATA_DIR, name).toMatch(/^\$\{HANDOFF_DATA_DIR:\?/);
      const socket = (s.volumes ?? []).some((v) => v.startsWith('/var/run/docker.sock:'));
      expect(socket, name).toBe(s.command?.[0] === 'runner');
    }
    for (const [name, s] of app.filter(([, s]) => s.command?.[0] === 'runner'))
      expect(s.environment?.HANDOFF_BUILTIN_SKILLS_DIR, name).toBe(`${dataDirRef}/builtin-skills`);
  });

  it('keeps secrets in .env: every secret is a reference, and .env.example holds placeholders only', () => {
    for (const [name, s] of services)
      for (const [key, value] of Object.entries(s.environment ?? {}))
        if (/PASSWORD|SECRET|TOKEN|API_KEY|CONNECTIONS_KEY/.test(key)) expect(value, `${name} ${key}`).toMatch(/^\$\{/);
    const example = readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8');
    for (const line of example.split('\n').filter((l) => /^[A-Z_]*(PASSWORD|SECRET|TOKEN|API_KEY|_KEY)=/.test(l)))
      expect(line).toMatch(/=(<[^>]+>)?$/);
  });
});
