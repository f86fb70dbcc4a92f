// 5 KB jobs for the memory benchmark: objects whose `body` is a `bytes`-character string that
// differs per job (the index is spliced into a fixed base string). Jobs are made one at a time
// as the master pulls them, never all up front; the handler does nothing.
const BASE_LENGTH = 5120;
const BASE = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(Math.ceil(BASE_LENGTH / 36)).slice(0, BASE_LENGTH);

export function* getJobs({ last, count = "100000", bytes = String(BASE_LENGTH) }) {
  const n = Number(count);
  const size = Number(bytes);
  const base = size <= BASE.length ? BASE.slice(0, size) : BASE.repeat(Math.ceil(size / BASE.length)).slice(0, size);
  const start = last === undefined ? 0 : last.id;
  for (let i = start; i < n; i++) {
    const tag = `#${i}#`;
    yield { id: i, body: tag + base.slice(tag.length) };
  }
}

export function handleJob() {}
