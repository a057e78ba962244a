import { posix } from 'node:path';
import type { ActionKind, PlanDraft } from '../core/index.ts';
import type { ToolDefinition } from './model/provider.ts';

const stepField = {
  step: { type: 'integer', minimum: 1, description: 'The number of the plan step this call works on.' },
} as const;

/** Tools of a run. Their order and text never change between turns (prompt caching). */
export const runTools: ToolDefinition[] = [
  {
    name: 'run_command',
    description:
      'Run a bash command inside the sandbox (Debian, Python 3 with openpyxl, python-docx, reportlab, matplotlib, pandas; pandoc; poppler-utils; node). Working directory /workspace. Inputs are read-only under /workspace/in; write deliverables to /workspace/out and scratch files to /tmp. There is no network, except http(s) to the web domains the approved plan names (through the proxy already set in the environment).',
    input_schema: {
      type: 'object',
      properties: {
        command: { type: 'string', description: 'The bash command line.' },
        timeout_seconds: { type: 'integer', minimum: 1, description: 'Optional shorter time limit.' },
        ...stepField,
      },
      required: ['command'],
    },
  },
  {
    name: 'read_file',
    description: 'Read a text file in the sandbox (under /workspace or /tmp). Returns at most max_bytes bytes.',
    input_schema: {
      type: 'object',
      properties: {
        path: { type: 'string' },
        max_bytes: { type: 'integer', minimum: 1, maximum: 200000 },
        ...stepField,
      },
      required: ['path'],
    },
  },
  {
    name: 'write_file',
    description: 'Create or replace a file under /workspace/out or /tmp with the given text content.',
    input_schema: {
      type: 'object',
      properties: { path: { type: 'string' }, content: { type: 'string' }, ...stepField },
      required: ['path', 'content'],
    },
  },
  {
    name: 'edit_file',
    description: 'Replace one exact occurrence of old_text with new_text in a file under /workspace/out or /tmp.',
    input_schema: {
      type: 'object',
      properties: {
        path: { type: 'string' },
        old_text: { type: 'string' },
        new_text: { type: 'string' },
        ...stepField,
      },
      required: ['path', 'old_text', 'new_text'],
    },
  },
  {
    name: 'list_files',
    description: 'List files (type, size, path) under a directory in the sandbox, default /workspace.',
    input_schema: { type: 'object', properties: { path: { type: 'string' }, ...stepField } },
  },
  {
    name: 'delete_file',
    description: 'Delete a file. Deleting anything under /workspace/in waits for a person to approve it.',
    input_schema: { type: 'object', properties: { path: { type: 'string' }, ...stepField }, required: ['path'] },
  },
  {
    name: 'deliver_artifact',
    description:
      'Deliver a finished file from /workspace/out to the people who asked: it is posted into their thread. Call once per deliverable.',
    input_schema: {
      type: 'object',
      properties: {
        path: { type: 'string' },
        name: { type: 'string', description: 'File name to show; default the file name.' },
        ...stepField,
      },
      required: ['path'],
    },
  },
  {
    name: 'ask_humans',
    description:
      'Ask the people in the thread a question and wait for the answer. Use only when the task cannot be done well without it.',
    input_schema: { type: 'object', properties: { question: { type: 'string' } }, required: ['question'] },
  },
];

const runToolNames = new Set(runTools.map((t) => t.name));

/** Whether a run has a tool of this name (a model can call one that does not exist). */
export function isKnownTool(name: string): boolean {
  return runToolNames.has(name);
}

