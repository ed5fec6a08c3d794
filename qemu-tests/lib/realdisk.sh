# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the scenarios
# Sourceable by a scenario's run (bash): a real Debian 12 system on one
# disk image, booted the way its GRUB would boot it. Used by scenarios 21
# to 24, 29 and 31 (23, 29: REALROOT_FRAMEWORK=dracut); lib/realroot.sh
# builds the cached root they start from.
#
# The caller sets T (work dir), R (the unpacked root), KVER, SCEN_DIR (its
# realboot-check.sh and realboot-check.service: the judge that runs in the
# booted system and prints the verdict), PASS (a passphrase the judge may
# enroll), and the geometry:
#   ROOT_MIB STATE_MIB KEYS_MIB BOOT_MIB ROOT_UUID BOOT_UUID KEYS_UUID
#   LATE_MIB (random files written last, at the end of the fs)
#   FULL_PCT (how full the root filesystem is)
#
#   realdisk_install FLAGS  luksipc installed into R as a user would (make
#                           install DESTDIR= PREFIX=/usr/local), the judge
#                           enabled, GRUB_CMDLINE_LINUX="FLAGS", and the
#                           root's own update-initramfs -u (dracut --force
#                           with REALROOT_FRAMEWORK=dracut)
#   realdisk_build FLAGS    the GPT disk $T/disk.img: p1 luksipc-state
#                           (empty), p2 LABEL=KEYS (ext4, /luksipc.key),
#                           p3 /boot (ext4, grub.cfg as update-grub makes
#                           it, FLAGS on its linux line), p4 the root: an
#                           ext4 that fills the partition, FULL_PCT full,
#                           random files at its very end; the manifest of
#                           /usr and /srv in $T/manifest.sha256
#                           REALDISK_DATA_MIB=M (REALDISK_DATA_UUID): p6
#                           "data", an ext4 of M MiB mounted on /srv/data
#                           (fstab by UUID) holding data.bin (a quarter of it,
#                           random) and data.sha256, and p7 "state-data",
#                           STATE_MIB, empty: a second device for
#                           luksipc arm --also
#                           REALDISK_BIOS_GRUB=1: p5, 1 MiB, a BIOS boot
#                           partition (EF02) for grub-install in the guest
#                           (the judge's judge_grub_install in boot 0), and
#                           GRUB's menu on the serial console too
#   boot_entry              the kernel, initramfs and command line of the
#                           disk's first grub.cfg entry (KERNEL, INITRD,
#                           CMDLINE): the host plays the boot loader
#   boot LOG ARGS...        boot it (run-qemu ARGS); BOOT_RC, BOOT_SECS;
#                           any "luksipc: error" on the console fails.
#                           BIOS_BOOT=1: SeaBIOS boots GRUB from the disk
#                           instead (installed there by the guest);
#                           BOOT_SWTPM=DIR: a TPM 2.0 with its state in DIR
#   grub_booted LOG [FLAG|!FLAG]
#                           fail unless GRUB from the disk started the
#                           kernel (its command line begins BOOT_IMAGE=,
#                           which only GRUB writes) with FLAG on it, or
#                           with no word containing FLAG (!FLAG)
#   typed_boot LOG PROMPT ANSWER ... -- ARGS...
#                           boot with lib/type-at-console.py as the admin at
#                           the serial console (each ANSWER typed once
#                           PROMPT shows); TYPER_RC
#   boot_failed LOG WHAT    empty when the boot passed, else why
#   expect_pass LOG WHAT    fail unless the boot passed
#   realdisk_verify [HDR]   decrypt p4 on the host (tests/lib/luksdecrypt.py,
#                           key file or PASS), e2fsck -fn, every file of the
#                           manifest equal; sets NFILES. HDR: a detached
#                           LUKS header file (luksdecrypt.py --header HDR).
#                           The partition stays in $T/root.luks.
#
# REALDISK_DRACUT_ADD=1 (with REALROOT_FRAMEWORK=dracut): the admin asks for
# the module by hand (/etc/dracut.conf.d/90-luksipc.conf,
# add_dracutmodules+=" luksipc "), as for flags written by hand without
# arm, so the initrd must carry usr/sbin/luksipc from the start.
#
#   realdisk_verify_data    decrypt p6 with the key file, e2fsck -fn, data.bin
#                           as written; the state-data partition empty
#
# Partition offsets (MiB): off_state off_keys off_boot off_root, and with
# REALDISK_DATA_MIB off_data off_state2.

