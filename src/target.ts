/**
 * Targets: where the user's `getJobs` and `handleJob` live. A target is a file path
 * (`jobs.ts`, `./lib/jobs.mjs`) or a package specifier resolved from the working directory
 * (`my-pkg/jobs`), optionally followed by `:exportName`. TypeScript files load through tsx.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { UserError, messageOf } from "./errors.ts";

export interface TargetSpec {
  /** The module part, as given. */
  module: string;
  /** The export named after the colon, if any. */
  exportName: string | undefined;
}

const MODULE_EXTENSIONS = [".ts", ".mts", ".cts", ".js", ".mjs", ".cjs"];
const TYPESCRIPT_EXTENSIONS = new Set([".ts", ".mts", ".cts"]);

/** Splits `module:exportName`; a colon that is not followed by an identifier is part of the path. */
export function parseTarget(text: string): TargetSpec {
  const match = /^(.+):([A-Za-z_$][\w$]*)$/.exec(text);
  if (match) return { module: match[1]!, exportName: match[2]! };
  return { module: text, exportName: undefined };
}

export interface JobModule {
  /** The module as the user named it. */
  specifier: string;
  /** The absolute file it was loaded from. */
  file: string;
  /** True when the target named a local file rather than a package. */
  local: boolean;
  exports: Record<string, unknown>;
}

/** Resolves and imports a job module. Throws a UserError naming what is missing. */
export async function loadJobModule(specifier: string, cwd: string): Promise<JobModule> {
  const { file, local } = resolveModule(specifier, cwd);
  if (TYPESCRIPT_EXTENSIONS.has(extname(file))) await registerTypeScript();
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UserError(`could not load ${specifier}: ${messageOf(error)}`, 1, { cause: error });
  }
  return { specifier, file, local, exports: namespace };
}

function resolveModule(specifier: string, cwd: string): { file: string; local: boolean } {
  const looksLikePath =
    specifier.startsWith(".") || isAbsolute(specifier) || MODULE_EXTENSIONS.includes(extname(specifier));
  const path = resolve(cwd, specifier);
  if (isFile(path)) return { file: path, local: true };
  if (!extname(specifier)) {
    for (const ext of MODULE_EXTENSIONS) if (isFile(path + ext)) return { file: path + ext, local: true };
  }
  if (looksLikePath) throw new UserError(`cannot find the job module ${specifier} (no file ${path})`);
  const file = resolvePackage(specifier, cwd);
  if (!file) {
    throw new UserError(`cannot find the job module ${specifier}: no such file, and no package of that name from ${cwd}`);
  }
  return { file, local: false };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Resolves a package specifier from `cwd` as Node would import it. `require.resolve` covers most
 * packages; an ESM-only package (exports with only an "import" condition) is resolved by hand.
 */
function resolvePackage(specifier: string, cwd: string): string | undefined {
  try {
    return createRequire(join(cwd, "noop.js")).resolve(specifier);
  } catch {
    // fall through to the exports map
  }
  const match = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(specifier);
  if (!match) return undefined;
  const name = match[1]!;
  const subpath = `.${match[2] ?? ""}`;
  for (let dir = cwd; ; dir = dirname(dir)) {
    const pkgDir = join(dir, "node_modules", name);
    const manifest = join(pkgDir, "package.json");
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { exports?: unknown };
      const exports = pkg.exports;
      const entry =
        typeof exports === "string" || isConditions(exports)
          ? subpath === "."
            ? exports
            : undefined
          : (exports as Record<string, unknown> | undefined)?.[subpath];
      const target = pickCondition(entry);
      return target ? join(pkgDir, target) : undefined;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

function isConditions(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Object.keys(value).some((k) => k.startsWith("."));
}

function pickCondition(entry: unknown): string | undefined {
  if (typeof entry === "string") return entry;
  if (typeof entry !== "object" || entry === null) return undefined;
  const conditions = entry as Record<string, unknown>;
  for (const key of ["import", "node", "default"]) {
    const found = pickCondition(conditions[key]);
    if (found) return found;
  }
  return undefined;
}

let typescriptRegistered: Promise<void> | undefined;

/** Lets `import()` load TypeScript (ESM and CommonJS) through tsx, once per process. */
function registerTypeScript(): Promise<void> {
  typescriptRegistered ??= (async () => {
    const [esm, cjs] = await Promise.all([import("tsx/esm/api"), import("tsx/cjs/api")]);
    esm.register();
    cjs.register();
  })();
  return typescriptRegistered;
}

/** A function export found in a job module. */
export interface JobFunction {
  name: string;
  fn: (...args: never[]) => unknown;
  /** True when the name was one of the defaults rather than given by the user. */
  isDefault: boolean;
}

/**
 * Finds the function `explicit`, or else the first of `defaults`. Throws a UserError listing the
 * exports that do exist.
 */
export function pickFunction(
  mod: JobModule,
  explicit: string | undefined,
  defaults: readonly string[],
): JobFunction {
  const names = explicit ? [explicit] : defaults;
  for (const name of names) {
    const value = lookup(mod, name);
    if (typeof value === "function") {
      return { name, fn: value as JobFunction["fn"], isDefault: explicit === undefined };
    }
    if (value !== undefined) {
      const kind = typeof value;
      throw new UserError(`${mod.specifier}: export '${name}' is ${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind}, not a function`);
    }
  }
  const wanted = names.map((n) => `'${n}'`).join(" or ");
  const available = exportNames(mod);
  throw new UserError(
    `${mod.specifier} has no export ${wanted}; it exports ${available.length ? available.join(", ") : "nothing"}`,
  );
}

/** The `total` export: a number, or a function of the options that returns one. */
export async function readTotal(
  mod: JobModule,
  options: Record<string, string>,
): Promise<number | undefined> {
  let value = lookup(mod, "total");
  if (typeof value === "function") value = await (value as (o: unknown) => unknown)(options);
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Named exports, and for CommonJS modules the properties of `module.exports`. */
function lookup(mod: JobModule, name: string): unknown {
  if (name in mod.exports) return mod.exports[name];
  const fallback = mod.exports.default;
  if (typeof fallback === "object" && fallback !== null && name in fallback) {
    return (fallback as Record<string, unknown>)[name];
  }
  return undefined;
}

function exportNames(mod: JobModule): string[] {
  const names = new Set(Object.keys(mod.exports).filter((n) => n !== "default" && n !== "module.exports"));
  const fallback = mod.exports.default;
  if (typeof fallback === "object" && fallback !== null) for (const n of Object.keys(fallback)) names.add(n);
  else if (fallback !== undefined) names.add("default");
  return [...names].sort();
}

export const GET_JOBS_NAMES = ["getJobs", "get_jobs"] as const;
export const HANDLE_JOB_NAMES = ["handleJob", "handle_job"] as const;
