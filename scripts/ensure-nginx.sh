#!/usr/bin/env bash
# tests/integration/test_nginx.py runs the shipped deploy/nginx/bevforge.conf in Debian's nginx (its own, on
# free ports); openssl makes the test's certificate.
exec bash "$(dirname "$0")/ensure-packages.sh" nginx=/usr/sbin/nginx openssl=openssl