realdisk_install() {
	local t=$SECONDS
	make -s -C "$TOP" install DESTDIR="$R" PREFIX=/usr/local >"$T/install.log" 2>&1 ||
		fail "make install DESTDIR= failed: $(tail -n 3 "$T/install.log")"
	# x-systemd.device-timeout: on a loaded TCG host a guest can stall for a
	# minute or more (soft lockups), and systemd's default 90 s for /boot's
	# device then ends the boot in the emergency shell (QEMU 34, 2026-12-04)
	cat >"$R/etc/fstab" <<-EOF
	UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1
	UUID=$BOOT_UUID /boot ext4 defaults,x-systemd.device-timeout=10min 0 2
	EOF
	if [ "${REALDISK_DATA_MIB:-0}" -gt 0 ]; then
		mkdir -p "$R/srv/data"
		echo "UUID=$REALDISK_DATA_UUID /srv/data ext4 defaults,x-systemd.device-timeout=10min 0 2" >>"$R/etc/fstab"
	fi
	install -m 755 "$SCEN_DIR/realboot-check.sh" "$R/usr/local/sbin/realboot-check"
	install -D -m 644 "$QTEST_DIR/lib/realboot-judge.sh" "$R/usr/local/lib/realboot-judge.sh"
	install -m 644 "$SCEN_DIR/realboot-check.service" "$R/etc/systemd/system/realboot-check.service"
	mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
	ln -sf ../realboot-check.service "$R/etc/systemd/system/multi-user.target.wants/realboot-check.service"
	# TCG's -cpu max offers SVM, so udev loads kvm_amd in every boot; under
	# load that stalled udev for minutes (soft lockups) and /boot's or
	# /srv/data's device job timed out into the emergency shell (QEMU 22,
	# 23, 34 on 2026-12-04). Nothing here needs KVM in the guest.
	mkdir -p "$R/etc/modprobe.d"
	printf 'blacklist kvm_amd\nblacklist kvm_intel\nblacklist kvm\n' >"$R/etc/modprobe.d/qemu-tests-no-kvm.conf"
	# the console is the verdict channel; no login prompt on it
	ln -sf /dev/null "$R/etc/systemd/system/serial-getty@ttyS0.service"
	printf '%s\n' "$PASS" >"$R/etc/realboot.pass"
	[ -f "$R/etc/default/grub" ] || fail "the root has no /etc/default/grub (grub-pc)"
	sed -i -e "s|^GRUB_CMDLINE_LINUX=.*|GRUB_CMDLINE_LINUX=\"$1\"|" \
		-e 's|^GRUB_CMDLINE_LINUX_DEFAULT=.*|GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"|' \
		-e 's|^GRUB_TIMEOUT=.*|GRUB_TIMEOUT=0|' "$R/etc/default/grub"
	chmod 600 "$R/etc/realboot.pass"
	if [ "${REALDISK_BIOS_GRUB:-0}" = 1 ]; then
		# GRUB on the serial console too, so a boot loader that stops shows in the log
		cat >>"$R/etc/default/grub" <<-'EOG'
		GRUB_TERMINAL="serial console"
		GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
		EOG
	fi
	if [ "${REALROOT_FRAMEWORK:-initramfs-tools}" = dracut ]; then
		realdisk_install_dracut
		return
	fi
	realroot_chroot "$R" update-initramfs -u -k "$KVER" >"$T/update-initramfs.log" 2>&1 ||
		fail "update-initramfs -u in the root failed: $(tail -n 5 "$T/update-initramfs.log")"
	lsinitramfs "$R/boot/initrd.img-$KVER" >"$T/initrd.list" 2>/dev/null
	grep -q 'usr/sbin/luksipc$' "$T/initrd.list" ||
		fail "the root's initramfs lacks usr/sbin/luksipc (see $T/update-initramfs.log)"
	echo "  luksipc installed, update-initramfs -u in the root: $((SECONDS - t))s ($(du -m "$R/boot/initrd.img-$KVER" | cut -f1) MiB initrd)"
}

