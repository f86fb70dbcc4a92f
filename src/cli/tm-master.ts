#!/usr/bin/env node
import { runMaster } from "../master/master.ts";
import { ProgressLine } from "../progress.ts";
import type { CommandSpec } from "./command.ts";
import { main, onStopSignals, parseJobOptions, requireTarget } from "./command.ts";
import { connectionFlags, insecureFlag, masterFlags, masterOptions, masterSecurityFlags, wantProgress } from "./flags.ts";
import { masterSample, reportResult } from "./summary.ts";

const spec: CommandSpec = {
  name: "tm-master",
  usage: "tm-master TARGET [key=value ...]",
  summary:
    "Runs the master of a batch: pulls jobs from TARGET's getJobs, hands them to workers (tm-worker, tm-spawn)\n" +
    "that connect to --address, and records progress in a state file so that a stopped run resumes.",
  flags: { ...connectionFlags, ...masterFlags, ...masterSecurityFlags, ...insecureFlag },
  epilog:
    "TARGET is a module (jobs.ts, ./jobs.mjs, some-package/jobs) optionally followed by :exportName.\n" +
    "key=value arguments are passed to getJobs as options.\n" +
    "exit codes: 0 all jobs done, 1 usage or setup error, 2 finished with failed jobs, 130 stopped by a signal.",
};

await main(spec, async ({ flags, positionals, logger }) => {
  const target = requireTarget(spec, positionals);
  const master = runMaster({ target, options: parseJobOptions(positionals.slice(1)), ...masterOptions(flags), logger });
  const progress = wantProgress(flags)
    ? new ProgressLine(() => masterSample(master.stats()), { stream: process.stderr, logger })
    : undefined;
  master.listening.then(
    () => progress?.start(),
    () => undefined,
  );
  const removeSignals = onStopSignals((now) => master.stop({ now }), logger);
  try {
    const result = await master.finished;
    progress?.stop();
    reportResult(logger, result, master.stats().elapsedMs);
    return result.exitCode;
  } finally {
    progress?.stop();
    removeSignals();
  }
});
