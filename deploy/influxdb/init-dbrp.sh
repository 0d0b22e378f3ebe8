#!/bin/bash
# InfluxDB 2.7 first start (docker-entrypoint-initdb.d): map the InfluxQL database `epcmon`
# (storage.influx.database) to the bucket, so epcmon's and Grafana's InfluxQL reads find it.
# Without Docker, run the same command once after `influx setup` (docs/operations.md).
set -euo pipefail
influx v1 dbrp create \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db epcmon \
  --rp autogen \
  --default \
  --org "${DOCKER_INFLUXDB_INIT_ORG}"