# The dracut root (REALROOT_FRAMEWORK=dracut): its initramfs rebuilt as
# Debian's kernel hook does (dracut --force IMAGE KVER, the root's
# /etc/dracut.conf: not host-only). Nothing is armed yet, so dracut leaves
# luksipc's module out (only when asked for, or while armed): the scenario
# checks that arm's own rebuild carries usr/sbin/luksipc.
realdisk_install_dracut() {
	if [ "${REALDISK_DRACUT_ADD:-0}" = 1 ]; then
		mkdir -p "$R/etc/dracut.conf.d"
		echo 'add_dracutmodules+=" luksipc "' >"$R/etc/dracut.conf.d/90-luksipc.conf"
	fi
	realroot_chroot "$R" dracut --force "/boot/initrd.img-$KVER" "$KVER" >"$T/dracut.log" 2>&1 ||
		fail "dracut --force in the root failed: $(tail -n 5 "$T/dracut.log")"
	lsinitrd "$R/boot/initrd.img-$KVER" >"$T/initrd.list" 2>/dev/null
	grep -q 'usr/lib/systemd/systemd-cryptsetup$' "$T/initrd.list" ||
		fail "the root's dracut initrd is no systemd initrd with systemd-cryptsetup (see $T/dracut.log)"
	if [ "${REALDISK_DRACUT_ADD:-0}" = 1 ]; then
		grep -q 'usr/sbin/luksipc$' "$T/initrd.list" ||
			fail "the root's dracut initrd lacks usr/sbin/luksipc although add_dracutmodules asks for it (see $T/dracut.log)"
	else
		! grep -q 'usr/sbin/luksipc$' "$T/initrd.list" ||
			fail "the root's dracut initrd has luksipc before arm (the module is only included when armed or asked for)"
	fi
	echo "  luksipc installed, dracut --force in the root: $((SECONDS - t))s ($(du -m "$R/boot/initrd.img-$KVER" | cut -f1) MiB initrd)"
}

