#!/usr/bin/env bash
# The console's browser tests read axe-core from console/node_modules, and CI rebuilds the
# console (scripts/check-console-build.sh): install the npm packages from the lock file when
# node_modules is missing or older than the lock file. (Running Linqra needs none of this: the
# built console ships in deployments/console_dist.)
set -euo pipefail
cd "$(dirname "$0")/../console"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found; installing the Debian packages nodejs and npm" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
# Vite 8 needs Node.js 20.19+ (Debian 12's own nodejs is 18)
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "the console needs Node.js 20.19 or newer, found $(node --version): install a newer Node.js" >&2
  exit 1
fi
if [ -d node_modules/vite ] && [ node_modules -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
