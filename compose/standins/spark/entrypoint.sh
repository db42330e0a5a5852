#!/bin/bash
# Like apache/spark's entrypoint outside Kubernetes: run the given command (the compose
# files start the master and worker daemons with spark-class) under tini.
set -e
if [ $# -eq 0 ]; then
  echo "usage: /opt/entrypoint.sh COMMAND..." >&2
  exit 2
fi
exec /usr/bin/tini -s -- "$@"