realdisk_build() {
	local t=$SECONDS
	mkdir -p "$T/boottree" "$T/keytree" "$T/fill"
	mv "$R/boot/"* "$T/boottree/"
	mkdir -p "$T/boottree/grub"
	cat >"$T/boottree/grub/grub.cfg" <<-EOF
	# written by qemu-tests (lib/realdisk.sh) as update-grub makes it for this system
	set default=0
	set timeout=0
	menuentry 'Debian GNU/Linux' {
		search --no-floppy --fs-uuid --set=root $BOOT_UUID
		linux	/vmlinuz-$KVER root=UUID=$ROOT_UUID ro ${1:+$1 }console=ttyS0
		initrd	/initrd.img-$KVER
	}
	EOF
	head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/keytree/luksipc.key"
	if [ "${REALDISK_DATA_MIB:-0}" -gt 0 ]; then
		mkdir -p "$T/datatree"
		head -c $((REALDISK_DATA_MIB * 1048576 / 4)) /dev/urandom >"$T/datatree/data.bin"
		(cd "$T/datatree" && sha256sum data.bin >data.sha256)
	fi
	(cd "$R" && find usr srv -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/manifest.sha256" ||
		fail "cannot hash the root's files"

	realdisk_mkfs() { # IMG MIB LABEL UUID TREE (one inode per 16 KiB, as mke2fs does above 512 MiB)
		truncate -s "$2M" "$1"
		mke2fs -q -F -t ext4 -b 4096 -i 16384 -L "$3" -U "$4" -d "$5" \
			-E lazy_itable_init=0,lazy_journal_init=0 "$1" || fail "mke2fs for $3 failed"
	}
	realdisk_sb() { dumpe2fs -h "$1" 2>/dev/null | sed -n "s/^$2: *//p"; }
	realdisk_mkfs "$T/keys.ext4" "$KEYS_MIB" KEYS "$KEYS_UUID" "$T/keytree"
	realdisk_mkfs "$T/boot.ext4" "$BOOT_MIB" boot "$BOOT_UUID" "$T/boottree"
	realdisk_mkfs "$T/root.ext4" "$ROOT_MIB" root "$ROOT_UUID" "$R"

	# Fill to FULL_PCT: early files go right after the system's files; then a
	# spacer takes all free blocks but LATE_MIB + a little, the late files land
	# at the very end of the filesystem, and the spacer is removed.
	bc=$(realdisk_sb "$T/root.ext4" 'Block count')
	free=$(realdisk_sb "$T/root.ext4" 'Free blocks')
	late_blk=$((LATE_MIB * 256))
	early_blk=$((bc * FULL_PCT / 100 - (bc - free) - late_blk))
	[ "$early_blk" -ge 0 ] || fail "the system alone fills more than ${FULL_PCT}% of ${ROOT_MIB} MiB; raise REALBOOT_ROOT_MIB"
	{
		echo "mkdir /srv/fill"
		echo "cd /srv/fill"
		i=0 left=$((early_blk * 4096))
		while [ "$left" -gt 0 ]; do
			n=$((left < 4194304 ? left : 4194304))
			head -c "$n" /dev/urandom >"$T/fill/early-$i.bin"
			echo "write $T/fill/early-$i.bin early-$i.bin"
			left=$((left - n)) i=$((i + 1))
		done
	} >"$T/fill1.cmd"
	debugfs -w -f "$T/fill1.cmd" "$T/root.ext4" >"$T/debugfs1.log" 2>&1 || fail "debugfs (early files) failed"
	free=$(realdisk_sb "$T/root.ext4" 'Free blocks')
	: >"$T/empty"
	{
		echo "cd /srv/fill"
		echo "write $T/empty spacer"
		echo "fallocate spacer 0 $((free - late_blk - 64 - 1))"
		for i in $(seq 0 $((LATE_MIB / 4 - 1))); do
			head -c 4194304 /dev/urandom >"$T/fill/late-$i.bin"
			echo "write $T/fill/late-$i.bin late-$i.bin"
		done
		echo "rm spacer"
	} >"$T/fill2.cmd"
	debugfs -w -f "$T/fill2.cmd" "$T/root.ext4" >"$T/debugfs2.log" 2>&1 || fail "debugfs (late files) failed"
	(cd "$T/fill" && sha256sum -- *.bin | sed 's|  |  srv/fill/|') >>"$T/manifest.sha256"
	e2fsck -fn "$T/root.ext4" >"$T/e2fsck-before.log" 2>&1 || fail "the built root fs is not clean: $(tail -n 5 "$T/e2fsck-before.log")"
	free=$(realdisk_sb "$T/root.ext4" 'Free blocks')
	used_pct=$(((bc - free) * 100 / bc))
	last=$(debugfs -R "blocks /srv/fill/late-$((LATE_MIB / 4 - 1)).bin" "$T/root.ext4" 2>/dev/null | tr ' ' '\n' | sort -n | tail -n 1)
	[ "${last:-0}" -ge $((bc - 4096)) ] || fail "the late files do not reach the last 16 MiB of the fs (last block ${last:-?} of $bc)"
	if [ "$used_pct" -lt $((FULL_PCT - 3)) ] || [ "$used_pct" -gt $((FULL_PCT + 3)) ]; then
		fail "the root fs is ${used_pct}% full, not about ${FULL_PCT}%"
	fi

	# GPT: 1 MiB in front, 1 MiB behind for the backup.
	off_state=1 off_keys=$((1 + STATE_MIB)) off_boot=$((1 + STATE_MIB + KEYS_MIB))
	off_root=$((off_boot + BOOT_MIB))
	local more=() end=$((off_root + ROOT_MIB))
	if [ "${REALDISK_BIOS_GRUB:-0}" = 1 ]; then
		more+=(-n "5:$((end * 2048)):+1M" -c 5:bios -t 5:ef02)
		end=$((end + 1))
	fi
	if [ "${REALDISK_DATA_MIB:-0}" -gt 0 ]; then
		realdisk_mkfs "$T/data.ext4" "$REALDISK_DATA_MIB" data "$REALDISK_DATA_UUID" "$T/datatree"
		off_data=$end off_state2=$((end + REALDISK_DATA_MIB))
		more+=(-n "6:$((off_data * 2048)):+${REALDISK_DATA_MIB}M" -c 6:data -t 6:8300
			-n "7:$((off_state2 * 2048)):+${STATE_MIB}M" -c 7:state-data -t 7:8300)
		end=$((off_state2 + STATE_MIB))
	fi
	truncate -s $(((end + 1) * 1048576)) "$T/disk.img"
	sgdisk -o \
		-n "1:$((off_state * 2048)):+${STATE_MIB}M" -c 1:luksipc-state -t 1:8300 \
		-n "2:$((off_keys * 2048)):+${KEYS_MIB}M" -c 2:keys -t 2:8300 \
		-n "3:$((off_boot * 2048)):+${BOOT_MIB}M" -c 3:boot -t 3:8300 \
		-n "4:$((off_root * 2048)):+${ROOT_MIB}M" -c 4:root -t 4:8304 \
		"${more[@]}" "$T/disk.img" >"$T/sgdisk.log" 2>&1 || fail "sgdisk failed: $(cat "$T/sgdisk.log")"
	for p in keys:$off_keys boot:$off_boot root:$off_root ${off_data:+data:$off_data}; do
		dd if="$T/${p%%:*}.ext4" of="$T/disk.img" bs=1M seek="${p#*:}" conv=notrunc,sparse status=none ||
			fail "cannot write the ${p%%:*} partition"
	done
	rm -f "$T/root.ext4"
	echo "  disk: root ${ROOT_MIB} MiB ext4 filling its partition, ${used_pct}% full, late files up to block $last of $bc; $((SECONDS - t))s"
}

# The boot loader: kernel, initramfs and command line of the first entry of
# the disk's /boot/grub/grub.cfg (sets KERNEL, INITRD, CMDLINE).
boot_entry() {
	local e
	rm -f "$T/grub.cfg" "$T/kernel" "$T/initrd.img"
	dd if="$T/disk.img" of="$T/boot.ext4" bs=1M skip="$off_boot" count="$BOOT_MIB" status=none ||
		fail "cannot read the disk's /boot partition"
	debugfs -R "dump /grub/grub.cfg $T/grub.cfg" "$T/boot.ext4" >/dev/null 2>&1
	[ -s "$T/grub.cfg" ] || fail "no /boot/grub/grub.cfg on the disk"
	mapfile -t e < <(awk '!k && $1 == "linux" { k = $2; sub(/^[ \t]*linux[ \t]+[^ \t]+[ \t]*/, ""); a = $0 }
		!i && $1 == "initrd" { i = $2 } END { print k; print i; print a }' "$T/grub.cfg")
	[ -n "${e[0]}" ] || fail "no linux line in /boot/grub/grub.cfg: $(head -c 2000 "$T/grub.cfg")"
	debugfs -R "dump ${e[0]} $T/kernel" "$T/boot.ext4" >/dev/null 2>&1
	debugfs -R "dump ${e[1]} $T/initrd.img" "$T/boot.ext4" >/dev/null 2>&1
	[ -n "${e[1]}" ] || fail "no initrd line in /boot/grub/grub.cfg"
	[ -s "$T/kernel" ] || fail "cannot read ${e[0]} from the disk's /boot"
	[ -s "$T/initrd.img" ] || fail "cannot read ${e[1]} from the disk's /boot"
	KERNEL=$T/kernel INITRD=$T/initrd.img CMDLINE=${e[2]}
}
# an initramfs or emergency shell waits for a human: stop at once
SHELL_RE='Dropping to a shell|You are in emergency mode|Entering emergency mode|Press Enter for maintenance|Cannot open access to console|Give root password|Kernel panic'
# boot_errors LOG: the "luksipc: error" lines of a boot. After a power cut
# (BOOT_RC 137) run-qemu kills nbdkit a few ms before QEMU, and in between
# the guest reads I/O errors (a real power cut gives none): lines stamped
# from 0.1 s before the kernel's first "I/O error, dev" on are its echo, not
# luksipc's doing (QEMU 29: systemd-cryptenroll read a half-gone header).
boot_errors() {
	awk -v cut="$BOOT_RC" '
		function stamp(l) { return match(l, /\[ *[0-9]+\.[0-9]+\]/) ? substr(l, RSTART + 1, RLENGTH - 2) + 0 : -1 }
		{ sub(/\r$/, "") }
		cut == 137 && io == "" && /I\/O error, dev / { io = stamp($0) }
		/luksipc: error/ {
			if (cut == 137 && io != "" && (stamp($0) < 0 || stamp($0) >= io - 0.1)) next
			print
		}' "$1" | sed 's/.*\(luksipc: error.*\)/\1/'
}
boot() { # LOG run-qemu-args...: boot the disk's GRUB entry
	local log=$1 t=$SECONDS how=()
	shift
	if [ "${BIOS_BOOT:-0}" = 1 ]; then
		how=(--bios-boot)
	else
		how=(--kernel "$KERNEL" --initrd "$INITRD" --append "$CMDLINE")
	fi
	# a boot with no power cut planned stops at an emergency shell at once,
	# not at BOOT_TIMEOUT (it waits there for a human)
	case " $* " in *" --kill-after-pattern "*) ;; *) how+=(--kill-after-pattern "$SHELL_RE" --kill-delay-ms 3000) ;; esac
	"$RUN_QEMU" "${how[@]}" ${BOOT_SWTPM:+--swtpm "$BOOT_SWTPM"} \
		--log "$log" --timeout "$BOOT_TIMEOUT" --mem 1536 --smp 2 \
		--nbd-disk "$T/disk.img" --nbd-sock "$T/nbd.sock" "$@"
	BOOT_RC=$?
	BOOT_SECS=$((SECONDS - t))
	echo "  boot ${log##*/}: exit $BOOT_RC after ${BOOT_SECS}s, verdict $(verdict "$log")"
	if boot_errors "$log" | grep -q .; then
		qemu_log_tail "$log" 30
		fail "${log##*/}: $(boot_errors "$log" | head -n 1)"
	fi
}
# grub_booted LOG [FLAG|!FLAG]: the kernel was started by the GRUB on the
# disk, with (or without) FLAG on its command line
grub_booted() {
	local cl
	cl=$(grep -a -m1 -o 'Command line: .*' "$1" | tr -d '\r')
	case "$cl" in
	"Command line: BOOT_IMAGE="*) ;;
	*) qemu_log_tail "$1" 20; fail "${1##*/}: the kernel was not started by GRUB from the disk (${cl:-no command line on the console})" ;;
	esac
	case "${2:-}" in
	"") ;;
	!*) case "$cl" in *"${2#!}"*) fail "${1##*/}: the command line GRUB gave still has ${2#!}: $cl" ;; esac ;;
	*) case "$cl " in *" $2 "*) ;; *) fail "${1##*/}: the command line GRUB gave lacks $2: $cl" ;; esac ;;
	esac
}
# typed_boot LOG PROMPT ANSWER ... -- run-qemu-args: boot with the admin at the console
typed_boot() {
	local log=$1 pairs=() typer
	shift
	while [ "$1" != -- ]; do pairs+=("$1"); shift; done
	shift
	TYPE_AT_CONSOLE_TIMEOUT=$BOOT_TIMEOUT python3 "$QTEST_DIR/lib/type-at-console.py" "$T/console.sock" "${pairs[@]}" >"$log.typer" 2>&1 &
	typer=$!
	boot "$log" --serial-sock "$T/console.sock" "$@"
	wait "$typer"
	TYPER_RC=$?
}
# boot_failed LOG WHAT: empty when the boot powered off with a PASS verdict,
# else what went wrong (the log's tail goes to stdout)
boot_failed() {
	[ "$BOOT_RC" = 0 ] && [ "$(verdict "$1")" = PASS ] && return 0
	qemu_log_tail "$1" 50 >&2
	echo "$2: $(verdict_line "$1" | sed 's/^.*LUKSIPC-VERDICT: //' | grep . || echo "no verdict (run-qemu exit $BOOT_RC)")"
}
expect_pass() { # LOG WHAT
	local f
	f=$(boot_failed "$1" "$2")
	[ -z "$f" ] || fail "$f"
}

