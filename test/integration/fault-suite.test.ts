import { expect, it } from 'vitest';
import { describeDocker } from '../helpers/docker.ts';
import { formatFaultReport, runFaultSuite } from '../helpers/fault-suite.ts';

// The short version of bench/fault-suite.ts: real processes, real Redis and Docker, real kills.
describeDocker('fault suite (short): 2 bots and 3 runners under kills and Redis restarts', () => {
  it('ends every task with its deliverable or a reason, once, with a verifiable audit trail and nothing left over', async () => {
    const report = await runFaultSuite({
      tasks: 10,
      kills: 10,
      redisRestarts: 2,
      longOutages: 1,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stderr.write(`\n${formatFaultReport(report)}\n`);
    expect(report.lost).toBe(0);
    expect(report.succeeded + report.failedWithReason).toBe(10);
    expect(report.duplicatedRuns).toBe(0);
    expect(report.duplicatedApprovals).toBe(0);
    expect(report.duplicatedDeliveries).toBe(0);
    expect(report.auditVerified).toBe(true);
    expect(report.orphanContainers).toBe(0);
    expect(report.orphanWorkspaces).toBe(0);
    expect(report.kills).toBe(10);
    expect(report.redisRestarts).toBe(2);
  }, 900_000);
});
