#!/usr/bin/env bash
# Make sure PgBouncer and Prometheus (used by the tests as real servers) exist; install them
# from Debian when root. Debian's packages enable system services: they are stopped and
# disabled again, because the tests start their own instances on 127.0.0.1.
set -euo pipefail

missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing ${missing[*]}; install (Debian: sudo apt-get install ${missing[*]}) and rerun." >&2
  exit 1
fi
echo "Installing ${missing[*]} from Debian packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for service in "${missing[@]}"; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  fi
done
