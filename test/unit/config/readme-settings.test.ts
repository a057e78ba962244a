import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { settingsTable } from '../../../src/config/index.ts';

describe('README configuration table', () => {
  it('is exactly what `handoff config` prints: every setting documented, none invented', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Governance'));
    const rows = section.split('\n').filter((l) => l.startsWith('|'));
    expect(rows.join('\n')).toBe(settingsTable().trim());
  });
});
