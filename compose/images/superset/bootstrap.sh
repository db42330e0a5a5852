#!/usr/bin/env bash
# Prepare Superset's metadata database, ensure the admin account exists, then hand over to
# the image's own gunicorn launcher (/usr/bin/run-server.sh, tuned by SERVER_WORKER_AMOUNT,
# GUNICORN_TIMEOUT and friends). Every step is idempotent, so a restart is safe.
set -euo pipefail

# Admin credentials from files (staging, prod: compose secrets) or the environment (dev).
if [[ -n "${SUPERSET_ADMIN_USER_FILE:-}" ]]; then SUPERSET_ADMIN_USER="$(<"${SUPERSET_ADMIN_USER_FILE}")"; fi
if [[ -n "${SUPERSET_ADMIN_PASSWORD_FILE:-}" ]]; then SUPERSET_ADMIN_PASSWORD="$(<"${SUPERSET_ADMIN_PASSWORD_FILE}")"; fi

superset db upgrade
# `--opt="$X"`: a value starting with `-` stays the option's value.
superset fab create-admin \
    --username="${SUPERSET_ADMIN_USER}" \
    --password="${SUPERSET_ADMIN_PASSWORD}" \
    --firstname=Lakehouse --lastname=Admin \
    --email="${SUPERSET_ADMIN_EMAIL}" || echo "the admin user already exists"
unset SUPERSET_ADMIN_USER SUPERSET_ADMIN_PASSWORD
superset init

exec /usr/bin/run-server.sh
