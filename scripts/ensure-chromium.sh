#!/usr/bin/env bash
# Make sure a headless Chromium exists for the report's browser tests; install Debian's when root.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: the report's browser tests need it (Debian: sudo apt-get install chromium)." >&2
  exit 1
fi
echo "Installing chromium from Debian packages for the report's browser tests..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
