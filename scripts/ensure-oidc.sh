#!/usr/bin/env bash
# The OIDC tests and benchmark B12 start a real OpenID provider (node-oidc-provider,
# linqra/testing/oidc_server, run from the source tree): make sure Node.js is there, and install
# the npm package from the lock file when node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")/../linqra/testing/oidc_server"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found; installing the Debian packages nodejs and npm" >&2
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ -d node_modules/oidc-provider ] && [ node_modules -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
