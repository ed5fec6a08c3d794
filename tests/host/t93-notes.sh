#!/bin/sh
# The admin notes (`luksipc status --notes`) for each framework keep the
# contract of docs/interface.md: the commands are the lines starting with
# "  $ ", each passes `sh -n`, and run in order (against a scratch /etc,
# with the system tools stubbed) they leave one crypttab entry whose fields
# Debian's cryptroot functions and systemd 252's cryptsetup generator read
# as intended, the rd.luksipc flags gone from the kernel command line, the
# rd.luks flags added for dracut, and the initramfs rebuilt before GRUB is
# updated. (Issue 16: the old notes gave systemd's PATH:DEVICE spelling to
# Debian's cryptroot and a luksAddKey --key-file PATH:DEVICE.)
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"
# shellcheck source=tests/lib/mkfs-fixtures.sh
. "$TESTS_ROOT/tests/lib/mkfs-fixtures.sh"

N=$((24 * MiB))
H=$((4 * MiB))
U=0d7c2a55-4a57-4bd6-9d8e-3f1c1b2a9e93
NAME=luks-$U
GRUB_LINE='GRUB_CMDLINE_LINUX="quiet rd.luksipc=root rd.luksipc.state=PARTLABEL=luksipc-state rd.luksipc.key=/luksipc.key:LABEL=KEYS rd.luksipc.resize=1 splash"'

# convert ARGS...: a converted image whose state records the notes' facts.
convert() {
	small_fixture $N $H
	run_rc 0 conv -d dev.img --state st --key-file key --header-size $H --uuid $U "$@"
}

# commands FILE: the notes' command lines, without the "  $ " prefix.
commands() {
	sed -n 's/^  \$ //p' "$1"
}

# check_shape FILE: every command line passes sh -n; no prose line looks
# like a command; the crypttab line is the first command.
check_shape() {
	commands "$1" >cmds
	[ -s cmds ] || fail "no command lines in $1"
	while IFS= read -r c; do
		sh -n -c "$c" || fail "sh -n rejects: $c"
	done <cmds
	if grep -v '^  \$ ' "$1" | grep -q '^ *\$ '; then
		fail "a prose line starts like a command"
	fi
	head -n 1 cmds | grep -q '/etc/crypttab$' || fail "the first command does not write /etc/crypttab"
}

# run_notes FILE: run the command lines in order with sh -c, as root would,
# but with /etc and /run under $T/root and the tools stubbed: each stub logs
# its arguments (and stdin for cryptsetup) to $T/calls.
run_notes() {
	mkdir -p root/etc/default/grub.d root/etc/kernel root/run stubs
	printf '%s\n' '# <target name> <source device> <key file> <options>' \
		"other UUID=11111111-2222-3333-4444-555555555555 none luks" \
		"$NAME UUID=$U /stale.key luks" >root/etc/crypttab
	printf '%s\n' 'GRUB_DEFAULT=0' "$GRUB_LINE" >root/etc/default/grub
	# shellcheck disable=SC2016 # a literal $ in the file
	printf '%s\n' 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT rd.luksipc.timeout=60"' \
		>root/etc/default/grub.d/luksipc.cfg
	for s in update-initramfs dracut update-grub mount umount cryptsetup; do
		printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\n' "$s" "$T" >"stubs/$s"
		# shellcheck disable=SC2016 # expanded by the stub
		[ "$s" != cryptsetup ] || printf 'echo "stdin: $(cat)" >>"%s/calls"\n' "$T" >>"stubs/$s"
		chmod +x "stubs/$s"
	done
	: >calls
	while IFS= read -r c; do
		c=$(printf '%s\n' "$c" | sed "s|/etc/|$T/root/etc/|g; s|/run/|$T/root/run/|g")
		echo "+ $c"
		printf 'new passphrase\n' | PATH=$T/stubs:$PATH sh -c "$c" || fail "command failed: $c"
	done <cmds
	cat calls
}

