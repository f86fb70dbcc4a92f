#!/usr/bin/env node
import { ProgressLine } from "../progress.ts";
import { run } from "../run.ts";
import type { CommandSpec } from "./command.ts";
import { main, onStopSignals, parseJobOptions, requireTarget, requireWorkerCount } from "./command.ts";
import { connectionFlags, insecureFlag, masterFlags, masterOptions, wantProgress, workerFlags, workerOptions } from "./flags.ts";
import { masterSample, reportResult } from "./summary.ts";

const spec: CommandSpec = {
  name: "tm-run",
  usage: "tm-run TARGET N [key=value ...]",
  summary:
    "Runs a whole batch on this host: a master and N worker processes. Exits with the master's code once\n" +
    "every job is done (or failed for good). Ctrl-C stops cleanly and saves the state; run again to resume.",
  flags: {
    ...connectionFlags,
    address: { type: "string", value: "URL", help: "where the master listens (default: a free port on 127.0.0.1)" },
    ...masterFlags,
    ...insecureFlag,
    ...workerFlags,
  },
  epilog:
    "TARGET is a module (jobs.ts, ./jobs.mjs, some-package/jobs); TARGET:name names its getJobs export.\n" +
    "key=value arguments are passed to getJobs as options.\n" +
    "exit codes: 0 all jobs done, 1 usage or setup error, 2 finished with failed jobs, 130 stopped by a signal.",
};

await main(spec, async ({ flags, positionals, logger, logLevel }) => {
  const target = requireTarget(spec, positionals);
  const workers = requireWorkerCount(spec, positionals);
  const { handleJob, concurrency, prefetch, jobTimeout } = workerOptions(flags);
  const batch = run({
    target,
    workers,
    options: parseJobOptions(positionals.slice(2)),
    ...masterOptions(flags),
    handleJob,
    concurrency,
    prefetch,
    jobTimeout,
    logger,
    workerLogLevel: logLevel === "info" ? "warn" : logLevel,
  });
  let progress: ProgressLine | undefined;
  if (wantProgress(flags)) {
    progress = new ProgressLine(
      () => {
        const { master } = batch.stats();
        return master
          ? masterSample(master)
          : { done: 0, failed: 0, workers: 0, elapsedMs: 0 };
      },
      { stream: process.stderr, logger },
    );
    batch.once("listening", () => progress?.start());
  }
  const removeSignals = onStopSignals((now) => batch.stop({ now }), logger);
  try {
    const result = await batch.finished;
    progress?.stop();
    reportResult(logger, result, batch.stats().master?.elapsedMs ?? 0);
    return result.exitCode;
  } finally {
    progress?.stop();
    removeSignals();
  }
});
