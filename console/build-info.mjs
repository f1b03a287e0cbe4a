// After a build: deployments/console_dist/build-info.json records a hash of every source file
// the build read, so a Python test (tests/test_console.py) can tell a stale shipped build from
// a fresh one without Node. The same file list and hash are computed there.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const ROOTS = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts",
  "vite.widget.config.ts", "openapi.json", "src", "widget"];

function files(path) {
  if (statSync(path).isDirectory()) return readdirSync(path).flatMap((name) => files(join(path, name)));
  return [path];
}

const hash = createHash("sha256");
for (const file of ROOTS.flatMap((root) => files(root)).map((f) => relative(".", f).split("\\").join("/")).sort()) {
  hash.update(file + "\0");
  hash.update(readFileSync(file));
  hash.update("\0");
}
const out = process.argv[2] ?? "../deployments/console_dist";
writeFileSync(join(out, "build-info.json"), JSON.stringify({ sources_sha256: hash.digest("hex") }) + "\n");
