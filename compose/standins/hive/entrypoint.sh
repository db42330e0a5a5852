#!/bin/bash
# apache/hive's entrypoint contract for SERVICE_NAME=metastore, served by Hive 2.3.9's
# HiveMetaStore: DB_DRIVER (postgres or derby) and SERVICE_OPTS (the -Djavax.jdo.option.*
# connection settings) as the compose files pass them; conf from /opt/hive/conf.
#
# Differences from Hive 4.1, on purpose and documented (docs/REHEARSAL.md):
# - the schema is created by DataNucleus (datanucleus.schema.autoCreateAll) instead of
#   `schematool -initOrUpgradeSchema`, which needs Hive's SQL scripts that pyspark does not ship;
# - the warehouse is the local volume /opt/hive/data/warehouse: no S3A jars can be had offline,
#   so s3a:// locations cannot be created by this metastore.
set -e
SERVICE_NAME=${SERVICE_NAME:-metastore}
if [ "$SERVICE_NAME" != metastore ]; then
  echo "rehearsal hive: only SERVICE_NAME=metastore is available (got $SERVICE_NAME)" >&2
  exit 2
fi
case "${DB_DRIVER:-derby}" in
  postgres) ;;
  derby) SERVICE_OPTS="-Djavax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=/opt/hive/data/metastore_db;create=true $SERVICE_OPTS" ;;
  *) echo "rehearsal hive: DB_DRIVER=${DB_DRIVER} is not supported (postgres, derby)" >&2; exit 2 ;;
esac
classpath="/opt/hive/conf:/opt/spark/jars/*:/opt/hive/lib/postgres.jar"
# The image's wrapper (/opt/lakehouse/entrypoint.sh, the real one from compose/images/hive)
# puts a private metastore-site.xml with the database password on HADOOP_CLASSPATH. Hive 4
# reads that name; Hive 2.3's metastore reads hivemetastore-site.xml: a private copy under it.
IFS=: read -r -a entries <<< "${HADOOP_CLASSPATH:-}"
for entry in "${entries[@]}"; do
  if [ -f "$entry/metastore-site.xml" ]; then
    private="$(mktemp -d /tmp/rehearsal-hive-conf.XXXXXX)"
    (umask 077; cp "$entry/metastore-site.xml" "$private/hivemetastore-site.xml")
    classpath="$private:$classpath"
  fi
done
echo "rehearsal hive: Hive 2.3.9 metastore on :9083 (DB_DRIVER=${DB_DRIVER:-derby})"
# shellcheck disable=SC2086  # SERVICE_OPTS is a list of JVM options, as upstream
exec java -Xmx1G \
  -cp "$classpath" \
  -Dhive.async.log.enabled=false \
  -Ddatanucleus.schema.autoCreateAll=true \
  -Dhive.metastore.schema.verification=false \
  -Dhive.metastore.warehouse.dir=file:/opt/hive/data/warehouse \
  -Dderby.system.home=/tmp \
  $SERVICE_OPTS \
  org.apache.hadoop.hive.metastore.HiveMetaStore -p 9083