# crypttab_entry: the fields of the one entry for NAME, one per line.
crypttab_entry() {
	n=$(grep -c "^${NAME}[[:space:]]" root/etc/crypttab || true)
	assert_eq "$n" 1 "crypttab entries for $NAME"
	assert_grep '^other UUID=11111111-2222-3333-4444-555555555555 none luks$' root/etc/crypttab
	grep "^${NAME}[[:space:]]" root/etc/crypttab | awk '{ for (i = 1; i <= NF; i++) print $i }'
}

# check_cmdline FLAGS_ADDED: the rd.luksipc flags are gone from every file,
# the other words stay.
check_cmdline() {
	cat root/etc/default/grub root/etc/default/grub.d/luksipc.cfg
	assert_no_grep 'rd\.luksipc' root/etc/default/grub
	assert_no_grep 'rd\.luksipc' root/etc/default/grub.d/luksipc.cfg
	assert_grep "^GRUB_CMDLINE_LINUX=\"$1quiet splash\"\$" root/etc/default/grub
	# shellcheck disable=SC2016 # a literal $ in the file
	assert_grep '^GRUB_CMDLINE_LINUX_DEFAULT="\$GRUB_CMDLINE_LINUX_DEFAULT"$' root/etc/default/grub.d/luksipc.cfg
	assert_grep '^GRUB_DEFAULT=0$' root/etc/default/grub
}

# systemd_units: what systemd 252's generator makes of the crypttab.
systemd_units() {
	gen=/lib/systemd/system-generators/systemd-cryptsetup-generator
	[ -x $gen ] || return 1
	mkdir -p gen rt
	SYSTEMD_CRYPTTAB=$T/root/etc/crypttab RUNTIME_DIRECTORY=$T/rt SYSTEMD_LOG_LEVEL=err \
		$gen "$T/gen" "$T/gen" "$T/gen" || fail "the systemd cryptsetup generator failed"
	(cd gen && find . | sort) >units
}

