// After `tsc`: the commands in dist/cli must be executable, or `npx tm-run` in a fresh clone
// fails with "Permission denied" (npm only sets the mode of bins it links into node_modules).
import { chmodSync, readdirSync } from "node:fs";

const dir = new URL("../dist/cli/", import.meta.url);
for (const name of readdirSync(dir)) {
  if (/^tm-[a-z]+\.js$/.test(name)) chmodSync(new URL(name, dir), 0o755);
}
