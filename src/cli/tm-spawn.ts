#!/usr/bin/env node
import { ProgressLine } from "../progress.ts";
import { WorkerPool } from "../spawn.ts";
import type { CommandSpec } from "./command.ts";
import { main, onStopSignals, requireTarget, requireWorkerCount } from "./command.ts";
import { connectionFlags, wantProgress, workerFlags, workerOptions, workerSecurityFlags } from "./flags.ts";

const spec: CommandSpec = {
  name: "tm-spawn",
  usage: "tm-spawn TARGET N",
  summary:
    "Starts N worker processes on this host (each like tm-worker TARGET) and exits when all have,\n" +
    "with the worst of their exit codes. Ctrl-C stops them cleanly; a second Ctrl-C at once.",
  flags: { ...connectionFlags, ...workerFlags, ...workerSecurityFlags, "no-progress": { type: "boolean", help: "no progress line" } },
};

await main(spec, async ({ flags, positionals, logger, logLevel }) => {
  const target = requireTarget(spec, positionals);
  const workers = requireWorkerCount(spec, positionals);
  const started = Date.now();
  const pool = new WorkerPool({ target, workers, ...workerOptions(flags), logLevel, logger });
  const progress = wantProgress(flags)
    ? new ProgressLine(
        () => {
          const s = pool.stats();
          return { done: s.done, failed: s.failed, running: s.running, workers: s.alive, elapsedMs: Date.now() - started };
        },
        { stream: process.stderr, logger },
      )
    : undefined;
  progress?.start();
  const removeSignals = onStopSignals((now) => pool.stop({ now }), logger);
  try {
    const result = await pool.finished;
    return result.exitCode;
  } finally {
    progress?.stop();
    removeSignals();
  }
});