/** Read-only tools of the planner, plus the one it must finish with. */
export const planTools: ToolDefinition[] = [
  runTools[1]!,
  runTools[4]!,
  {
    name: 'submit_plan',
    description:
      'Submit the plan for human approval. steps[].actions lists what each step needs: read_files, create_files, run_commands, overwrite_input, delete_file, network_egress, connector_read, connector_write, post_elsewhere, payments, billing, hr_payroll_write, credential_change. deliverables[].type is one of xlsx, docx, pptx, pdf, csv, md, png.',
    input_schema: {
      type: 'object',
      properties: {
        summary: { type: 'string', description: 'One or two sentences: what will be produced from what.' },
        steps: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              title: { type: 'string' },
              detail: { type: 'string' },
              actions: { type: 'array', items: { type: 'string' } },
            },
            required: ['title', 'actions'],
          },
        },
        deliverables: {
          type: 'array',
          items: {
            type: 'object',
            properties: { name: { type: 'string' }, type: { type: 'string' } },
            required: ['name', 'type'],
          },
        },
        connectorTools: {
          type: 'array',
          items: { type: 'string' },
          description:
            'Connector tools the work needs, by their exact names from the list you were given. Omit when none.',
        },
        egressDomains: {
          type: 'array',
          items: { type: 'string' },
          description:
            'Web domains the work must reach (host names such as api.example.com, or *.example.com), only from the allowed list you were given. Omit when none.',
        },
        mayOverwrite: {
          type: 'array',
          items: { type: 'string' },
          description: 'Input file names the work must change in place. Omit when none.',
        },
        mayDelete: {
          type: 'array',
          items: { type: 'string' },
          description: 'Input file names the work must delete. Omit when none.',
        },
        workstreams: {
          type: 'array',
          description:
            'Only for work that splits into 2–8 independent parts (one analysis per region, one section per vendor): each part runs in parallel in its own sandbox and hands its files to the merge step, which finds them in /workspace/in/workstreams/<id>/. Omit for ordinary work.',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string', description: 'lower-case letters, digits, _ and -' },
              title: { type: 'string' },
              brief: { type: 'string', description: 'What this part does and which files it hands back.' },
              inputs: { type: 'array', items: { type: 'string' }, description: 'Input file names it needs.' },
            },
            required: ['id', 'title', 'brief'],
          },
        },
        merge: { type: 'string', description: 'With workstreams: how the merge step combines their files.' },
        onChildFailure: {
          type: 'string',
          enum: ['retry', 'continue', 'fail'],
          description: 'With workstreams: retry a failed part once, continue without it, or fail the task.',
        },
      },
      required: ['summary', 'steps', 'deliverables'],
    },
  },
];

/** Which agent tools each action kind unlocks in the envelope. */
const toolsForAction: Partial<Record<ActionKind, string[]>> = {
  read_files: ['read_file', 'list_files'],
  create_files: ['write_file', 'edit_file', 'deliver_artifact'],
  run_commands: ['run_command'],
  delete_file: ['delete_file'],
};

/** The agent tools an approved plan allows (asking the thread is always allowed). */
export function toolsForPlan(draft: PlanDraft): string[] {
  const names = new Set<string>(['ask_humans', 'read_file', 'list_files', 'deliver_artifact']);
  for (const step of draft.steps) for (const a of step.actions) for (const t of toolsForAction[a] ?? []) names.add(t);
  return runTools.map((t) => t.name).filter((n) => names.has(n));
}

export const workspaceRoot = '/workspace';
export const inputsDir = '/workspace/in';
export const outputsDir = '/workspace/out';

/**
 * Resolves a path the model gave against /workspace and keeps it inside the places a
 * tool may touch. Returns the absolute path or a reason for refusing.
 */
export function resolveSandboxPath(raw: unknown, allowed: readonly string[]): { path: string } | { error: string } {
  if (typeof raw !== 'string' || raw.length === 0) return { error: 'path must be a non-empty string' };
  if (raw.includes('\0')) return { error: 'path must not contain NUL' };
  const path = posix.resolve(workspaceRoot, raw);
  if (!allowed.some((root) => path === root || path.startsWith(`${root}/`))) {
    return { error: `path ${path} is outside ${allowed.join(' and ')}` };
  }
  return { path };
}

/** What a call does in policy terms; undefined for talking in the task's own thread. */
export function classifyToolCall(name: string, input: Record<string, unknown>): ActionKind | undefined {
  switch (name) {
    case 'read_file':
    case 'list_files':
      return 'read_files';
    case 'run_command':
      return 'run_commands';
    case 'write_file':
    case 'edit_file': {
      const resolved = resolveSandboxPath(input.path, [workspaceRoot]);
      if ('path' in resolved && (resolved.path === inputsDir || resolved.path.startsWith(`${inputsDir}/`))) {
        return 'overwrite_input';
      }
      return 'create_files';
    }
    case 'delete_file': {
      const resolved = resolveSandboxPath(input.path, [workspaceRoot]);
      // Removing scratch or own output is ordinary work; removing an input is a deletion.
      if ('path' in resolved && !(resolved.path === inputsDir || resolved.path.startsWith(`${inputsDir}/`)))
        return 'create_files';
      return 'delete_file';
    }
    case 'deliver_artifact':
      return 'create_files';
    case 'ask_humans':
      return undefined;
    default:
      // An unknown tool is treated as the riskiest kind of connector call.
      return 'connector_write';
  }
}

/**
 * A copy of tool arguments with every string longer than `over` characters cut to its
 * first `keep` characters and its length: for approval cards and audit records.
 */
export function abbreviateStrings(input: Record<string, unknown>, over: number, keep: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    out[k] = typeof v === 'string' && v.length > over ? `${v.slice(0, keep)}… (${v.length} characters)` : v;
  }
  return out;
}
