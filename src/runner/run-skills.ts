import {
  type ExtraTools,
  loadSkillToolName,
  type Skill,
  type SkillCatalog,
  skillMounts,
  skillsAllowed,
  skillTools,
} from '../agent/index.ts';
import type { PlanPolicy } from '../approvals/index.ts';
import type { Envelope, Task } from '../core/index.ts';
import type { AuditLog } from '../storage/index.ts';

/** The skills a task's channel may use: every loaded skill unless the channel's policy lists some. */
export function channelSkills(catalog: SkillCatalog | undefined, policy: PlanPolicy): Skill[] {
  return skillsAllowed(catalog, policy.skills);
}

/** What a run gets of its skills: the load_skill tool, and each allowed skill's folder, mounted read-only. */
export interface RunSkills {
  tools?: ExtraTools;
  mounts: Array<{ hostPath: string; containerPath: string }>;
}

/**
 * The skills of one run attempt. Only a plan whose envelope has load_skill gets them (the
 * approvers saw it), and only the skills the channel's policy allows now: a skill removed from
 * the policy since approval is neither offered nor mounted. Each load is audited (`skill.load`).
 * A workstream's child run gets the same skills as its parent run (pass the parent plan's envelope).
 */
export function runSkills(options: {
  catalog: SkillCatalog | undefined;
  policy: PlanPolicy;
  envelope: Envelope;
  task: Task;
  runId: string;
  audit: AuditLog;
  /** A workstream's child run: its `skill.load` records name it. */
  workstream?: string;
}): RunSkills {
  if (!options.envelope.tools.includes(loadSkillToolName)) return { mounts: [] };
  const skills = channelSkills(options.catalog, options.policy);
  if (skills.length === 0) return { mounts: [] };
  const tools = skillTools({
    skills,
    readLevel: options.policy.trustLevels.read_files,
    onLoad: async (record) => {
      await options.audit.append({
        type: 'skill.load',
        taskId: options.task.id,
        data: { runId: options.runId, ...(options.workstream ? { workstream: options.workstream } : {}), ...record },
      });
    },
  });
  return { tools, mounts: skillMounts(skills) };
}
