# Shared by /standin/run and the CGI scripts (busybox sh).
STANDIN_STATE=/tmp/standin

# The directory the stand-in keeps its data in: its named volume, or a scratch dir.
standin_data_dir() {
	if [ -n "${STANDIN_DATA_DIR:-}" ]; then
		printf '%s' "$STANDIN_DATA_DIR"
	else
		printf '%s' "$STANDIN_STATE/data"
	fi
}

# The active fault: /tmp/standin-fault (this container only) overrides
# $DATA/.standin/fault (every container mounting the volume; survives re-creation),
# which overrides $STANDIN_FAULT. Empty or missing means "none".
standin_fault() {
	_f=""
	if [ -s /tmp/standin-fault ]; then
		_f=$(head -n1 /tmp/standin-fault | tr -d ' \t\r\n')
	fi
	if [ -z "$_f" ] && [ -n "${STANDIN_DATA_DIR:-}" ] && [ -s "$STANDIN_DATA_DIR/.standin/fault" ]; then
		_f=$(head -n1 "$STANDIN_DATA_DIR/.standin/fault" | tr -d ' \t\r\n')
	fi
	[ -n "$_f" ] || _f=${STANDIN_FAULT:-none}
	printf '%s' "$_f"
}

standin_log() {
	printf '%s [standin %s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${STANDIN_SERVICE:-?}" "$*" >&2
}
