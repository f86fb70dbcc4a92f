// No-op jobs for the throughput benchmark: integers from a synchronous generator, a handler
// that does nothing. What is left is taskmaster's own cost per job.
export function* getJobs({ last, count = "1000000" }) {
  const n = Number(count);
  for (let i = last ?? 0; i < n; i++) yield i;
}

export function handleJob() {}
