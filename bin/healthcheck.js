#!/usr/bin/env node
// The app image's HEALTHCHECK: exits 0 when this container's Handoff answers, 1 otherwise.
// The role is read from PID 1's command line (`tini -- node … bot|runner`):
//   bot     GET /readyz on HANDOFF_PORT (ready: Redis answers)
//   runner  GET /healthz on HANDOFF_METRICS_PORT when it is set; without it the runner
//           serves no HTTP, and the container is healthy while its process runs.
// No dependencies: it starts in a few tens of milliseconds.
import { readFileSync } from 'node:fs';

const args = (() => {
  try {
    return readFileSync('/proc/1/cmdline', 'utf8').split('\0');
  } catch {
    return [];
  }
})();
const role = args.includes('runner') ? 'runner' : 'bot';
const host = (() => {
  const h = process.env.HANDOFF_HOST || '127.0.0.1';
  if (h === '0.0.0.0' || h === '::' || h === '[::]') return '127.0.0.1';
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
})();
const port = role === 'runner' ? process.env.HANDOFF_METRICS_PORT : process.env.HANDOFF_PORT || '3000';
const path = role === 'runner' ? '/healthz' : '/readyz';

if (!port) {
  console.log(`${role}: no HANDOFF_METRICS_PORT, nothing to ask; the process is running`);
  process.exit(0);
}
try {
  const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(4000) });
  console.log(`${role}: ${path} answered ${res.status}`);
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  console.log(`${role}: ${path} on port ${port}: ${err.cause?.code ?? err.message}`);
  process.exit(1);
}
