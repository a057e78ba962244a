export {
  childJobOptions,
  Flows,
  type FlowsOptions,
  type WorkstreamJob,
  WorkstreamJobSchema,
  workstreamJobId,
  workstreamQueueName,
} from './flows.ts';
export {
  inboxGroup,
  inboxStreams,
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
  type TickJob,
  TickJobSchema,
} from './jobs.ts';
export { metricQueueNames, QueueDepthReader } from './queue-depth.ts';
export { type QueueOptions, Queues } from './queues.ts';
