#!/usr/bin/env bash
# tests/integration/test_nginx.py runs the shipped deploy/nginx/bevforge.conf in Debian's nginx; install it
# when it is missing and we are allowed to (openssl makes the test's certificate). (Installed only: the tests start their own nginx on free ports.)
set -euo pipefail
if { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && command -v openssl >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "nginx is missing: run 'sudo apt-get install -y nginx openssl' for the reverse-proxy tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nginx openssl >/dev/null