# realdisk_verify [HDR]: HDR, a detached header, is optional; callers without one pass nothing
# shellcheck disable=SC2120
realdisk_verify() {
	local t=$SECONDS hdr=${1:-}
	dd if="$T/disk.img" of="$T/root.luks" bs=1M skip="$off_root" count="$ROOT_MIB" status=none ||
		fail "cannot read the root partition"
	realdisk_dec() { python3 "$TOP/tests/lib/luksdecrypt.py" "$T/root.luks" ${hdr:+--header "$hdr"} --out "$T/root.plain" "$@" >"$T/decrypt.log" 2>&1; }
	realdisk_dec --key-file "$T/keytree/luksipc.key" || {
		printf '%s' "$PASS" >"$T/pass"
		realdisk_dec --key-file "$T/pass"
	} || fail "luksdecrypt.py cannot decrypt the root with the key file or the passphrase: $(tail -n 3 "$T/decrypt.log")"
	e2fsck -fn "$T/root.plain" >"$T/e2fsck.log" 2>&1 || fail "e2fsck -fn on the decrypted root: $(tail -n 5 "$T/e2fsck.log")"
	mkdir -p "$T/out"
	debugfs -R "rdump /usr /srv $T/out" "$T/root.plain" >"$T/rdump.log" 2>&1 || fail "debugfs rdump failed"
	nfiles=$(wc -l <"$T/manifest.sha256")
	(cd "$T/out" && sha256sum --quiet -c "$T/manifest.sha256") >"$T/check.log" 2>&1 || {
		head -n 20 "$T/check.log" | sed 's/^/    /'
		fail "$(grep -c -v ': OK$' "$T/check.log") of $nfiles files differ from the manifest after the conversion"
	}
	echo "  host: decrypted${hdr:+ with the header ${hdr##*/}}, e2fsck -fn clean, $nfiles files equal to the manifest: $((SECONDS - t))s"
	NFILES=$nfiles
}

