#!/usr/bin/env bash
# The MQTT tests start a real Mosquitto broker (tests/support/mosquitto.py); install Debian's package
# (mosquitto and mosquitto_passwd; openssl makes the TLS test's CA) when missing and we are allowed to.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  if command -v mosquitto_passwd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then exit 0; fi
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Mosquitto is missing: run 'sudo apt-get install -y mosquitto openssl' for the MQTT tests" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq mosquitto openssl >/dev/null
