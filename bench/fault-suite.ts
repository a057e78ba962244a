// The full fault suite: 2 bots and 3 runners on one Redis (AOF on), the demo model and real
// Docker; 50 tasks submitted and approved (each approval sent 3 times through different bots)
// while 100 SIGKILLs hit random bots and runners and Redis restarts 10 times (3 of them
// outages of 20–30 s). Prints what ended how, duplicates, orphans and the timings.
// FAULTS_TASKS, FAULTS_KILLS, FAULTS_REDIS_RESTARTS, FAULTS_LONG_OUTAGES scale it.
import { formatFaultReport, runFaultSuite } from '../test/helpers/fault-suite.ts';

const report = await runFaultSuite({
  tasks: Number(process.env.FAULTS_TASKS ?? 50),
  kills: Number(process.env.FAULTS_KILLS ?? 100),
  redisRestarts: Number(process.env.FAULTS_REDIS_RESTARTS ?? 10),
  longOutages: Number(process.env.FAULTS_LONG_OUTAGES ?? 3),
  log: (line) => console.error(line),
});
console.log(formatFaultReport(report));
if (report.lost > 0 || report.duplicatedRuns > 0 || report.duplicatedDeliveries > 0 || !report.auditVerified)
  process.exitCode = 1;
