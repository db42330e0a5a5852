#!/usr/bin/env bash
# Prepare Superset's metadata database, ensure the admin account exists, then hand over to
# the image's own gunicorn launcher (/usr/bin/run-server.sh, tuned by SERVER_WORKER_AMOUNT,
# GUNICORN_TIMEOUT and friends). Every step is idempotent, so a restart is safe.
set -euo pipefail

superset db upgrade
superset fab create-admin \
    --username "${SUPERSET_ADMIN_USER}" \
    --password "${SUPERSET_ADMIN_PASSWORD}" \
    --firstname Lakehouse --lastname Admin \
    --email "${SUPERSET_ADMIN_EMAIL}" || echo "admin user ${SUPERSET_ADMIN_USER} already exists"
superset init

exec /usr/bin/run-server.sh
