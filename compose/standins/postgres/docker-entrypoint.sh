#!/bin/bash
# Entrypoint of the postgres stand-in: behaves like the official postgres image's entrypoint
# for what the lakehouse stack uses.
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default $POSTGRES_USER),
#   POSTGRES_INITDB_ARGS, PGDATA (default /var/lib/postgresql/data),
#   POSTGRES_PASSWORD_FILE, POSTGRES_USER_FILE, POSTGRES_DB_FILE, POSTGRES_INITDB_ARGS_FILE:
#   read the variable from that file (docker/swarm secrets); setting both VAR and VAR_FILE is
#   an error, as in the official image,
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once on first start.
# `postgres` (or only flags) as arguments runs the server as user postgres in the foreground
# (exec: signals reach it). Any other command is executed as is (e.g. `tar`, `sha256sum`).
#
# Fault switches (rehearsal only), read from the file /tmp/standin-fault, else $STANDIN_FAULT:
#   none | slow-start:N | never-healthy | unhealthy | crash:N | crash-loop | exit:N
#   never-healthy/unhealthy: the server is not started until the fault is cleared
#   (`docker exec C sh -c 'echo none > /tmp/standin-fault'`).
set -Eeo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

log() { printf '%s [standin-postgres] %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

read_fault() {
	local f=""
	if [ -s /tmp/standin-fault ]; then
		f=$(head -n1 /tmp/standin-fault | tr -d '[:space:]')
	fi
	[ -n "$f" ] || f=${STANDIN_FAULT:-none}
	printf '%s' "$f"
}

# Sleep that SIGTERM/SIGINT interrupt at once.
nap() { sleep "${1:-1}" & wait $! || true; }

# file_env VAR: VAR from the file named by VAR_FILE (the official entrypoint's file_env).
file_env() {
	local var=$1 file_var="${1}_FILE"
	local val="${!var:-}" file="${!file_var:-}"
	if [ -n "$val" ] && [ -n "$file" ]; then
		log "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	if [ -n "$file" ]; then
		if [ ! -r "$file" ]; then
			log "error: $file_var names $file, which cannot be read"
			exit 1
		fi
		val=$(<"$file")
		export "$var"="$val"
	fi
	unset "$file_var"
}

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

prepare_dirs() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	chmod 2777 /var/run/postgresql
}

init_cluster() {
	local user=${POSTGRES_USER:-postgres}
	local db=${POSTGRES_DB:-$user}
	local method=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
		log "error: POSTGRES_PASSWORD is not set (set it, or POSTGRES_HOST_AUTH_METHOD=trust)"
		exit 1
	fi
	log "initialising database cluster in $PGDATA (user $user, database $db)"
	local pwfile
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
	chown postgres "$pwfile"
	# shellcheck disable=SC2086
	as_postgres initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" \
		--auth-local=trust --auth-host="$method" --encoding=UTF8 --locale=C.UTF-8 \
		${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	# A socket-only temporary server for the database and the init scripts.
	as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -s start
	if [ "$db" != postgres ]; then
		printf 'CREATE DATABASE :"db" OWNER :"owner";\n' |
			as_postgres psql -v ON_ERROR_STOP=1 -q --username "$user" --dbname postgres \
				-v db="$db" -v owner="$user" >/dev/null
	fi
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
		*.sh) log "running $f"; POSTGRES_USER=$user POSTGRES_DB=$db bash "$f" ;;
		*.sql) log "running $f"; as_postgres psql -v ON_ERROR_STOP=1 -q --username "$user" --dbname "$db" -f "$f" ;;
		*.sql.gz) log "running $f"; gzip -dc "$f" | as_postgres psql -v ON_ERROR_STOP=1 -q --username "$user" --dbname "$db" ;;
		*) log "ignoring $f" ;;
		esac
	done
	as_postgres pg_ctl -D "$PGDATA" -m fast -w -s stop
	log "initialisation complete"
}

# Runs the server in the background so that a fault can kill it; forwards signals.
supervise() {
	local mode=$1 n=$2 pid
	as_postgres postgres "${@:3}" &
	pid=$!
	trap 'kill -INT $pid 2>/dev/null; wait $pid; exit 0' TERM INT
	case "$mode" in
	crash)
		nap "$n"
		log "fault crash:$n: killing the server and exiting 1"
		kill -KILL "$pid" 2>/dev/null || true
		exit 1
		;;
	esac
	wait "$pid"
}

main() {
	if [ "${1:-postgres}" != postgres ] && [ "${1:0:1}" != - ]; then
		exec "$@"
	fi
	[ "${1:-}" = postgres ] && shift

	local fault
	trap 'log "stopped before the server started"; exit 0' TERM INT
	fault=$(read_fault)
	case "$fault" in
	exit:*) log "fault $fault"; exit "${fault#exit:}" ;;
	crash-loop) log "fault crash-loop: exiting 1"; nap 1; exit 1 ;;
	slow-start:*) log "fault $fault: waiting"; nap "${fault#slow-start:}" ;;
	never-healthy | unhealthy)
		log "fault $fault: server not started until the fault is cleared"
		while :; do
			fault=$(read_fault)
			case "$fault" in never-healthy | unhealthy) nap 1 ;; *) break ;; esac
		done
		;;
	esac

	local v
	for v in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB POSTGRES_INITDB_ARGS; do
		file_env "$v"
	done
	prepare_dirs
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		init_cluster
	fi
	trap - TERM INT
	fault=$(read_fault)
	case "$fault" in
	crash:*) supervise crash "${fault#crash:}" "$@" ;;
	*) exec setpriv --reuid=postgres --regid=postgres --init-groups -- postgres "$@" ;;
	esac
}

main "$@"
