#!/usr/bin/env bash
# tests/test_prometheus.py starts a real Prometheus (and the alert tests an Alertmanager) on free
# loopback ports; make sure Debian's binaries exist. No service is started: the tests run their own.
set -euo pipefail
missing=()
if ! command -v prometheus >/dev/null 2>&1; then missing+=(prometheus); fi
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then missing+=(prometheus-alertmanager); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing the Debian packages ${missing[*]} (metrics and alert tests)" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null
