import type { Plan, PlanStep } from '../core/index.ts';

/** One step of a revised plan next to the version it replaces. */
export interface PlanStepChange {
  kind: 'added' | 'removed' | 'changed' | 'same';
  title: string;
  /** The step's detail and actions before (changed and removed steps). */
  before?: string;
  /** The step's detail and actions after (changed and added steps). */
  after?: string;
}

/** What a revised plan changes, for the approver who judged the previous version. */
export interface PlanDiff {
  summaryChanged: boolean;
  /** Every step of both versions, in the new plan's order, removed steps where they were. */
  steps: PlanStepChange[];
  deliverables: { added: string[]; removed: string[] };
  /** Plain sentences, e.g. "budget: $5.00 → $8.00", "new tool: delete_file". */
  envelope: string[];
}

const key = (title: string) => title.trim().replace(/\s+/g, ' ').toLowerCase();

function describeStep(step: PlanStep): string {
  const actions = `actions: ${step.actions.map((a) => a.replace(/_/g, ' ')).join(', ')}`;
  return step.detail ? `${step.detail} (${actions})` : actions;
}

function sameStep(a: PlanStep, b: PlanStep): boolean {
  return (
    a.detail === b.detail && a.actions.length === b.actions.length && a.actions.every((x, i) => x === b.actions[i])
  );
}

/** Pairs of indexes of steps with the same title, in order (longest common subsequence). */
function matchSteps(before: readonly PlanStep[], after: readonly PlanStep[]): Array<[number, number]> {
  const n = before.length;
  const m = after.length;
  // At most 20 steps each (PlanDraftSchema): the table is tiny.
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] =
        key(before[i]!.title) === key(after[j]!.title)
          ? lcs[i + 1]![j + 1]! + 1
          : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const pairs: Array<[number, number]> = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (key(before[i]!.title) === key(after[j]!.title)) {
      pairs.push([i, j]);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) i++;
    else j++;
  }
  return pairs;
}

function listChange(label: { added: string; removed: string }, before: readonly string[], after: readonly string[]) {
  const out: string[] = [];
  const was = new Set(before);
  const now = new Set(after);
  for (const x of after) if (!was.has(x)) out.push(`${label.added}: ${x}`);
  for (const x of before) if (!now.has(x)) out.push(`${label.removed}: ${x}`);
  return out;
}

const usd = (n: number) => `$${n.toFixed(2)}`;
const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

/**
 * What changed between a plan and its revision: steps matched by title (added, removed,
 * changed detail or actions, or the same), deliverables by file name, and every change
 * to the envelope an approval binds to, as sentences. Pure.
 */
export function planDiff(previous: Plan, next: Plan): PlanDiff {
  const steps: PlanStepChange[] = [];
  let i = 0;
  let j = 0;
  const removedUntil = (end: number) => {
    for (; i < end; i++) {
      const s = previous.steps[i]!;
      steps.push({ kind: 'removed', title: s.title, before: describeStep(s) });
    }
  };
  const addedUntil = (end: number) => {
    for (; j < end; j++) {
      const s = next.steps[j]!;
      steps.push({ kind: 'added', title: s.title, after: describeStep(s) });
    }
  };
  for (const [a, b] of matchSteps(previous.steps, next.steps)) {
    removedUntil(a);
    addedUntil(b);
    const was = previous.steps[a]!;
    const now = next.steps[b]!;
    steps.push(
      sameStep(was, now)
        ? { kind: 'same', title: now.title }
        : { kind: 'changed', title: now.title, before: describeStep(was), after: describeStep(now) },
    );
    i = a + 1;
    j = b + 1;
  }
  removedUntil(previous.steps.length);
  addedUntil(next.steps.length);

  const name = (d: Plan['deliverables'][number]) => d.name;
  const beforeFiles = previous.deliverables.map(name);
  const afterFiles = next.deliverables.map(name);
  const deliverables = {
    added: afterFiles.filter((f) => !beforeFiles.includes(f)),
    removed: beforeFiles.filter((f) => !afterFiles.includes(f)),
  };

  const was = previous.envelope;
  const now = next.envelope;
  const envelope: string[] = [];
  if (was.budget.maxCostUsd !== now.budget.maxCostUsd)
    envelope.push(`budget: ${usd(was.budget.maxCostUsd)} → ${usd(now.budget.maxCostUsd)}`);
  if (was.budget.maxTokens !== now.budget.maxTokens)
    envelope.push(
      `token cap: ${was.budget.maxTokens.toLocaleString('en-US')} → ${now.budget.maxTokens.toLocaleString('en-US')}`,
    );
  if (was.budget.maxWallTimeMs !== now.budget.maxWallTimeMs)
    envelope.push(`wall time: ${minutes(was.budget.maxWallTimeMs)} → ${minutes(now.budget.maxWallTimeMs)}`);
  envelope.push(
    ...listChange({ added: 'new tool', removed: 'tool dropped' }, was.tools, now.tools),
    ...listChange(
      { added: 'new network access', removed: 'network access dropped' },
      was.egressDomains,
      now.egressDomains,
    ),
    ...listChange({ added: 'may now overwrite', removed: 'no longer overwrites' }, was.mayOverwrite, now.mayOverwrite),
    ...listChange({ added: 'may now delete', removed: 'no longer deletes' }, was.mayDelete, now.mayDelete),
  );
  // Workstreams are bound by the approval too (planHash).
  const streamsBefore = new Map((previous.workstreams ?? []).map((w) => [w.id, w]));
  const streamsAfter = new Map((next.workstreams ?? []).map((w) => [w.id, w]));
  envelope.push(
    ...listChange(
      { added: 'new workstream', removed: 'workstream dropped' },
      [...streamsBefore.keys()],
      [...streamsAfter.keys()],
    ),
  );
  for (const [id, w] of streamsAfter) {
    const old = streamsBefore.get(id);
    if (old && JSON.stringify(old) !== JSON.stringify(w)) envelope.push(`workstream changed: ${id}`);
  }
  if (streamsAfter.size > 0 && (previous.merge ?? '') !== (next.merge ?? '') && streamsBefore.size > 0)
    envelope.push('merge step changed');
  if (
    streamsBefore.size > 0 &&
    streamsAfter.size > 0 &&
    (previous.onChildFailure ?? 'fail') !== (next.onChildFailure ?? 'fail')
  )
    envelope.push(`if a workstream fails: ${previous.onChildFailure ?? 'fail'} → ${next.onChildFailure ?? 'fail'}`);

  return { summaryChanged: previous.summary.trim() !== next.summary.trim(), steps, deliverables, envelope };
}

/** How many things a diff changes (steps not the same, files, envelope sentences, summary). */
export function countPlanChanges(diff: PlanDiff): number {
  return (
    (diff.summaryChanged ? 1 : 0) +
    diff.steps.filter((s) => s.kind !== 'same').length +
    diff.deliverables.added.length +
    diff.deliverables.removed.length +
    diff.envelope.length
  );
}
