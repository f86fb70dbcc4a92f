/**
 * Job ids travel and are stored as runs: a flat array `[start, count, start, count, …]`.
 * Batches are mostly contiguous, so acknowledging a thousand jobs costs two numbers, not a
 * thousand.
 */
export type IdRuns = number[];

/** Collects ids into runs, merging each id into the previous run when it follows it. */
export class IdRunsBuilder {
  private runs: IdRuns = [];
  private ids = 0;

  get count(): number {
    return this.ids;
  }

  add(id: number): void {
    this.addRun(id, 1);
  }

  addRun(start: number, count: number): void {
    const runs = this.runs;
    const n = runs.length;
    if (n > 0 && runs[n - 2]! + runs[n - 1]! === start) runs[n - 1]! += count;
    else runs.push(start, count);
    this.ids += count;
  }

  /** The runs collected so far; the builder starts empty again. */
  take(): IdRuns {
    const runs = this.runs;
    this.runs = [];
    this.ids = 0;
    return runs;
  }
}

export function countIds(runs: IdRuns): number {
  let total = 0;
  for (let i = 1; i < runs.length; i += 2) total += runs[i]!;
  return total;
}

/** Renders runs as the state file and logs show them: "7-9,12". */
export function formatRuns(runs: IdRuns): string {
  const parts: string[] = [];
  for (let i = 0; i < runs.length; i += 2) {
    const start = runs[i]!;
    const count = runs[i + 1]!;
    parts.push(count === 1 ? `${start}` : `${start}-${start + count - 1}`);
  }
  return parts.join(",");
}

/** Parses "7-9,12" back into runs; undefined when the text is not such a list. */
export function parseRuns(text: string): IdRuns | undefined {
  if (text === "") return [];
  const runs: IdRuns = [];
  for (const part of text.split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) return undefined;
    const start = Number(match[1]);
    const end = match[2] === undefined ? start : Number(match[2]);
    if (!Number.isSafeInteger(end) || end < start) return undefined;
    runs.push(start, end - start + 1);
  }
  return runs;
}
