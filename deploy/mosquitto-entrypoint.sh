#!/bin/sh
# Mosquitto in deploy/compose.yaml: write the password file from the environment (.env), then
# run the broker with deploy/mosquitto.conf. Users: `epcmon` (collectors) and the meters' user.
set -eu
mkdir -p /etc/mosquitto /var/lib/mosquitto
umask 077
: > /etc/mosquitto/passwd
mosquitto_passwd -b /etc/mosquitto/passwd epcmon "$EPCMON_MQTT_PASSWORD"
mosquitto_passwd -b /etc/mosquitto/passwd "${MQTT_METERS_USERNAME:-meters}" "$MQTT_METERS_PASSWORD"
chown mosquitto:mosquitto /etc/mosquitto/passwd
# The broker drops to user `mosquitto` before saving: its persistence directory must be its
# own, or persistence silently does nothing (docs/operations.md). Refuse to start otherwise.
chown -R mosquitto:mosquitto /var/lib/mosquitto
sh /etc/epcmon/check-mosquitto.sh /mosquitto/config/mosquitto.conf
exec mosquitto -c /mosquitto/config/mosquitto.conf
