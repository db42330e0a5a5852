#!/bin/bash
# Give Hive the metastore database password without putting it on a command line or in the
# container's configured environment (what `docker inspect` shows): read it from METASTORE_DB_PASSWORD_FILE (a compose secret in
# staging and prod) or, in dev, from METASTORE_DB_PASSWORD, write it into a metastore-site.xml
# that only this user can read, and put that directory on Hive's classpath. Then run the
# image's own entrypoint unchanged.
set -euo pipefail

password=""
if [[ -n "${METASTORE_DB_PASSWORD_FILE:-}" ]]; then
  password="$(<"${METASTORE_DB_PASSWORD_FILE}")"
elif [[ -n "${METASTORE_DB_PASSWORD:-}" ]]; then
  password="${METASTORE_DB_PASSWORD}"
fi
unset METASTORE_DB_PASSWORD

if [[ -n "${password}" ]]; then
  conf="$(mktemp -d /tmp/lakehouse-conf.XXXXXX)"
  # XML-escape the value (generated secrets are URL-safe, but a chosen one may not be).
  escaped="${password//&/&amp;}"; escaped="${escaped//</&lt;}"; escaped="${escaped//>/&gt;}"
  (
    umask 077
    cat > "${conf}/metastore-site.xml" <<XML
<?xml version="1.0"?>
<configuration>
  <property>
    <name>javax.jdo.option.ConnectionPassword</name>
    <value>${escaped}</value>
  </property>
</configuration>
XML
  )
  export HADOOP_CLASSPATH="${conf}${HADOOP_CLASSPATH:+:${HADOOP_CLASSPATH}}"
fi
unset password escaped

# S3 keys for Hadoop's EnvironmentVariableCredentialsProvider: from files when given.
for name in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  file_var="${name}_FILE"
  if [[ -n "${!file_var:-}" ]]; then
    export "${name}=$(<"${!file_var}")"
    unset "${file_var}"
  fi
done
unset name file_var

exec /entrypoint.sh "$@"
