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
#   host_fs_check IMG OFF LEN KEY FS_BYTES SHA256 [ORIG] [HDR]
#                        the host's own check of a converted partition:
#                        bytes [OFF, OFF+LEN) of IMG decrypted with
#                        tests/lib/luksdecrypt.py (no code shared with
#                        luksipc; KEY unlocks the header) must begin with
#                        FS_BYTES bytes hashing to SHA256. Sets
#                        HOST_CHECK_MSG; returns 0 equal, 1 differs, 2
#                        error. ORIG, the original filesystem image, lets a
#                        difference be located: its first differing byte,
#                        block and (debugfs icheck/ncheck) file (give ''
#                        to skip it). HDR: a detached LUKS header file
#                        (luksdecrypt.py --header), the partition then
#                        decrypted from the header's data offset
#   save_fs IMG OFF FS_BYTES OUT   copy the filesystem (the first FS_BYTES
#                        of the partition at OFF) out of IMG, for ORIG
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

save_fs() {
	dd if="$1" of="$4" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

host_fs_check() {
	_hc_part=$T/host-check.part
	_hc_hdr=${8:-}
	HOST_CHECK_MSG=''
	if [ -n "$_hc_hdr" ] && [ ! -s "$_hc_hdr" ]; then
		HOST_CHECK_MSG="the detached header '$_hc_hdr' is missing or empty"
		return 2
	fi
	if ! dd if="$1" of="$_hc_part" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" \
		status=none; then
		HOST_CHECK_MSG="cannot copy the partition out of $1"
		return 2
	fi
	_hc_out=$(python3 "$TOP/tests/lib/luksdecrypt.py" "$_hc_part" --key-file "$4" \
		${_hc_hdr:+--header "$_hc_hdr"} --length "$5" --expect-sha256 "$6" 2>&1)
	_hc_rc=$?
	case "$_hc_rc" in
	0) HOST_CHECK_MSG="luksdecrypt.py: the first $5 bytes decrypt to sha256 $6${_hc_hdr:+ (detached header ${_hc_hdr##*/})}" ;;
	1)
		HOST_CHECK_MSG=$(printf '%s' "$_hc_out" | tr '\n' ' ')
		if [ -n "${7:-}" ]; then
			# Decrypt again against the original: where it first differs.
			_hc_off=$(python3 "$TOP/tests/lib/luksdecrypt.py" "$_hc_part" --key-file "$4" \
				${_hc_hdr:+--header "$_hc_hdr"} --length "$5" --expect "$7" 2>&1 | sed -n 's/.*differs at data offset \([0-9]*\).*/\1/p')
			if [ -n "$_hc_off" ]; then
				_hc_blk=$((_hc_off / 4096))
				_hc_ino=$(debugfs -R "icheck $_hc_blk" "$7" 2>/dev/null | awk 'NR > 1 { print $2 }')
				case "$_hc_ino" in
				'' | *[!0-9]*) _hc_what="no file (metadata or free)" ;;
				*) _hc_what=$(debugfs -R "ncheck $_hc_ino" "$7" 2>/dev/null | awk 'NR > 1 { print $2 }') ;;
				esac
				HOST_CHECK_MSG="$HOST_CHECK_MSG; first difference at byte $_hc_off (MiB $((_hc_off >> 20)), block $_hc_blk: ${_hc_what:-inode $_hc_ino})"
			fi
		fi
		;;
	*) HOST_CHECK_MSG="luksdecrypt.py failed: $(printf '%s' "$_hc_out" | tail -n 1)" ;;
	esac
	rm -f "$_hc_part"
	return "$_hc_rc"
}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS${1:+: $*}"; exit 0; }
