#!/usr/bin/env bash
# CI: rebuild the console from console/ and fail when the build shipped in
# deployments/console_dist differs (someone changed the sources and did not run `npm run build`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/ensure-console.sh"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cd "$root/console"
npx tsc --noEmit -p .
npx vite build --logLevel warn --outDir "$out" --emptyOutDir
npx vite build --logLevel warn --config vite.widget.config.ts --outDir "$out"
node build-info.mjs "$out"
# the .gz copies are left out: their bytes depend on the zlib Node was built with (the test
# suite checks that each one decompresses to its file)
if ! diff -r -x '*.gz' "$out" "$root/deployments/console_dist"; then
  echo "the shipped console build is stale: cd console && npm run build, and commit deployments/console_dist" >&2
  exit 1
fi
echo "console build: up to date"
