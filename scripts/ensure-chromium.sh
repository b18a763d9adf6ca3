#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (/usr/bin/chromium).
exec bash "$(dirname "$0")/ensure-packages.sh" chromium=/usr/bin/chromium
