#!/bin/sh
# Test machinery stays out of the product (docs/interface.md, "Test hooks"):
# the shipped build (build/luksipc, LUKSIPC_SHIPPED) holds no LUKSIPC_TEST_*
# code and converts normally whatever those variables say; the trace of a
# test build never holds a generated key file's bytes nor the volume key;
# the boot library drops LUKSIPC_TEST_* and ignores
# rd.luksipc.test-header-delay unless the initramfs is a test image.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N_DEV=$((6 * MiB + 5 * 4096 + 512))
H_DEV=$((2 * MiB))
BOOT_LIB=$TESTS_ROOT/boot/luksipc-lib.sh

need_shipped() {
	[ -x "$LUKSIPC_SHIPPED" ] || skip "$LUKSIPC_SHIPPED not built (run make)"
}

# count_test_strings BIN: how many LUKSIPC_TEST_ strings BIN holds.
count_test_strings() {
	strings "$1" | grep -c LUKSIPC_TEST_ || true
}

t_no_hook_strings() {
	need_shipped
	need_luksipc
	need_cmd strings
	n=$(count_test_strings "$LUKSIPC_SHIPPED")
	[ "$n" = 0 ] || { strings "$LUKSIPC_SHIPPED" | grep LUKSIPC_TEST_ >&2; fail "$LUKSIPC_SHIPPED holds $n LUKSIPC_TEST_ strings"; }
	# the same check finds them in the test build, so it can see them
	n=$(count_test_strings "$LUKSIPC")
	[ "$n" -ge 4 ] || fail "the test build $LUKSIPC holds only $n LUKSIPC_TEST_ strings; is it a test build?"
	for b in "$TESTS_ROOT/build/luksipc.static" "$TESTS_ROOT/build/luksipc.static.stripped"; do
		[ -x "$b" ] || continue
		n=$(count_test_strings "$b")
		[ "$n" = 0 ] || fail "$b holds $n LUKSIPC_TEST_ strings"
		echo "$b: no LUKSIPC_TEST_ strings"
	done
}

# Every hook set at once: a fault on the first write of the device and of
# the state, a trace, and delays that would hold the run for minutes.
with_all_hooks() {
	LUKSIPC_TEST_FAULT=write:1:EIO,state-write:1:EIO,flush:1:EIO LUKSIPC_TEST_TRACE=$T/trace \
		LUKSIPC_TEST_DELAY_MS=600000 LUKSIPC_TEST_HEADER_DELAY_MS=600000 \
		timeout 120 "$@"
}

t_shipped_ignores_hooks() {
	need_shipped
	need_luksipc
	small_fixture $N_DEV $H_DEV
	# The test build honours the fault (the check below could fail).
	# shellcheck disable=SC2086 # CONV_FAST is a list of words
	with_all_hooks "$LUKSIPC" convert -d dev.img --state st.test --key-file key --type luks1 \
		--step-size 512K $CONV_FAST >out 2>err && fail "the test build ignored LUKSIPC_TEST_FAULT"
	assert_grep 'error' err
	rm -f trace st.test
	cp orig.img dev.img
	# The shipped build converts normally and writes no trace.
	set +e
	# shellcheck disable=SC2086 # CONV_FAST is a list of words
	with_all_hooks "$LUKSIPC_SHIPPED" convert -d dev.img --state st --key-file key --type luks1 \
		--step-size 512K $CONV_FAST >out 2>err
	rc=$?
	set -e
	[ "$rc" = 0 ] || { sed 's/^/  | /' err >&2; fail "the shipped build exited $rc with LUKSIPC_TEST_* set"; }
	[ ! -e trace ] || fail "the shipped build wrote a trace ($(fsize trace) bytes)"
	assert_no_grep 'LUKSIPC_TEST|warning' err
	verify_plain dev.img key orig.img $((N_DEV - H_DEV))
}

