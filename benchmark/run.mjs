// `npm run bench`: taskmaster's throughput and memory, measured through the real `tm-run` CLI.
//
//   1. ceiling   the ideal ZeroMQ + msgpack pipeline on this machine (/work/shared/bench/ceiling.mjs)
//   2. no-op     jobs/s of `tm-run benchmark/jobs/noop.mjs W` for W = 1 and 2, median of N runs,
//                timed from the master's "listening" log line to its "finished" line
//   3. memory    the master's peak RSS (VmHWM of the tm-run process) for 1e5 and 1e6 jobs of 5 KB
//
// Prints a table on stdout, progress on stderr, and writes benchmark/results/latest.json.
// usage: node benchmark/run.mjs [--jobs N] [--runs N] [--mem-jobs SMALL,LARGE]
//        (or BENCH_JOBS, BENCH_RUNS, BENCH_MEM_JOBS); run `npm run build` first.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { clearInterval, setInterval } from "node:timers";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(root, "dist/cli/tm-run.js");
const CEILING = "/work/shared/bench/ceiling.mjs";
const CEILING_JOBS = 5_000_000;
const TARGET_RATIO = 0.4;
const TARGET_GROWTH = 1.15;
const POLL_MS = 20;

const { values: argv } = parseArgs({
  options: {
    jobs: { type: "string", default: process.env.BENCH_JOBS ?? "5000000" },
    runs: { type: "string", default: process.env.BENCH_RUNS ?? "3" },
    "mem-jobs": { type: "string", default: process.env.BENCH_MEM_JOBS ?? "100000,1000000" },
  },
});
const JOBS = count(argv.jobs, "--jobs");
const RUNS = count(argv.runs, "--runs");
const [MEM_SMALL, MEM_LARGE] = argv["mem-jobs"].split(",").map((s) => count(s, "--mem-jobs"));
const tmp = mkdtempSync(join(tmpdir(), "tm-bench-"));

function count(text, name) {
  const n = Number(String(text).replaceAll("_", ""));
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name}: expected a positive integer, got ${text}`);
  return n;
}

const progress = (message) => process.stderr.write(`[bench] ${message}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmt = (n) => Math.round(n).toLocaleString("en-US");
const mb = (kb) => kb / 1024;

/** Runs the ceiling script and returns its jobs/s. */
function ceiling() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CEILING, String(CEILING_JOBS)], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.on("error", reject);
    child.on("exit", (code) => {
      const match = /ceiling:\s*(\d+)\s*jobs\/s/.exec(out);
      if (code !== 0 || !match) reject(new Error(`ceiling.mjs exited with ${code}: ${out.trim()}`));
      else resolve(Number(match[1]));
    });
  });
}

/** VmHWM and VmRSS of a process in KB, or undefined once it is gone. */
function memoryOf(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return { hwm: Number(/VmHWM:\s*(\d+)/.exec(status)?.[1] ?? 0), rss: Number(/VmRSS:\s*(\d+)/.exec(status)?.[1] ?? 0) };
  } catch {
    return undefined;
  }
}

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Runs `tm-run TARGET W count=C …` once. Timestamps the master's log lines as they arrive
 * (ms since spawn) and polls the peak RSS of the tm-run process (the master) and, separately,
 * of its worker processes. With `time: true` it runs under /usr/bin/time -f %M as a cross-check.
 */
