/**
 * The seed's counting example, in TypeScript: a million numbers, each "handled" by adding it to
 * a running sum. Run it with `npx tm-run examples/count.ts 2`, stop it with Ctrl-C, run the same
 * command again and it carries on where it stopped.
 */
import type { JobContext } from "taskmaster";

/** Enables the percentage and the ETA in the progress line. */
export const total = 1_000_000;

/** Yields the jobs; a resumed run passes the job it stopped at as `last` (inclusive). */
export function* getJobs({ last }: { last?: number }): Generator<number> {
  for (let i = last ?? 0; i < total; i++) yield i;
}

let sum = 0;

/** Must be idempotent: a resumed run may run a job again. */
export function handleJob(job: number, ctx: JobContext): void {
  sum += job;
  if (ctx.attempt > 1) ctx.log.info(`retried (attempt ${ctx.attempt})`);
}

process.on("exit", () => {
  if (process.env.TM_EXAMPLE_VERBOSE) console.error(`worker ${process.pid}: sum ${sum}`);
});
