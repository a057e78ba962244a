export {
  type NotifyJob,
  NotifyJobSchema,
  type PlanJob,
  PlanJobSchema,
  planJobId,
  queueNames,
  type RunJob,
  RunJobSchema,
  runIdFor,
  runJobId,
} from './jobs.ts';
export { type QueueOptions, Queues } from './queues.ts';
