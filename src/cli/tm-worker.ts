#!/usr/bin/env node
import type { WorkerReport } from "../spawn.ts";
import { runWorker } from "../worker/worker.ts";
import type { CommandSpec } from "./command.ts";
import { main, onStopSignals, requireTarget } from "./command.ts";
import { connectionFlags, workerFlags, workerOptions, workerSecurityFlags } from "./flags.ts";

const spec: CommandSpec = {
  name: "tm-worker",
  usage: "tm-worker TARGET   (also installed as tm-slave)",
  summary:
    "Runs one worker: connects to the master at --address and runs TARGET's handleJob for the jobs it is given,\n" +
    "--concurrency at a time. Exits 0 when the batch is done, 1 when the master cannot be reached.",
  flags: {
    ...connectionFlags,
    ...workerFlags,
    ...workerSecurityFlags,
    "no-progress": { type: "boolean", help: "accepted for symmetry: a worker draws no progress line" },
  },
  epilog: "TARGET is a module (jobs.ts, ./jobs.mjs, some-package/jobs) optionally followed by :exportName.",
};

await main(spec, async ({ flags, positionals, logger }) => {
  const target = requireTarget(spec, positionals);
  if (positionals.length > 1) logger.warn(`ignoring extra arguments: ${positionals.slice(1).join(" ")}`);
  const worker = runWorker({ target, ...workerOptions(flags), logger });
  const removeSignals = onStopSignals((now) => worker.stop({ now }), logger);

  // Started by tm-spawn or tm-run: report counters to the parent, and stop when it goes away.
  let outcome: string | undefined;
  const report = () =>
    new Promise<void>((resolve) => {
      const message: WorkerReport = { type: "taskmaster-worker-stats", ...worker.stats(), outcome };
      if (process.connected && process.send) process.send(message, undefined, undefined, () => resolve());
      else resolve();
    });
  let reporter: NodeJS.Timeout | undefined;
  if (process.send) {
    process.channel?.unref();
    process.on("disconnect", () => worker.stop());
    reporter = setInterval(() => void report(), 500);
    reporter.unref();
  }
  try {
    const result = await worker.finished;
    outcome = result.outcome;
    return result.exitCode;
  } catch (error) {
    outcome = "error";
    throw error;
  } finally {
    clearInterval(reporter);
    // The last report says how the run ended; the pool replaces a worker that sends none.
    if (process.send) await report();
    removeSignals();
  }
});
