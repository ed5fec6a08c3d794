#!/bin/sh
# LUKS to LUKS re-encryption in place (`luksipc convert --reencrypt`).
# LUKS2 sources are made by `cryptsetup reencrypt --encrypt` (independent of
# luksipc), LUKS1 sources by luksipc itself; every source is first checked
# with the independent decryptor. After re-encryption the image must decrypt
# (tests/lib/luksdecrypt.py, new key) to the source's plaintext over the whole
# converted area and to the original filesystem bytes, cryptsetup must accept
# the new key and reject the old one, the header must have the geometry asked
# for, the LUKS UUID must be kept and the volume key must be new.
# The refusals must leave the device and the state store untouched.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

# --- helpers -------------------------------------------------------------

# luks2_source IMG N H_OLD KEY [cryptsetup options...]: IMG of N bytes with
# an ext4 filesystem that ends at or before N - 2 * H_OLD, its copy orig.img,
# encrypted in place by cryptsetup to LUKS2 with data offset H_OLD; checked
# to decrypt to orig.img over the filesystem.
# --disable-locks: cryptsetup's reencryption lock lives in /run/cryptsetup,
# which only root may write; without it a run as another user fails there
# and the case would be skipped. The image is private to this case.
luks2_source() {
	img=$1 n=$2 hold=$3 k=$4
	shift 4
	need_cmd cryptsetup mkfs.ext4
	fx_make ext4 "$img" "$n" $((2 * hold))
	cp "$img" orig.img
	FS_END=$fx_end
	cryptsetup --disable-locks reencrypt --encrypt --batch-mode --type luks2 \
		--reduce-device-size $((2 * hold / 1024))K --pbkdf pbkdf2 \
		--pbkdf-force-iterations 1000 --key-file "$k" "$@" "$img" 2>cs.err || {
		cat cs.err >&2
		skip_unless_ci "cryptsetup reencrypt --encrypt does not work here: $(tail -n 1 cs.err)"
	}
	assert_eq "$(luks_info "$img" version)" 2 "source LUKS version"
	assert_eq "$(luks_info "$img" offset)" "$hold" "source data offset"
	verify_plain "$img" "$k" orig.img "$FS_END"
}

# luks1_source IMG N H_NEW KEY: an ext4 image whose filesystem ends at or
# before N - H_NEW, converted by luksipc to LUKS1 (2M header), checked.
luks1_source() {
	img=$1 n=$2 hnew=$3 k=$4
	fx_make ext4 "$img" "$n" "$hnew"
	cp "$img" orig.img
	FS_END=$fx_end
	run_rc 0 conv -d "$img" --state st.src --key-file "$k" --type luks1
	assert_eq "$(luks_info "$img" version)" 1 "source LUKS version"
	assert_eq "$(luks_info "$img" offset)" $((2 * MiB)) "source data offset"
	verify_plain "$img" "$k" orig.img $((n - 2 * MiB))
}

# volume_key IMG KEY: the volume key in hex.
volume_key() {
	cryptsetup luksDump --dump-volume-key --batch-mode --key-file "$2" "$1" |
		awk '/^MK dump:/ {f = 1; sub(/^MK dump:/, ""); print; next}
			f && /^[ \t]/ {print; next} {f = 0}' | tr -d ' \t\n'
}

# journal_writes TRACE: state-store writes above 1 MiB after the first
# progress record, i.e. the per-step journal of old ciphertext (the header
# images are written before the first record; the 4 KiB rewrite of superblock
# copy C with the started mark is not journal).
journal_writes() {
	"$PY" - "$1" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
p = n = 0
rec = False
while p < len(b):
    op, t, z, l, o = struct.unpack_from("<BBHIQ", b, p)
    p += 16 + (l if op == ord("W") else 0)
    if op == ord("W") and t == 1:
        if o in (8192, 12288) and l == 512:
            rec = True
        elif rec and o >= 1 << 20 and l != 4096:  # 4096: superblock copy C (the started mark)
            n += 1
print(n)
PYEOF
}

