/**
 * What every tm-* command shares: flag parsing (node:util's parseArgs, strict), environment
 * variables that mirror flags (`--max-attempts` ↔ `TM_MAX_ATTEMPTS`), --help and --version,
 * signals, and the rule that a user's mistake is one line on stderr and exit 1, with the
 * stack trace only under `--log-level debug`.
 */
import { readFileSync } from "node:fs";
import type { ParseArgsConfig } from "node:util";
import { parseArgs } from "node:util";
import { ExitCode, UserError, errorDetail, messageOf } from "../errors.ts";
import type { LogLevel } from "../log.ts";
import { LOG_LEVELS, Logger, parseLogLevel } from "../log.ts";

export interface FlagSpec {
  type: "string" | "boolean";
  help: string;
  /** Shown after the flag in --help: `--size N`. */
  value?: string;
  short?: string;
}

export interface CommandSpec {
  name: string;
  usage: string;
  summary: string;
  flags: Record<string, FlagSpec>;
  /** Extra text after the flags in --help. */
  epilog?: string;
}

export type FlagValues = Record<string, string | boolean | undefined>;

export interface Invocation {
  flags: FlagValues;
  positionals: string[];
  logger: Logger;
  logLevel: LogLevel;
}

/** Flags every command has. */
export const commonFlags: Record<string, FlagSpec> = {
  "log-level": { type: "string", value: "LEVEL", help: `one of ${LOG_LEVELS.join(", ")} (default info)` },
  help: { type: "boolean", short: "h", help: "show this help" },
  version: { type: "boolean", help: "show the version" },
};

export function envName(flag: string): string {
  return `TM_${flag.toUpperCase().replace(/-/g, "_")}`;
}

/**
 * Runs a command: parses `argv`, handles --help/--version, calls `body`, and exits with the code
 * it returns. Errors become one line (UserError) or a report of a bug (anything else).
 */
export async function main(
  spec: CommandSpec,
  body: (invocation: Invocation) => Promise<number>,
  argv: string[] = process.argv.slice(2),
): Promise<never> {
  let logLevel: LogLevel = "info";
  let code: number;
  try {
    const invocation = parse(spec, argv);
    logLevel = invocation.logLevel;
    if (invocation.flags.help) {
      process.stdout.write(helpText(spec));
      code = ExitCode.Ok;
    } else if (invocation.flags.version) {
      process.stdout.write(`${spec.name} ${version()}\n`);
      code = ExitCode.Ok;
    } else {
      code = await body(invocation);
    }
  } catch (error) {
    code = report(spec.name, error, logLevel);
  }
  // Let stderr drain before exiting: progress and log lines must not be cut short.
  await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
  process.exit(code);
}

function report(name: string, error: unknown, level: LogLevel): number {
  if (error instanceof UserError) {
    process.stderr.write(`${name}: ${error.message}\n`);
    if (level === "debug") process.stderr.write(`${errorDetail(error)}\n`);
    return error.exitCode;
  }
  process.stderr.write(`${name}: unexpected error: ${messageOf(error)}\n${errorDetail(error)}\n`);
  return ExitCode.Usage;
}

const NEGATIVE_NUMBER = /^-\d/;
const HIDDEN = "\u0000";

function parse(spec: CommandSpec, argv: string[]): Invocation {
  const flags = { ...spec.flags, ...commonFlags };
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, f] of Object.entries(flags)) options[name] = f.short ? { type: f.type, short: f.short } : { type: f.type };
  let parsed: { values: FlagValues; positionals: string[] };
  try {
    // A negative number is a (wrong) positional, not a flag: hide it from parseArgs so that the
    // command can say what is wrong with it.
    const args = argv.map((arg) => (NEGATIVE_NUMBER.test(arg) ? HIDDEN + arg : arg));
    const result = parseArgs({ args, options, allowPositionals: true, strict: true });
    // No flag is declared `multiple`, so no value is an array.
    const values = Object.fromEntries(
      Object.entries(result.values).map(([k, v]) => [k, typeof v === "string" ? v.replace(HIDDEN, "") : v]),
    ) as FlagValues;
    parsed = { values, positionals: result.positionals.map((arg) => arg.replace(HIDDEN, "")) };
  } catch (error) {
    throw new UserError(`${messageOf(error).replace(/\.$/, "")} (see ${spec.name} --help)`);
  }
  const values = parsed.values;
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (values[name] !== undefined) continue;
    const env = process.env[envName(name)];
    if (env === undefined || env === "") continue;
    values[name] = flag.type === "boolean" ? /^(1|true|yes|on)$/i.test(env) : env;
  }
  const levelText = stringFlag(values, "log-level") ?? process.env[envName("log-level")] ?? "info";
  const logLevel = parseLogLevel(levelText);
  if (!logLevel) throw new UserError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, not '${levelText}'`);
  return { flags: values, positionals: parsed.positionals, logger: new Logger(spec.name, logLevel), logLevel };
}

function helpText(spec: CommandSpec): string {
  const flags = { ...spec.flags, ...commonFlags };
  const rows = Object.entries(flags).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${name}${f.value ? ` ${f.value}` : ""}`;
    const env = name in commonFlags && name !== "log-level" ? "" : ` [${envName(name)}]`;
    return [left, `${f.help}${env}`] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const lines = rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`);
  return `usage: ${spec.usage}\n\n${spec.summary}\n\noptions:\n${lines.join("\n")}\n${spec.epilog ? `\n${spec.epilog}\n` : ""}`;
}

let cachedVersion: string | undefined;

export function version(): string {
  if (!cachedVersion) {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    cachedVersion = pkg.version;
  }
  return cachedVersion;
}

// ---- reading flag values -------------------------------------------------------------------

export function stringFlag(flags: FlagValues, name: string): string | undefined {
  const value = flags[name];
  return typeof value === "string" ? value : undefined;
}

/** A flag that must be a whole number >= `min`; undefined when not given. */
export function integerFlag(flags: FlagValues, name: string, min = 1): number | undefined {
  const text = stringFlag(flags, name);
  if (text === undefined) return undefined;
  return parseInteger(text, `--${name}`, min);
}

export function parseInteger(text: string, what: string, min = 1): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    const kind = min === 1 ? "a positive whole number" : `a whole number >= ${min}`;
    throw new UserError(`${what} must be ${kind}, not '${text}'`);
  }
  return value;
}

/** `key=value` arguments: the options given to getJobs. */
export function parseJobOptions(args: string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const arg of args) {
    const at = arg.indexOf("=");
    if (at <= 0) throw new UserError(`unexpected argument '${arg}': options for getJobs are written key=value`);
    options[arg.slice(0, at)] = arg.slice(at + 1);
  }
  return options;
}

/** The TARGET positional, or a one-line error. */
export function requireTarget(spec: CommandSpec, positionals: string[]): string {
  const target = positionals[0];
  if (!target) throw new UserError(`missing TARGET (usage: ${spec.usage})`);
  return target;
}

/** The N positional (after TARGET) of tm-run and tm-spawn, or a one-line error. */
export function requireWorkerCount(spec: CommandSpec, positionals: string[]): number {
  const count = positionals[1];
  if (count === undefined) throw new UserError(`missing N, the number of workers (usage: ${spec.usage})`);
  return parseInteger(count, "N, the number of workers,");
}

/**
 * Calls `stop` on SIGINT/SIGTERM: the first asks for a graceful stop, the next for an immediate
 * one. Returns a function that removes the handlers.
 */
export function onStopSignals(stop: (now: boolean) => void, logger: Logger): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    logger.debug(`received ${signal}`);
    stop(count > 1);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
