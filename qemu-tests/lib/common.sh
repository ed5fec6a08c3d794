# shellcheck shell=sh
# Sourceable helpers shared by the QEMU scenarios.
#
#   verdict LOG          print PASS, FAIL or NONE from the guest's
#                        "LUKSIPC-VERDICT:" line(s) in LOG (any FAIL wins)
#   verdict_line LOG     print the last VERDICT line itself (for reports)
#   disk_hash IMG [BYTES]  sha256 of IMG (or of its first BYTES bytes)
#   qemu_tmp_init NAME   make a fresh work dir, set T to it, and remove it
#                        on exit unless QEMU_KEEP=1 or the caller failed
#                        with QEMU_KEEP_ON_FAIL=1 (the default)
#   qemu_log_tail LOG [N]  the last N (default 40) lines of LOG, control
#                        characters stripped, indented, for failure reports
#   skip MSG / fail MSG / pass MSG   print and exit 77 / 1 / 0
#
# QTEST_DIR is the qemu-tests directory (found from $0 unless already set),
# TOP the source tree, RUN_QEMU the wrapper.

if [ -z "${QTEST_DIR:-}" ]; then
	QTEST_DIR=$(cd "$(dirname "$0")" && pwd)
	while [ "$QTEST_DIR" != / ] && [ ! -x "$QTEST_DIR/run-qemu" ]; do
		QTEST_DIR=$(dirname "$QTEST_DIR")
	done
fi
TOP=$(cd "$QTEST_DIR/.." && pwd)
RUN_QEMU=$QTEST_DIR/run-qemu
export QTEST_DIR TOP RUN_QEMU

verdict() {
	_v=$(grep -a -o 'LUKSIPC-VERDICT: [A-Z]*' "$1" 2>/dev/null | sed 's/^LUKSIPC-VERDICT: //')
	case "$_v" in
	*FAIL*) echo FAIL ;;
	*PASS*) echo PASS ;;
	*) echo NONE ;;
	esac
}

verdict_line() {
	grep -a 'LUKSIPC-VERDICT:' "$1" 2>/dev/null | tr -d '\r' | tail -n 1
}

disk_hash() {
	if [ -n "${2:-}" ]; then
		head -c "$2" "$1" | sha256sum | cut -d' ' -f1
	else
		sha256sum "$1" | cut -d' ' -f1
	fi
}

qemu_log_tail() {
	tail -n "${2:-40}" "$1" 2>/dev/null | tr -d '\r' | tr -c '[:print:]\n\t' '?' | sed 's/^/    | /'
}

qemu_tmp_init() {
	_base=${QEMU_TMP:-/var/tmp/luksipc-qemu}
	mkdir -p "$_base" || return 1
	T=$(mktemp -d "$_base/${1:-scenario}.XXXXXX") || return 1
	export T
	trap 'qemu_tmp_cleanup $?' EXIT
	trap 'exit 130' INT TERM HUP
}

qemu_tmp_cleanup() {
	if [ "${QEMU_KEEP:-0}" = 1 ] || { [ "$1" -ne 0 ] && [ "$1" -ne 77 ] && [ "${QEMU_KEEP_ON_FAIL:-1}" = 1 ]; }; then
		echo "  (work files kept in $T)" >&2
	else
		rm -rf "$T"
	fi
}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS${1:+: $*}"; exit 0; }
