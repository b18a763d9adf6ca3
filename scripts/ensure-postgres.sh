#!/usr/bin/env bash
# The PostgreSQL tests start a throwaway server from Debian's `postgresql` (initdb, pg_ctl in
# /usr/lib/postgresql/<major>/bin). Debian's package starts a system cluster of its own; the tests never use it.
exec bash "$(dirname "$0")/ensure-packages.sh" "postgresql=/usr/lib/postgresql/*/bin/pg_ctl"
