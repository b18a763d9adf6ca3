#!/usr/bin/env bash
# The MQTT tests start a real Mosquitto broker (tests/support/mosquitto.py; mosquitto_passwd makes its
# password file); openssl makes the TLS test's CA.
exec bash "$(dirname "$0")/ensure-packages.sh" mosquitto=/usr/sbin/mosquitto mosquitto=mosquitto_passwd openssl=openssl
