/**
 * The progress line on stderr. On a terminal it is one line redrawn in place; elsewhere (a log
 * file, CI) it is a plain line every few seconds. It never touches stdout.
 */
import type { Logger, StatusLine } from "./log.ts";

export interface ProgressSample {
  done: number;
  failed: number;
  workers: number;
  /** Jobs waiting in the master's buffer, and its size (master only). */
  queued?: number | undefined;
  size?: number | undefined;
  /** Jobs running right now (workers only). */
  running?: number | undefined;
  total?: number | undefined;
  elapsedMs: number;
}

export interface ProgressOptions {
  stream: NodeJS.WriteStream;
  /** The logger whose lines must not overwrite the progress line. */
  logger: Logger;
  /** Redraw interval on a terminal. */
  ttyIntervalMs?: number;
  /** Line interval elsewhere. */
  plainIntervalMs?: number;
}

/** Seconds over which the rate is averaged. */
const RATE_WINDOW_MS = 5000;

export class ProgressLine implements StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private readonly samples: { at: number; finished: number }[] = [];
  private text = "";
  private readonly tty: boolean;

  constructor(
    private readonly read: () => ProgressSample,
    private readonly options: ProgressOptions,
  ) {
    this.tty = options.stream.isTTY === true;
  }

  start(): void {
    const interval = this.tty ? (this.options.ttyIntervalMs ?? 200) : (this.options.plainIntervalMs ?? 5000);
    if (this.tty) this.options.logger.setStatusLine(this);
    this.timer = setInterval(() => this.update(), interval);
    this.timer.unref();
  }

  /** Draws the final state and stops. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.update();
    if (this.tty) {
      this.options.stream.write("\n");
      this.options.logger.setStatusLine(undefined);
    }
  }

  clear(): void {
    if (this.text) this.options.stream.write("\r\x1b[2K");
  }

  redraw(): void {
    if (this.text) this.options.stream.write(this.text);
  }

  private update(): void {
    const sample = this.read();
    const line = formatProgress(sample, this.rate(sample));
    if (this.tty) {
      const width = this.options.stream.columns || 120;
      this.text = line.length > width - 1 ? line.slice(0, width - 1) : line;
      this.options.stream.write(`\r\x1b[2K${this.text}`);
    } else {
      this.options.stream.write(`${line}\n`);
    }
  }

  /** Jobs per second over the last few seconds. */
  private rate(sample: ProgressSample): number {
    const now = sample.elapsedMs;
    const finished = sample.done + sample.failed;
    this.samples.push({ at: now, finished });
    while (this.samples.length > 2 && now - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift();
    const first = this.samples[0]!;
    const span = now - first.at;
    return span > 0 ? ((finished - first.finished) * 1000) / span : 0;
  }
}

export function formatProgress(sample: ProgressSample, rate: number): string {
  const parts = [`${count(sample.done)} done`];
  if (sample.failed > 0) parts.push(`${count(sample.failed)} failed`);
  parts.push(`${count(Math.round(rate))}/s`);
  if (sample.queued !== undefined && sample.size !== undefined) {
    parts.push(`in queue ${count(sample.queued)}/${count(sample.size)}`);
  }
  if (sample.running !== undefined) parts.push(`${count(sample.running)} running`);
  parts.push(`${sample.workers} worker${sample.workers === 1 ? "" : "s"}`);
  parts.push(duration(sample.elapsedMs));
  const total = sample.total;
  if (total !== undefined && total > 0) {
    const finished = sample.done + sample.failed;
    // Rounded down: 100.0% means every job has finished.
    parts.push(`${(Math.floor(Math.min(1000, (finished * 1000) / total)) / 10).toFixed(1)}%`);
    if (rate > 0 && finished < total) parts.push(`ETA ${duration(((total - finished) / rate) * 1000)}`);
  }
  return parts.join(" · ");
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** h:mm:ss */
export function duration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}