t_itools_keydev() {
	need_luksipc
	convert --note-key-file /luksipc.key:LABEL=KEYS --note-framework initramfs-tools
	run_rc 0 lx status --state st --notes
	cp "$T/out" notes
	cat notes
	assert_grep '^Next steps for initramfs-tools' notes
	check_shape notes
	run_notes notes
	crypttab_entry >fields
	assert_eq "$(sed -n 2p fields)" "UUID=$U" "crypttab source"
	assert_eq "$(sed -n 3p fields)" "/luksipc.key:LABEL=KEYS" "crypttab key (systemd's PATH:DEVICE)"
	assert_eq "$(sed -n 4p fields)" "luks,keyscript=/usr/lib/luksipc/keydev" "crypttab options"
	# order: crypttab, initramfs, GRUB; the passphrase from stdin with the
	# key file on the mounted key device
	assert_eq "$(grep -v '^stdin' calls | cut -d' ' -f1 | tr '\n' ' ')" \
		"update-initramfs update-grub mount cryptsetup umount " "commands run"
	assert_grep '^update-initramfs -u$' calls
	assert_grep "^mount -o ro /dev/disk/by-label/KEYS $T/root/run/luksipc-key\$" calls
	assert_grep "^cryptsetup luksAddKey --key-file $T/root/run/luksipc-key/luksipc.key /dev/disk/by-uuid/$U\$" calls
	assert_grep '^stdin: new passphrase$' calls
	check_cmdline ''
	# Debian's cryptroot takes the entry: a keyscript it can run (the
	# installed path stands for this tree's copy), its argument as written,
	# and so no key file it would skip the root for
	if [ -r /lib/cryptsetup/functions ]; then
		sed "s|/usr/lib/luksipc/keydev|$TESTS_ROOT/initramfs-tools/keydev|" root/etc/crypttab >crypttab.here
		# shellcheck disable=SC2016 # expanded by the inner shell
		TABFILE=$T/crypttab.here sh -c '. /lib/cryptsetup/functions
			crypttab_find_entry "$1" && crypttab_parse_options --quiet --missing-path=fail || exit 1
			printf "%s|%s\n" "$CRYPTTAB_KEY" "$CRYPTTAB_OPTION_keyscript"' \
			sh "$NAME" >debian 2>&1 || { cat debian; fail "Debian's crypttab functions reject the entry"; }
		assert_eq "$(cat debian)" "/luksipc.key:LABEL=KEYS|$TESTS_ROOT/initramfs-tools/keydev" \
			"key and keyscript as Debian's cryptroot reads them"
	else
		echo "no /lib/cryptsetup/functions: Debian's parse not checked"
	fi
	# systemd reads the same field: the key device by label, the key file on it
	if systemd_units; then
		cat units
		grep -h '^What=' gen/*keydev*.mount >what.txt
		assert_grep '^What=/dev/disk/by-label/KEYS$' what.txt
		grep -h '^ExecStart=' "gen/systemd-cryptsetup@luks\x2d$(echo $U | sed 's/-/\\x2d/g').service" >exec.txt
		assert_grep "keydev-$NAME/luksipc.key'" exec.txt
	fi
}

t_dracut_keydev() {
	need_luksipc
	convert --note-key-file /luksipc.key:LABEL=KEYS --note-framework initramfs-tools
	# the admin moved to dracut: the override wins over the recorded one
	run_rc 0 lx status --state st --notes --framework dracut
	cp "$T/out" notes
	cat notes
	assert_grep '^Next steps for dracut' notes
	check_shape notes
	run_notes notes
	crypttab_entry >fields
	assert_eq "$(sed -n 3p fields)" "/luksipc.key:LABEL=KEYS" "crypttab key (systemd's PATH:DEVICE)"
	assert_eq "$(sed -n 4p fields)" "luks" "crypttab options"
	assert_eq "$(grep -v '^stdin' calls | cut -d' ' -f1 | tr '\n' ' ')" \
		"dracut update-grub mount cryptsetup umount " "commands run"
	assert_grep '^dracut -f$' calls
	check_cmdline "rd.luks.uuid=$U rd.luks.name=$U=$NAME rd.luks.key=$U=/luksipc.key:LABEL=KEYS "
	if systemd_units; then
		cat units
		assert_grep 'cryptsetup\.target\.requires' units
		grep -h '^What=' gen/*keydev*.mount >what.txt
		assert_grep '^What=/dev/disk/by-label/KEYS$' what.txt
		grep -h '^ExecStart=' "gen/systemd-cryptsetup@luks\x2d$(echo $U | sed 's/-/\\x2d/g').service" >exec.txt
		assert_grep "keydev-$NAME/luksipc.key'" exec.txt
	fi
}

t_passphrase() {
	need_luksipc
	convert --note-key-file - --note-framework dracut --note-name cryptroot
	NAME=cryptroot
	for fw in initramfs-tools dracut; do
		run_rc 0 lx status --state st --notes --framework $fw
		cp "$T/out" notes.$fw
		cat notes.$fw
		check_shape notes.$fw
		assert_no_grep 'luksAddKey' notes.$fw
		rm -rf root calls
		run_notes notes.$fw
		crypttab_entry >fields
		assert_eq "$(sed -n 3,4p fields | tr '\n' ' ')" "none luks " "crypttab key and options ($fw)"
	done
	check_cmdline "rd.luks.uuid=$U rd.luks.name=$U=cryptroot "
}

t_running_system() {
	need_luksipc
	# converted from a running system with a key file: no kernel flags
	convert
	run_rc 0 lx status --state st --notes --framework initramfs-tools
	cp "$T/out" notes
	cat notes
	check_shape notes
	assert_no_grep 'rd\.luks\.|update-grub' notes
	run_notes notes
	crypttab_entry >fields
	assert_eq "$(sed -n 3,4p fields | tr '\n' ' ')" "$T/key luks " "crypttab key and options (absolute)"
	assert_grep "^cryptsetup luksAddKey --key-file $T/key /dev/disk/by-uuid/$U\$" calls
	run_rc 2 lx status --state st --notes --framework mkinitcpio
	assert_one_error_line "$T/err"
}

run_test "notes for initramfs-tools with a key device: systemd's spelling read by the keyscript, runnable in order" t_itools_keydev
run_test "notes for dracut with a key device: systemd's spelling and rd.luks flags" t_dracut_keydev
run_test "notes for a passphrase, both frameworks: key none, no luksAddKey" t_passphrase
run_test "notes for a conversion from a running system: no kernel flags" t_running_system
test_done
