/**
 * Atomic file replacement: write a temp file beside the target, fsync it, rename it over the
 * target, fsync the directory. A crash at any moment leaves either the old file or the new one.
 */
import { open, rename } from "node:fs/promises";
import { dirname } from "node:path";

export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  const file = await open(temp, "w", 0o644);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  try {
    const dir = await open(dirname(path), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Some file systems cannot fsync a directory; the rename is still atomic.
  }
}
