/**
 * Helpers for end-to-end tests: start the real commands as child processes, give each test its
 * own port and directory, wait on their output and exit codes (never on fixed sleeps), and
 * count, job by job, what the workers handled.
 */
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";

export const root = fileURLToPath(new URL("../..", import.meta.url));
export const fixture = (name: string): string => join(root, "test", "fixtures", name);

export type Command = "tm-master" | "tm-worker" | "tm-slave" | "tm-spawn" | "tm-run" | "tm-keygen";

const scripts: Record<Command, string> = {
  "tm-master": "tm-master.js",
  "tm-worker": "tm-worker.js",
  "tm-slave": "tm-worker.js",
  "tm-spawn": "tm-spawn.js",
  "tm-run": "tm-run.js",
  "tm-keygen": "tm-keygen.js",
};

/** A loopback address with a port that was free a moment ago. */
export async function freeAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return `tcp://127.0.0.1:${address.port}`;
}

/** A fresh directory, removed when the test ends. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "tm-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running command: its output so far, its exit, and ways to wait for what it prints. */
export class Proc {
  stdout = "";
  stderr = "";
  readonly exited: Promise<Exit>;
  private readonly watchers: (() => void)[] = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (text: string) => {
      this.stdout += text;
      this.notify();
    });
    child.stderr?.setEncoding("utf8").on("data", (text: string) => {
      this.stderr += text;
      this.notify();
    });
    this.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once stderr (or stdout) matches; rejects if the process exits first. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const test = () => pattern.exec(this.stderr) ?? pattern.exec(this.stdout);
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = test();
        if (match) {
          cleanup();
          resolve(match);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms\n--- stderr:\n${this.stderr}`));
      }, timeoutMs);
      const onExit = () => {
        const match = test();
        cleanup();
        if (match) resolve(match);
        else reject(new Error(`${this.name} exited before printing ${pattern}\n--- stderr:\n${this.stderr}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        const at = this.watchers.indexOf(check);
        if (at >= 0) this.watchers.splice(at, 1);
        this.child.off("exit", onExit);
      };
      this.watchers.push(check);
      this.child.once("exit", onExit);
      check();
    });
  }

  /** The exit, or an error with the output if it takes longer than `timeoutMs`. */
  async exit(timeoutMs = 60_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms\n--- stderr:\n${this.stderr}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  private notify(): void {
    for (const watcher of [...this.watchers]) watcher();
  }
}

export interface StartOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
}

/** Starts a command from dist/ (built by `npm test` before the tests run). */
export function start(t: TestContext, command: Command, args: string[], options: StartOptions = {}): Proc {
  const child = spawn(process.execPath, [join(root, "dist", "cli", scripts[command]), ...args], {
    cwd: options.cwd ?? root,
    env: { ...process.env, TM_LOG_LEVEL: undefined, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = new Proc(command, child);
  // A test that fails half-way must not leave processes behind.
  t.after(() => proc.kill("SIGKILL"));
  return proc;
}

/** Waits for all to exit; if one does not in time, the error shows what each printed. */
export async function allExit<T extends Proc[]>(procs: [...T], timeoutMs = 60_000): Promise<{ [K in keyof T]: Exit }> {
  try {
    return (await Promise.all(procs.map((p) => p.exit(timeoutMs)))) as { [K in keyof T]: Exit };
  } catch (error) {
    const outputs = procs.map((p) => `--- ${p.name} (pid ${p.pid}, exit ${p.child.exitCode ?? p.child.signalCode ?? "running"}):\n${p.stderr}`);
    throw new Error(`${(error as Error).message.split("\n")[0]}\n${outputs.join("\n")}`, { cause: error });
  }
}

/** Runs a command to its end. */
export async function runToEnd(
  t: TestContext,
  command: Command,
  args: string[],
  options: StartOptions = {},
  timeoutMs = 60_000,
): Promise<{ exit: Exit; stdout: string; stderr: string }> {
  const proc = start(t, command, args, options);
  const exit = await proc.exit(timeoutMs);
  return { exit, stdout: proc.stdout, stderr: proc.stderr };
}

/** How many times each job was handled, from the recorder fixture's logs in `dir`. */
export function handledJobs(dir: string): Map<number, number> {
  const counts = new Map<number, number>();
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".log"));
  } catch {
    return counts;
  }
  for (const file of files) {
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      if (!line) continue;
      const job = Number(line);
      counts.set(job, (counts.get(job) ?? 0) + 1);
    }
  }
  return counts;
}

/** Jobs 0 … n-1 never handled, and how many extra times jobs were handled. */
export function tally(counts: Map<number, number>, n: number): { lost: number[]; duplicates: number; unexpected: number[] } {
  const lost: number[] = [];
  let duplicates = 0;
  for (let job = 0; job < n; job++) {
    const c = counts.get(job) ?? 0;
    if (c === 0) lost.push(job);
    else duplicates += c - 1;
  }
  const unexpected = [...counts.keys()].filter((job) => !(Number.isInteger(job) && job >= 0 && job < n));
  return { lost, duplicates, unexpected };
}

/** Polls `condition` every 20 ms until it holds; for state that shows in files, not output. */
export async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A one-line error: no stack trace lines. */
export function isOneLine(stderr: string): boolean {
  const lines = stderr.trim().split("\n");
  return lines.length === 1 && !/^\s+at /m.test(stderr);
}