# A traced run with --generate-key-file: the trace must hold neither the
# key file's 4096 bytes nor any 32-byte window of them, nor the volume
# key. Any 32-byte window [a, a+32) of the key contains the 16-byte chunk
# at the next multiple of 16, so searching for the 256 aligned 16-byte
# chunks covers every window (a random 16-byte chunk is never in the
# trace by chance).
t_trace_has_no_key() {
	need_luksipc
	need_cmd cryptsetup
	fx_make ext4 dev.img $N_DEV $H_DEV
	cp dev.img orig.img
	LUKSIPC_TEST_TRACE=$T/trace run_rc 0 conv -d dev.img --state st --generate-key-file gen.key --type luks1 \
		--step-size 512K
	assert_eq "$(fsize gen.key)" 4096 "generated key file size"
	verify_plain dev.img gen.key orig.img $((N_DEV - H_DEV))
	"$PY" - trace gen.key dev.img <<'PYEOF'
import struct, subprocess, sys, os
sys.path.insert(0, os.environ["TESTS_LIB"])
import luksdecrypt
trace = open(sys.argv[1], "rb").read()
key = open(sys.argv[2], "rb").read()
vk = luksdecrypt.volume_key(sys.argv[3], sys.argv[2])
assert len(key) == 4096 and len(vk) in (32, 64), (len(key), len(vk))
# the trace is well-formed and only names the device (0) and the state (1)
pos, targets, written = 0, set(), 0
while pos < len(trace):
    op, target, zero, length, off = struct.unpack_from("<BBHIQ", trace, pos)
    pos += 16 + (length if op == ord("W") else 0)
    targets.add(target)
    written += length if op == ord("W") else 0
if pos != len(trace):
    sys.exit("trace: truncated record")
if written < 4 * 1024 * 1024:
    sys.exit("trace: only %d bytes written; the run was not traced" % written)
if key in trace:
    sys.exit("trace: holds the whole generated key file")
hits = [i for i in range(0, 4096, 16) if key[i:i + 16] in trace]
if hits:
    sys.exit("trace: holds 16-byte pieces of the key file at offsets %s" % hits[:8])
hits = [i for i in range(0, len(vk) - 15) if vk[i:i + 16] in trace]
if hits:
    sys.exit("trace: holds the volume key (16-byte windows at %s)" % hits[:8])
if not targets <= {0, 1}:
    sys.exit("trace: records for targets %s (only 0 and 1 may be traced)" % sorted(targets))
print("trace: %d bytes, targets %s, no key file window, no volume key" % (len(trace), sorted(targets)))
PYEOF
}

# boot_lib SHELL MARKER: run the boot library's real entry point, lipc_run,
# under SHELL with LUKSIPC_TEST_* in the environment (as initramfs-tools
# puts NAME=value words of the kernel command line there) and
# rd.luksipc.test-header-delay=4321 on the command line; lipc_main is
# replaced by a call to the real lipc_convert, and the converter by a stub
# that saves its environment in stub.env. MARKER=1 makes it a test image.
boot_lib() {
	rm -rf run stub.env lib.err marker
	mkdir run
	# shellcheck disable=SC2016 # expanded by the stub
	printf '%s\n' '#!/bin/sh' 'env >"$STUB_ENV"' >stub
	chmod +x stub
	[ "$2" = 0 ] || : >marker
	set +e
	# shellcheck disable=SC2016,SC2086 # $1 may be "busybox sh"; the script expands its own
	STUB_ENV=$T/stub.env LIPC_BIN=$T/stub LIPC_RUN=$T/run \
		LIPC_CMDLINE="ro rd.luksipc=/dev/nonexistent rd.luksipc.state=/dev/nonexistent rd.luksipc.test-header-delay=4321" \
		LUKSIPC_TEST_FAULT=write:1:EIO LUKSIPC_TEST_TRACE=$T/trace LUKSIPC_TEST_DELAY_MS=7 \
		LUKSIPC_TEST_FUTURE_HOOK=1 \
		$1 -c '
		. "$1"
		t=$2
		LIPC_TEST_HOOKS=$t/marker
		lipc_main() {
			LIPC_DEV=$t/dev LIPC_STATE=$t/st LIPC_PHASE=none LIPC_KEYFILE=$t/key
			lipc_convert
		}
		lipc_run' sh "$BOOT_LIB" "$T" 2>lib.err
	rc=$?
	set -e
	sed 's/^/  lib| /' lib.err
	[ "$rc" = 0 ] || fail "$1: lipc_run exited $rc"
	[ -s stub.env ] || fail "$1: the stub converter did not run"
	grep '^LUKSIPC_TEST_' stub.env >stub.test || true
}

t_boot_lib_drops_test_env() {
	for sh in sh dash "busybox sh" bash; do
		command -v "${sh%% *}" >/dev/null 2>&1 || continue
		[ "$sh" != "busybox sh" ] || busybox sh -c : 2>/dev/null || continue
		boot_lib "$sh" 0
		[ ! -s stub.test ] || { cat stub.test >&2; fail "$sh: LUKSIPC_TEST_* reached the converter outside a test image"; }
		assert_grep 'ignoring rd.luksipc.test-header-delay' lib.err
		echo "$sh: no LUKSIPC_TEST_* reached the converter; the flag was ignored"
	done
}

t_boot_lib_test_image() {
	boot_lib sh 1
	assert_grep '^LUKSIPC_TEST_HEADER_DELAY_MS=4321$' stub.test
	assert_grep '^LUKSIPC_TEST_FAULT=write:1:EIO$' stub.test
	assert_no_grep 'ignoring' lib.err
}

run_test "the shipped build holds no LUKSIPC_TEST_ code" t_no_hook_strings
run_test "the shipped build ignores every LUKSIPC_TEST_* variable" t_shipped_ignores_hooks
run_test "the trace holds no key file bytes and no volume key" t_trace_has_no_key
run_test "boot library: no test variables outside a test image" t_boot_lib_drops_test_env
run_test "boot library: a test image passes the header delay on" t_boot_lib_test_image
test_done
