export {
  type NotifyJob,
  NotifyJobSchema,
  type NotifyOrder,
  NotifyOrderSchema,
  notifyJobId,
  notifyOrderKey,
  notifyOrderTtlMs,
  type OrderedNotifyJob,
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
