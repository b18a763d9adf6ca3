#!/usr/bin/env bash
# Install the Debian packages the tests run for real (Chromium, nginx, Mosquitto, PostgreSQL, openssl) when
# they are missing and we are allowed to: one apt-get for all that are missing.
#   bash scripts/ensure-packages.sh PACKAGE=PROBE ...
# PROBE is a command name or a path (a glob is fine) that exists once PACKAGE is installed.
set -euo pipefail
missing=()
for pair in "$@"; do
  package="${pair%%=*}"
  probe="${pair#*=}"
  if [[ "$probe" == /* ]]; then
    compgen -G "$probe" >/dev/null && continue
  else
    command -v "$probe" >/dev/null 2>&1 && continue
  fi
  missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing for the tests: run 'sudo apt-get install -y ${missing[*]}'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
