import type { ActionKind, TrustLevel } from '../core/index.ts';

/** DESIGN §6: the trust level of each action kind unless a policy file says otherwise. */
export const defaultTrustLevels: Readonly<Record<ActionKind, TrustLevel>> = {
  read_files: 'autonomous',
  create_files: 'batched',
  overwrite_input: 'watched',
  delete_file: 'watched',
  run_commands: 'batched',
  network_egress: 'watched',
  connector_read: 'batched',
  connector_write: 'watched',
  post_elsewhere: 'watched',
  payments: 'forbidden',
  billing: 'forbidden',
  hr_payroll_write: 'forbidden',
  credential_change: 'forbidden',
};

const order: readonly TrustLevel[] = ['autonomous', 'batched', 'watched', 'forbidden'];

/** The strictest of several levels: a step is as risky as its riskiest action. */
export function strictest(levels: readonly TrustLevel[]): TrustLevel {
  return levels.reduce<TrustLevel>((a, b) => (order.indexOf(b) > order.indexOf(a) ? b : a), 'autonomous');
}
