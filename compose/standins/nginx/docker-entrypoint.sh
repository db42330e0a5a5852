#!/bin/sh
# The upstream nginx image's entrypoint contract: when the command is nginx (or nginx-debug),
# run the executable *.sh scripts and source the executable *.envsh scripts of
# /docker-entrypoint.d in version order, then exec the command. NGINX_ENTRYPOINT_QUIET_LOGS
# silences its messages. This image ships the directory empty: the upstream scripts edit
# conf.d/default.conf (IPv6), render /etc/nginx/templates and tune worker_processes, none of
# which the TLS proxy's mounted nginx.conf uses.
set -e
say() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then echo "$0: $*"; fi
}
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    scripts=$(find /docker-entrypoint.d/ -follow -type f -print 2>/dev/null | sort -V)
    if [ -z "$scripts" ]; then
        say "No files found in /docker-entrypoint.d/, skipping configuration"
    fi
    for f in $scripts; do
        if [ ! -x "$f" ]; then say "Ignoring $f, not executable"; continue; fi
        case "$f" in
            *.envsh) say "Sourcing $f"; . "$f" ;;
            *.sh) say "Launching $f"; "$f" ;;
            *) say "Ignoring $f" ;;
        esac
    done
fi
exec "$@"