# data_writes TRACE: device writes that are not the final header write.
data_writes() {
	"$PY" - "$1" <<'PYEOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
p = n = 0
while p < len(b):
    op, t, z, l, o = struct.unpack_from("<BBHIQ", b, p)
    p += 16 + (l if op == ord("W") else 0)
    if op == ord("W") and t == 0 and o != 0:
        n += 1
print(n)
PYEOF
}

# reenc IMG OLDKEY NEWKEY ARGS...: re-encrypt IMG (state "st", traced into
# "trace"); OLDKEY "-" means no --old-key-file (the new key serves both).
reenc() {
	img=$1 ok=$2 nk=$3
	shift 3
	if [ "$ok" = - ]; then
		set -- --key-file "$nk" "$@"
	else
		set -- --old-key-file "$ok" --key-file "$nk" "$@"
	fi
	LUKSIPC_TEST_TRACE=$T/trace run_rc 0 conv --reencrypt -d "$img" --state st "$@"
}

# check_result IMG SRC OLDKEY NEWKEY VERSION H SECTOR KEYBITS: IMG (re-encrypted
# from the copy SRC) has the geometry asked for, the UUID of SRC, a new volume
# key, decrypts with NEWKEY to SRC's plaintext over the whole converted area
# and to orig.img over the filesystem, and OLDKEY (if different) is rejected.
# A second run says "already converted" and writes nothing.
check_result() {
	img=$1 src=$2 ok=$3 nk=$4 ver=$5 h=$6 ss=$7 kb=$8
	n=$(fsize "$img")
	assert_eq "$(fsize "$src")" "$n" "image size"
	assert_eq "$(luks_info "$img" version)" "$ver" "LUKS version"
	assert_eq "$(luks_info "$img" offset)" "$h" "data offset"
	assert_eq "$(luks_info "$img" sector_size)" "$ss" "sector size"
	assert_eq "$(luks_info "$img" key_bits)" "$kb" "key bits"
	assert_eq "$(luks_info "$img" cipher)" aes-xts-plain64 "cipher"
	assert_eq "$(cryptsetup luksUUID "$img")" "$(cryptsetup luksUUID "$src")" "LUKS UUID kept"
	big=$ss
	[ "$(luks_info "$src" sector_size)" -le "$big" ] || big=$(luks_info "$src" sector_size)
	p=$(((n - h) / big * big))
	# the plaintext of the source over the converted area
	if [ "$ok" = - ]; then ok=$nk; fi
	"$PY" "$LUKSDECRYPT" "$src" --key-file "$ok" --length "$p" --out src.plain ||
		fail "cannot decrypt the source $src"
	verify_plain "$img" "$nk" src.plain "$p"
	verify_plain "$img" "$nk" orig.img "$FS_END"
	vk_old=$(volume_key "$src" "$ok")
	vk_new=$(volume_key "$img" "$nk")
	[ ${#vk_new} -eq $((kb / 4)) ] || fail "volume key dump '$vk_new' is not $kb bits"
	[ "$vk_old" != "$vk_new" ] || fail "the volume key did not change"
	if ! cmp -s "$ok" "$nk" && cryptsetup open --test-passphrase --key-file "$ok" "$img" 2>/dev/null; then
		fail "the old key still opens $img"
	fi
	run_rc 0 lx status --state st
	assert_grep '^phase: done$' "$T/out"
	assert_grep "^data-size: $p\$" "$T/out"
	assert_grep "^done: $p\$" "$T/out"
	before=$(sha "$img")
	run_rc 0 conv --reencrypt -d "$img" --state st --old-key-file "$ok" --key-file "$nk"
	assert_grep 'already converted' "$T/err"
	assert_eq "$(sha "$img")" "$before" "a run after completion changed the device"
	rm -f src.plain
}

# unchanged_after WANT_RC CMD...: CMD exits WANT_RC with one error line and
# leaves dev.img and the state store "st" (absent or not) as they were.
unchanged_after() {
	want=$1
	shift
	dsum=$(sha dev.img)
	ssum=absent
	[ ! -e st ] || ssum=$(sha st)
	run_rc "$want" "$@"
	assert_one_error_line "$T/err"
	assert_eq "$(sha dev.img)" "$dsum" "device changed"
	now=absent
	[ ! -e st ] || now=$(sha st)
	assert_eq "$now" "$ssum" "state store (sha256 or absent)"
}

# --- round trips -------------------------------------------------------

# LUKS1 2M -> LUKS2 16M: H_new - H_old = 14M, the data shift path (no journal).
t_luks1_to_luks2_shift() {
	need_luksipc
	random_key old
	random_key new
	n=$((44 * MiB + 5 * 4096 + 1536))
	luks1_source dev.img $n $((16 * MiB)) old
	cp dev.img src.img
	reenc dev.img old new --type luks2 --step-size $((4 * MiB))
	assert_eq "$(journal_writes trace)" 0 "journal writes on the shift path"
	check_result dev.img src.img old new 2 $((16 * MiB)) 512 512
}

# LUKS2 16M -> LUKS2 16M: the journal path; separate old and new keys.
t_luks2_same_header_journal() {
	need_luksipc
	random_key old
	random_key new
	n=$((46 * MiB + 3 * 4096 + 512))
	luks2_source dev.img $n $((16 * MiB)) old
	cp dev.img src.img
	# 3 crypt threads: each decrypts and encrypts its part with its own contexts
	LUKSIPC_CRYPT_THREADS=3 && export LUKSIPC_CRYPT_THREADS
	reenc dev.img old new --step-size $((3 * MiB + 4096))
	unset LUKSIPC_CRYPT_THREADS
	steps=$(data_writes trace)
	[ "$steps" -ge 10 ] || fail "only $steps data writes"
	assert_eq "$(journal_writes trace)" "$steps" "journal writes (one per step)"
	check_result dev.img src.img old new 2 $((16 * MiB)) 512 512
}

# 512 -> 4096-byte sectors, LUKS2 4M -> 4M (journal path), default step.
t_sector_512_to_4096() {
	need_luksipc
	random_key old
	random_key new
	n=$((30 * MiB + 7 * 4096))
	luks2_source dev.img $n $((4 * MiB)) old --sector-size 512
	assert_eq "$(luks_info dev.img sector_size)" 512 "source sector size"
	cp dev.img src.img
	reenc dev.img old new --header-size $((4 * MiB)) --sector-size 4096
	check_result dev.img src.img old new 2 $((4 * MiB)) 4096 512
}

# 4096 -> 512-byte sectors and LUKS2 8M -> LUKS2 16M (shift path).
t_sector_4096_to_512_shift() {
	need_luksipc
	random_key old
	random_key new
	n=$((40 * MiB + 9 * 4096))
	luks2_source dev.img $n $((8 * MiB)) old --sector-size 4096
	assert_eq "$(luks_info dev.img sector_size)" 4096 "source sector size"
	cp dev.img src.img
	reenc dev.img old new --sector-size 512
	assert_eq "$(journal_writes trace)" 0 "journal writes on the shift path"
	check_result dev.img src.img old new 2 $((16 * MiB)) 512 512
}

# aes-xts 256 -> 512-bit keys, one key file for old and new.
t_keybits_256_to_512() {
	need_luksipc
	random_key key
	n=$((36 * MiB + 11 * 4096))
	luks2_source dev.img $n $((16 * MiB)) key --key-size 256
	assert_eq "$(luks_info dev.img key_bits)" 256 "source key bits"
	cp dev.img src.img
	reenc dev.img - key --key-size 512 --step-size $((2 * MiB))
	check_result dev.img src.img - key 2 $((16 * MiB)) 512 512
}

# aes-xts 512 -> 256-bit keys and LUKS2 -> LUKS1 with the same 2M header.
t_luks2_to_luks1_256() {
	need_luksipc
	random_key old
	random_key new
	n=$((20 * MiB + 3 * 4096 + 1024))
	luks2_source dev.img $n $((2 * MiB)) old
	cp dev.img src.img
	reenc dev.img old new --type luks1 --key-size 256 --step-size $((256 * 1024))
	check_result dev.img src.img old new 1 $((2 * MiB)) 512 256
}

# --generate-key-file for the new key, old key given separately; --uuid.
t_generate_key_uuid() {
	need_luksipc
	random_key old
	n=$((40 * MiB + 4096))
	luks2_source dev.img $n $((16 * MiB)) old
	cp dev.img src.img
	uuid=0b5e1a7c-2d3f-4e6a-9b8c-7d6e5f4a3b2c
	run_rc 0 conv --reencrypt -d dev.img --state st --old-key-file old \
		--generate-key-file gen.key --uuid $uuid --step-size $((4 * MiB))
	assert_eq "$(fsize gen.key)" 4096 "generated key size"
	assert_eq "$(cryptsetup luksUUID dev.img)" $uuid "luksUUID"
	"$PY" "$LUKSDECRYPT" src.img --key-file old --out src.plain
	verify_plain dev.img gen.key src.plain $((n - 16 * MiB))
	verify_plain dev.img gen.key orig.img "$FS_END"
	if cryptsetup open --test-passphrase --key-file old dev.img 2>/dev/null; then
		fail "the old key still opens the image"
	fi
}

# --- interruptions -------------------------------------------------------

# An I/O error on the 3rd device write (journal path): exit 5, resume.
t_fault_resume_journal() {
	need_luksipc
	random_key old
	random_key new
	n=$((30 * MiB + 5 * 4096))
	luks2_source dev.img $n $((4 * MiB)) old
	cp dev.img src.img
	set -- --reencrypt -d dev.img --state st --old-key-file old --key-file new \
		--header-size $((4 * MiB)) --step-size $((1 * MiB))
	LUKSIPC_TEST_FAULT=write:3:EIO run_rc 5 conv "$@"
	assert_one_error_line "$T/err"
	d=$(status_field st "done")
	[ "$d" -gt 0 ] || fail "no step was committed before the fault (done=$d)"
	[ "$(sha dev.img)" != "$(sha src.img)" ] || fail "nothing was written before the fault"
	# resuming needs both keys: a wrong one writes nothing
	random_key wrong
	unchanged_after 4 conv --reencrypt -d dev.img --state st --old-key-file wrong --key-file new \
		--header-size $((4 * MiB)) --step-size $((1 * MiB))
	unchanged_after 4 conv --reencrypt -d dev.img --state st --old-key-file old --key-file wrong \
		--header-size $((4 * MiB)) --step-size $((1 * MiB))
	run_rc 0 conv "$@"
	check_result dev.img src.img old new 2 $((4 * MiB)) 512 512
}

# SIGTERM during a slowed-down run (journal path): exit 6, resume.
t_sigterm_resume_journal() {
	need_luksipc
	random_key old
	random_key new
	n=$((40 * MiB + 3 * 4096))
	luks2_source dev.img $n $((16 * MiB)) old
	cp dev.img src.img
	set -- --reencrypt -d dev.img --state st --old-key-file old --key-file new \
		--step-size $((1 * MiB))
	LUKSIPC_TEST_DELAY_MS=150 conv_bg "$@"
	wait_state_progress st || {
		kill "$BG_PID" 2>/dev/null || true
		fail "no progress within 20 s"
	}
	kill -TERM "$BG_PID"
	set +e
	wait "$BG_PID"
	rc=$?
	set -e
	cat "$T/bg.log"
	assert_eq "$rc" 6 "exit code after SIGTERM"
	d=$(status_field st "done")
	p=$(status_field st data-size)
	if [ "$d" -le 0 ] || [ "$d" -ge "$p" ]; then
		fail "interrupted at done=$d of $p"
	fi
	echo "interrupted at $d of $p bytes"
	run_rc 0 conv "$@"
	check_result dev.img src.img old new 2 $((16 * MiB)) 512 512
}

# --- refusals ------------------------------------------------------------

t_wrong_old_key() {
	need_luksipc
	random_key old
	random_key new
	random_key wrong
	luks2_source dev.img $((36 * MiB)) $((16 * MiB)) old
	unchanged_after 4 conv --reencrypt -d dev.img --state st --old-key-file wrong --key-file new
	# the new key alone (old key defaulting to it) is wrong, too
	unchanged_after 4 conv --reencrypt -d dev.img --state st --key-file new
	verify_plain dev.img old orig.img "$FS_END"
}

t_reencrypt_plaintext() {
	need_luksipc
	random_key key
	fx_make ext4 dev.img $((20 * MiB)) $((2 * MiB))
	unchanged_after 3 conv --reencrypt -d dev.img --state st --key-file key
	assert_grep 'not LUKS' "$T/err"
}

t_convert_luks_without_reencrypt() {
	need_luksipc
	random_key old
	luks2_source dev.img $((36 * MiB)) $((16 * MiB)) old
	unchanged_after 3 conv -d dev.img --state st --key-file old
	assert_grep 'already LUKS' "$T/err"
	luks1_source dev1.img $((20 * MiB)) $((2 * MiB)) old
	cp dev1.img dev.img
	rm -f st
	unchanged_after 3 conv -d dev.img --state st --key-file old --type luks1
}

t_header_smaller_than_old() {
	need_luksipc
	random_key old
	luks2_source dev.img $((36 * MiB)) $((16 * MiB)) old
	unchanged_after 2 conv --reencrypt -d dev.img --state st --key-file old --type luks1
	unchanged_after 2 conv --reencrypt -d dev.img --state st --key-file old \
		--header-size $((8 * MiB))
}

# LUKS1 2M source whose filesystem fills the data area: it cannot fit a 16M
# LUKS2 data area.
t_filesystem_too_large() {
	need_luksipc
	random_key old
	luks1_source dev.img $((24 * MiB)) $((2 * MiB)) old
	unchanged_after 3 conv --reencrypt -d dev.img --state st --key-file old --type luks2
}

run_test "LUKS1 2M -> LUKS2 16M (shift path), separate keys" t_luks1_to_luks2_shift
run_test "LUKS2 16M -> LUKS2 16M (journal path), 3M+4K steps, 3 crypt threads" t_luks2_same_header_journal
run_test "LUKS2 512 -> 4096-byte sectors, 4M header (journal path)" t_sector_512_to_4096
run_test "LUKS2 4096 -> 512-byte sectors, 8M -> 16M header (shift path)" t_sector_4096_to_512_shift
run_test "aes-xts 256 -> 512-bit key, one key file for both" t_keybits_256_to_512
run_test "LUKS2 -> LUKS1 2M, 512 -> 256-bit key, 256K steps" t_luks2_to_luks1_256
run_test "--generate-key-file and --uuid" t_generate_key_uuid
run_test "EIO on the 3rd write (journal path): exit 5, resume" t_fault_resume_journal
run_test "SIGTERM (journal path): exit 6, resume" t_sigterm_resume_journal
run_test "wrong old key: exit 4, device and state unchanged" t_wrong_old_key
run_test "--reencrypt on a plaintext device: exit 3, unchanged" t_reencrypt_plaintext
run_test "convert without --reencrypt on LUKS2 and LUKS1: exit 3, unchanged" t_convert_luks_without_reencrypt
run_test "new header smaller than the old: exit 2, unchanged" t_header_smaller_than_old
run_test "filesystem larger than the new data area: exit 3, unchanged" t_filesystem_too_large
test_done
