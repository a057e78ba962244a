import { z } from 'zod';

/** How a tool call is gated (DESIGN §6). */
export const TrustLevelSchema = z.enum(['autonomous', 'batched', 'watched', 'forbidden']);
export type TrustLevel = z.infer<typeof TrustLevelSchema>;

/** What a tool call does, as far as policy is concerned. */
export const ActionKindSchema = z.enum([
  'read_files',
  'create_files',
  'overwrite_input',
  'delete_file',
  'run_commands',
  'network_egress',
  'connector_read',
  'connector_write',
  'post_elsewhere',
  'payments',
  'billing',
  'hr_payroll_write',
  'credential_change',
]);
export type ActionKind = z.infer<typeof ActionKindSchema>;
