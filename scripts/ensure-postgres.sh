#!/usr/bin/env bash
# The PostgreSQL tests start a throwaway server from Debian's `postgresql` package (initdb, pg_ctl in
# /usr/lib/postgresql/<major>/bin); install it when it is missing and we are allowed to.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "PostgreSQL is missing: run 'sudo apt-get install -y postgresql' for the PostgreSQL tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
# Debian's package starts a system cluster of its own; the tests never use it (they start their own).