function tmRun({ target, workers, jobs, extra = [], time = false }) {
  const state = join(tmp, `${target.replace(/\W+/g, "_")}.state.json`);
  const args = [CLI, target, String(workers), `count=${jobs}`, ...extra, "--no-progress", "--reset", "--state", state, "--log-level", "info"];
  const timeFile = join(tmp, "time.txt");
  const [command, commandArgs] = time
    ? ["/usr/bin/time", ["-f", "%M", "-o", timeFile, process.execPath, ...args]]
    : [process.execPath, args];
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const at = () => performance.now() - start;
    const child = spawn(command, commandArgs, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    const run = {
      workers,
      jobs,
      listeningMs: NaN,
      joinedMs: [],
      stateFinalMs: NaN,
      workersGoneMs: NaN,
      finishedMs: NaN,
      wallMs: NaN,
      done: NaN,
      masterPeakKb: 0,
      masterMaxRssKb: 0,
      workerPeakKb: 0,
      samples: 0,
    };
    const log = [];
    createInterface({ input: child.stderr }).on("line", (line) => {
      const t = at();
      log.push(line);
      if (/^tm-run: listening on /.test(line)) run.listeningMs = t;
      else if (/^tm-run: worker .* joined/.test(line)) run.joinedMs.push(t);
      else if (/^tm-run: finished: /.test(line)) {
        run.finishedMs = t;
        run.done = Number(/finished: ([\d,]+) done/.exec(line)[1].replaceAll(",", ""));
      }
    });
    let masterPid = time ? undefined : child.pid;
    let sawWorkers = false;
    const poll = () => {
      masterPid ??= childrenOf(child.pid)[0];
      if (masterPid === undefined) return;
      const master = memoryOf(masterPid);
      if (!master) return;
      run.samples++;
      run.masterPeakKb = Math.max(run.masterPeakKb, master.hwm);
      run.masterMaxRssKb = Math.max(run.masterMaxRssKb, master.rss);
      const workerPids = childrenOf(masterPid);
      for (const pid of workerPids) run.workerPeakKb = Math.max(run.workerPeakKb, memoryOf(pid)?.hwm ?? 0);
      if (workerPids.length > 0) sawWorkers = true;
      else if (sawWorkers && Number.isNaN(run.workersGoneMs)) run.workersGoneMs = at();
    };
    const timer = setInterval(poll, POLL_MS);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearInterval(timer);
      run.wallMs = at();
      // The master's last state-file write (when it saw the last job done), on this clock.
      try {
        const updated = Date.parse(JSON.parse(readFileSync(state, "utf8")).updated);
        run.stateFinalMs = updated - (performance.timeOrigin + start);
      } catch {
        // no state file: left as NaN
      }
      if (time) run.timeMaxRssKb = Number(readFileSync(timeFile, "utf8").trim().split("\n").pop());
      run.jobsPerSec = run.done / ((run.finishedMs - run.listeningMs) / 1000);
      run.jobsPerSecFromJoin = run.done / ((run.finishedMs - Math.min(...run.joinedMs)) / 1000);
      if (code !== 0 || run.done !== jobs || !(run.finishedMs > run.listeningMs)) {
        reject(new Error(`tm-run ${target} ${workers} count=${jobs} failed (exit ${code ?? signal}, ${run.done} done):\n${log.join("\n")}`));
      } else resolve(run);
    });
  });
}

function summarise(runs) {
  return {
    jobsPerSec: median(runs.map((r) => r.jobsPerSec)),
    jobsPerSecFromJoin: median(runs.map((r) => r.jobsPerSecFromJoin)),
    wallMs: median(runs.map((r) => r.wallMs)),
    startupMs: median(runs.map((r) => r.listeningMs)),
    masterPeakKb: median(runs.map((r) => r.masterPeakKb)),
    workerPeakKb: median(runs.map((r) => r.workerPeakKb)),
    timeMaxRssKb: runs[0].timeMaxRssKb === undefined ? undefined : median(runs.map((r) => r.timeMaxRssKb)),
  };
}

