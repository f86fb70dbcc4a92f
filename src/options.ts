/** Checks of numeric options shared by the master, the worker and the commands. */
import { UserError } from "./errors.ts";

/** `value` if it is a positive whole number, `fallback` if it is undefined; else a UserError. */
export function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new UserError(`${name} must be a positive whole number, not ${value}`);
  }
  return value;
}

/** `value` if it is a whole number >= 0, `fallback` if it is undefined; else a UserError. */
export function nonNegativeInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new UserError(`${name} must be a whole number >= 0, not ${value}`);
  }
  return value;
}

/** `--halt`: stop the batch once more than `failures` jobs, or more than `percent`% of them, failed. */
export type Halt = { failures: number } | { percent: number };

/** Parses `--halt N` or `--halt P%`. */
export function parseHalt(text: string): Halt {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text.trim());
  if (percent) {
    const value = Number(percent[1]);
    if (value > 0 && value < 100) return { percent: value };
  } else if (/^\d+$/.test(text.trim())) {
    return { failures: Number(text) };
  }
  throw new UserError(`--halt must be a number of failed jobs (10) or a percentage of them (5%), not '${text}'`);
}

export function describeHalt(halt: Halt): string {
  return "percent" in halt ? `${halt.percent}%` : String(halt.failures);
}
