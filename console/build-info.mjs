// After a build, in the build's folder (default ../deployments/console_dist):
// * a gzip copy (`<file>.gz`) of every script and style sheet, which the gateway sends to
//   browsers that accept gzip (deployments/console.py) — made here, once, not per request;
// * build-info.json: a hash of every source file the build read, so a Python test
//   (tests/test_console.py) can tell a stale shipped build from a fresh one without Node. The
//   same file list and hash are computed there.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { constants, gzipSync } from "node:zlib";

const ROOTS = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts",
  "vite.widget.config.ts", "openapi.json", "src", "widget"];
const out = process.argv[2] ?? "../deployments/console_dist";

function files(path) {
  if (statSync(path).isDirectory()) return readdirSync(path).flatMap((name) => files(join(path, name)));
  return [path];
}

for (const file of files(out).filter((f) => /\.(js|css)$/.test(f))) {
  // no file name or time in the header: the same build gives the same bytes
  writeFileSync(`${file}.gz`, gzipSync(readFileSync(file), { level: constants.Z_BEST_COMPRESSION }));
}

const hash = createHash("sha256");
for (const file of ROOTS.flatMap((root) => files(root)).map((f) => relative(".", f).split("\\").join("/")).sort()) {
  hash.update(file + "\0");
  hash.update(readFileSync(file));
  hash.update("\0");
}
writeFileSync(join(out, "build-info.json"), JSON.stringify({ sources_sha256: hash.digest("hex") }) + "\n");