function table(headers, rows) {
  const cells = [headers, ...rows].map((row) => row.map(String));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  return [line(cells[0]), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

// ---- the runs ------------------------------------------------------------------------------

const began = performance.now();
const ceilings = [];
const noop = { 1: [], 2: [] };
const memory = [[], []]; // runs of MEM_SMALL, MEM_LARGE jobs
try {
  // Rounds rather than blocks, so a noisy minute on this shared machine hurts every configuration alike.
  for (let round = 1; round <= RUNS; round++) {
    const c = await ceiling();
    ceilings.push(c);
    progress(`round ${round}/${RUNS}: ceiling ${fmt(c)} jobs/s`);
    for (const workers of [1, 2]) {
      const r = await tmRun({ target: "benchmark/jobs/noop.mjs", workers, jobs: JOBS });
      noop[workers].push(r);
      progress(
        `round ${round}/${RUNS}: no-op W=${workers} ${fmt(r.jobsPerSec)} jobs/s (${fmt(r.done)} jobs, ` +
          `listening→finished ${(r.finishedMs - r.listeningMs).toFixed(0)} ms, wall ${r.wallMs.toFixed(0)} ms)`,
      );
    }
    for (const [i, jobs] of [MEM_SMALL, MEM_LARGE].entries()) {
      const r = await tmRun({ target: "benchmark/jobs/payload.mjs", workers: 2, jobs, time: true });
      memory[i].push(r);
      progress(
        `round ${round}/${RUNS}: 5 KB x ${fmt(jobs)}: master peak ${mb(r.masterPeakKb).toFixed(1)} MB ` +
          `(workers ${mb(r.workerPeakKb).toFixed(1)} MB, /usr/bin/time ${mb(r.timeMaxRssKb).toFixed(1)} MB), ` +
          `${fmt(r.jobsPerSec)} jobs/s, wall ${r.wallMs.toFixed(0)} ms`,
      );
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// ---- the report ----------------------------------------------------------------------------

const ceilingJobsPerSec = median(ceilings);
const noopSummary = { 1: summarise(noop[1]), 2: summarise(noop[2]) };
const memSmall = summarise(memory[0]);
const memLarge = summarise(memory[1]);
const growth = memLarge.masterPeakKb / memSmall.masterPeakKb;
const yes = (ok) => (ok ? "yes" : "NO");

const results = {
  date: new Date().toISOString(),
  machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg() },
  params: { jobs: JOBS, runs: RUNS, memJobs: [MEM_SMALL, MEM_LARGE], ceilingJobs: CEILING_JOBS, pollMs: POLL_MS },
  ceiling: { jobsPerSec: ceilingJobsPerSec, runs: ceilings },
  noop: Object.fromEntries(
    [1, 2].map((w) => [
      `workers${w}`,
      { ...noopSummary[w], ratioToCeiling: noopSummary[w].jobsPerSec / ceilingJobsPerSec, target: TARGET_RATIO, runs: noop[w] },
    ]),
  ),
  memory: {
    bytesPerJob: 5120,
    workers: 2,
    small: { jobs: MEM_SMALL, ...memSmall, runs: memory[0] },
    large: { jobs: MEM_LARGE, ...memLarge, runs: memory[1] },
    growth,
    target: TARGET_GROWTH,
  },
  totalMs: performance.now() - began,
};
const resultsDir = join(root, "benchmark/results");
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, "latest.json"), JSON.stringify(results, null, 2) + "\n");

console.log(`\ntaskmaster benchmark (${results.machine.node}, ${results.machine.cpus} CPUs, load ${loadavg()[0].toFixed(2)}; median of ${RUNS} runs)\n`);
console.log(
  table(
    ["throughput", "jobs", "jobs/s", "vs ceiling", ">= 0.4", "jobs/s from 1st join", "start-up ms", "wall ms", "master peak MB"],
    [
      ["ceiling (ideal pipeline)", fmt(CEILING_JOBS), fmt(ceilingJobsPerSec), "1.00", "", "", "", "", ""],
      ...[1, 2].map((w) => {
        const s = noopSummary[w];
        const ratio = s.jobsPerSec / ceilingJobsPerSec;
        return [
          `tm-run no-op, ${w} worker${w > 1 ? "s" : ""}`,
          fmt(JOBS),
          fmt(s.jobsPerSec),
          ratio.toFixed(2),
          yes(ratio >= TARGET_RATIO),
          fmt(s.jobsPerSecFromJoin),
          fmt(s.startupMs),
          fmt(s.wallMs),
          mb(s.masterPeakKb).toFixed(1),
        ];
      }),
    ],
  ),
);
console.log("");
console.log(
  table(
    ["memory (5 KB jobs, 2 workers)", "jobs", "master peak MB", "(min-max)", "worker peak MB", "/usr/bin/time MB", "jobs/s", "wall ms"],
    [
      [MEM_SMALL, memSmall, memory[0]],
      [MEM_LARGE, memLarge, memory[1]],
    ].map(([jobs, s, runs]) => [
      `payload x ${fmt(jobs)}`,
      fmt(jobs),
      mb(s.masterPeakKb).toFixed(1),
      `${mb(Math.min(...runs.map((r) => r.masterPeakKb))).toFixed(0)}-${mb(Math.max(...runs.map((r) => r.masterPeakKb))).toFixed(0)}`,
      mb(s.workerPeakKb).toFixed(1),
      mb(s.timeMaxRssKb).toFixed(1),
      fmt(s.jobsPerSec),
      fmt(s.wallMs),
    ]),
  ),
);
console.log(`\nmaster peak RSS growth ${fmt(MEM_LARGE)} / ${fmt(MEM_SMALL)}: ${growth.toFixed(2)}x (target <= ${TARGET_GROWTH.toFixed(2)}x: ${yes(growth <= TARGET_GROWTH)})`);
console.log(
  "jobs/s: from the master's \"listening\" log line to its \"finished\" line (worker start-up included, node start-up and module loading not);\n" +
    "master peak = VmHWM of the tm-run process polled every 20 ms; /usr/bin/time %M counts the largest of it and its workers.",
);
console.log(`results: benchmark/results/latest.json (bench took ${((performance.now() - began) / 1000).toFixed(0)} s)`);