# realdisk_verify_data: the second device (REALDISK_DATA_MIB), on the host
realdisk_verify_data() {
	dd if="$T/disk.img" of="$T/data.luks" bs=1M skip="$off_data" count="$REALDISK_DATA_MIB" status=none ||
		fail "cannot read the data partition"
	python3 "$TOP/tests/lib/luksdecrypt.py" "$T/data.luks" --key-file "$T/keytree/luksipc.key" --out "$T/data.plain" >"$T/decrypt-data.log" 2>&1 ||
		fail "luksdecrypt.py cannot decrypt the data partition with the key file: $(tail -n 3 "$T/decrypt-data.log")"
	e2fsck -fn "$T/data.plain" >"$T/e2fsck-data.log" 2>&1 || fail "e2fsck -fn on the decrypted data partition: $(tail -n 5 "$T/e2fsck-data.log")"
	rm -rf "$T/dataout" && mkdir -p "$T/dataout"
	debugfs -R "dump /data.bin $T/dataout/data.bin" "$T/data.plain" >/dev/null 2>&1
	(cd "$T/dataout" && sha256sum --quiet -c "$T/datatree/data.sha256") >/dev/null 2>&1 ||
		fail "data.bin on the decrypted data partition differs from what was written"
	dd if="$T/disk.img" of="$T/state2.img" bs=1M skip="$off_state2" count="$STATE_MIB" status=none ||
		fail "cannot read the state-data partition"
	if "$TOP/build/luksipc" status --state "$T/state2.img" >"$T/status2.log" 2>&1; then
		fail "the state-data partition still holds a conversion: $(head -n 3 "$T/status2.log")"
	fi
	echo "  host: the data partition decrypted, e2fsck -fn clean, data.bin equal; the state-data partition holds no conversion"
}
