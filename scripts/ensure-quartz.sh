#!/usr/bin/env bash
# tests/test_quartz_differential.py compares linqra's cron evaluation with Quartz 2.3.2 itself
# (the Debian package libquartz2-java, compiled against and run with the JDK's javac/java).
set -euo pipefail
missing=()
if ! compgen -G "/usr/share/java/quartz2*.jar" >/dev/null; then missing+=(libquartz2-java); fi
if ! command -v javac >/dev/null 2>&1; then missing+=(default-jdk-headless); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing the Debian packages ${missing[*]} (Quartz differential test)" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
compgen -G "/usr/share/java/quartz2*.jar" >/dev/null && command -v javac >/dev/null
