#!/usr/bin/env bash
# Like apache/airflow's /entrypoint, for what the compose files use: `bash ...` and
# `python ...` run as given; anything else is an Airflow command (`webserver`, `scheduler`,
# `db migrate`, ...) run as `airflow ARGS`. Without arguments, a shell.
set -euo pipefail
if [[ $# -eq 0 ]]; then
  exec bash
fi
case "$1" in
  bash | python | python3 | airflow) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
