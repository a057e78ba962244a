export { createLogger, type Logger, throttledLog } from './logger.ts';
export { Metrics } from './metrics.ts';
