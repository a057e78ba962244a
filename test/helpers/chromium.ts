import { existsSync } from 'node:fs';
import { dockerAvailable } from './docker.ts';
import { hasCommand } from './office.ts';

/** The Chromium the console's browser tests drive (Debian's package unless CHROMIUM_PATH says otherwise). */
export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** What a console browser test needs and this machine lacks, in words for the skip notice. */
export async function missingBrowserComponents(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(chromiumPath)) missing.push(`Chromium (${chromiumPath}; set CHROMIUM_PATH)`);
  if (!(await dockerAvailable())) missing.push('Docker with the sandbox image');
  if (!hasCommand('redis-server')) missing.push('redis-server');
  return missing;
}
