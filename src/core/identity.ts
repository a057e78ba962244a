import { z } from 'zod';

export const SurfaceSchema = z.enum(['slack', 'teams', 'web']);
export type Surface = z.infer<typeof SurfaceSchema>;

/** A person as their chat surface names them. The id comes from the surface, never from message text. */
export const IdentitySchema = z.object({
  id: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
});
export type Identity = z.infer<typeof IdentitySchema>;

/** Where a task lives: the thread its cards and results are posted into. */
export const ConversationRefSchema = z.object({
  surface: SurfaceSchema,
  workspace: z.string().max(200).optional(),
  channel: z.string().min(1).max(200),
  thread: z.string().min(1).max(200),
});
export type ConversationRef = z.infer<typeof ConversationRefSchema>;

/**
 * The person a per-user connection belongs to: the surface and the id it gives them
 * (`slack:U0123`). The bot and the runner both key connections with this.
 */
export function connectionUserId(surface: string, userId: string): string {
  return `${surface}:${userId}`;
}
