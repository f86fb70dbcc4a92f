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
