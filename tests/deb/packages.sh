#!/bin/bash
# tests/deb/packages.sh [DIR]: check the Debian packages that `make deb` put
# in DIR (default build/deb); `make deb-check` runs it after `make deb`.
#
#   lintian         no error or warning on the .changes, apart from the
#                   overrides in debian/*.lintian-overrides, each under a
#                   comment that says why
#   file lists      each package holds exactly the files of
#                   tests/deb/expected/PACKAGE.list (mode and path)
#   control         relations, the initramfs trigger, Built-Using, version
#   install, purge  into a Debian 12 root (the cached mmdebstrap root of
#                   qemu-tests/lib/realroot.sh, built when missing): dpkg -i
#                   all three, the trigger puts luksipc.static into the
#                   initramfs, dracut builds an image with the module; then
#                   dpkg --purge leaves the root as it was before, apart
#                   from dpkg's own records and logs and the rebuilt
#                   initramfs, which holds no luksipc any more
#
# Needs root (chroot). Every case prints what it checked (VERBOSE=1, as
# make deb-check sets, shows it).
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"

DEBS=$(cd "${1:-$TESTS_ROOT/build/deb}" && pwd)
PACKAGES="luksipc luksipc-initramfs dracut-luksipc"
EXPECTED=$TESTS_ROOT/tests/deb/expected
VERSION=$(dpkg-parsechangelog -l "$TESTS_ROOT/debian/changelog" -S Version)

# deb PACKAGE: the path of PACKAGE's .deb in $DEBS
deb() {
	local f
	f=$(find "$DEBS" -maxdepth 1 -name "$1_${VERSION}_*.deb")
	if [ -z "$f" ] || [ "$(echo "$f" | wc -l)" != 1 ]; then
		fail "no single $1_${VERSION}_*.deb in $DEBS (make deb)"
	fi
	echo "$f"
}

t_lintian() {
	local changes
	need_cmd lintian
	changes=$DEBS/luksipc_${VERSION}_$(dpkg --print-architecture).changes
	[ -r "$changes" ] || fail "no $changes (make deb)"
	# lintian exits 2 when --show-overrides meets --fail-on: two runs, the
	# verdict from the first, the overrides shown by the second.
	lintian --fail-on error,warning "$changes" >lintian.out 2>&1 || {
		grep -v 'running with root privileges' lintian.out
		fail "lintian: errors or warnings not overridden (above)"
	}
	lintian --fail-on none -I --show-overrides "$changes" 2>&1 | { grep -v 'running with root privileges' || true; } |
		sed 's/^/lintian: /'
	echo "lintian $(lintian --version | sed 's/^Lintian v//'): no error or warning on $(basename "$changes")" \
		"($(grep -c "\.deb$" "$changes") files listed); info tags and overrides shown above"
	# Every override is documented: the line above it is a comment.
	for f in "$TESTS_ROOT"/debian/*.lintian-overrides; do
		awk -v f="${f#"$TESTS_ROOT"/}" '
			/^[[:space:]]*$/ { prev = ""; next }
			/^#/ { prev = "#"; next }
			prev != "#" { print f ": override without a comment above it: " $0; bad = 1 }
			{ prev = "o" }
			END { exit bad }' "$f" || fail "undocumented lintian override"
		echo "$(basename "$f"): $(grep -vc -e '^#' -e '^[[:space:]]*$' "$f") override(s), each under a comment"
	done
}

# contents DEB: mode and path of every non-directory in DEB
contents() {
	dpkg-deb -c "$1" | awk '$1 !~ /^d/ { p = $6; sub(/^\.\//, "", p); print $1, p }' | sort
}

t_file_lists() {
	local p want
	for p in $PACKAGES; do
		want=$EXPECTED/$p.list
		grep -v '^#' "$want" | sort >"$p.want"
		contents "$(deb "$p")" >"$p.got"
		diff -u "$p.want" "$p.got" >"$p.diff" || {
			cat "$p.diff"
			fail "$p: files differ from ${want#"$TESTS_ROOT"/} (- expected, + in the package)"
		}
		echo "$p: the $(wc -l <"$p.got") files of ${want#"$TESTS_ROOT"/}, modes included"
	done
}

# field DEB NAME: a control field of DEB
field() {
	dpkg-deb -f "$1" "$2"
}

# has_relation DEB FIELD RELATION: FIELD of DEB lists RELATION
has_relation() {
	field "$1" "$2" | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -qxF "$3" ||
		fail "$(basename "$1"): $2 lacks '$3' (it is: $(field "$1" "$2"))"
	echo "$(basename "$1"): $2 has $3"
}

t_control() {
	local v triggers lib dr
	v=$(sed -n 's/^#define LUKSIPC_VERSION "\(.*\)"$/\1/p' "$TESTS_ROOT/src/luksipc.h")
	[ "$VERSION" = "$v" ] || fail "debian/changelog says $VERSION, src/luksipc.h says $v"
	echo "version $VERSION, as luksipc --version says"
	has_relation "$(deb luksipc-initramfs)" Depends "luksipc (= $VERSION)"
	has_relation "$(deb luksipc-initramfs)" Depends initramfs-tools
	has_relation "$(deb dracut-luksipc)" Depends "luksipc (>= $VERSION)"
	has_relation "$(deb dracut-luksipc)" Depends dracut-core
	[ "$(field "$(deb dracut-luksipc)" Architecture)" = all ] || fail "dracut-luksipc is not Architecture: all"
	triggers=$(dpkg-deb --ctrl-tarfile "$(deb luksipc-initramfs)" | tar -xO ./triggers 2>/dev/null) ||
		fail "luksipc-initramfs has no triggers file"
	echo "$triggers" | grep -qx 'activate-noawait update-initramfs' ||
		fail "luksipc-initramfs does not activate update-initramfs: $triggers"
	echo "luksipc-initramfs: triggers update-initramfs (activate-noawait)"
	for lib in cryptsetup lvm2 openssl glibc; do
		field "$(deb luksipc-initramfs)" Built-Using | grep -q "\b$lib (= " ||
			fail "luksipc-initramfs: Built-Using names no $lib: $(field "$(deb luksipc-initramfs)" Built-Using)"
	done
	echo "luksipc-initramfs: Built-Using $(field "$(deb luksipc-initramfs)" Built-Using)"
	dr=$(dpkg-deb --ctrl-tarfile "$(deb luksipc)" | tar -t | grep -E 'inst|rm$' || true)
	[ -z "$dr" ] || fail "luksipc has maintainer scripts, none expected: $dr"
	echo "luksipc: no maintainer scripts"
}

# in_root CMD...: run CMD in the root $R (chroot in a mount namespace)
in_root() {
	realroot_chroot "$R" "$@"
}

# snapshot FILE: every path of $R with its type and mode, and the checksum of
# each file under /etc. Left out: what the kernel and dpkg keep (/proc,
# /sys, /dev, /run, /tmp, /var/lib/dpkg, /var/log, /var/cache/debconf) and
# the initramfs, rebuilt by each trigger (checked on its own).
snapshot() {
	(
		cd "$R"
		find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run -o -path ./tmp \
			-o -path ./var/lib/dpkg -o -path ./var/log -o -path ./var/cache/debconf \
			-o -path ./var/lib/initramfs-tools \) -prune -o \
			-path './boot/initrd.img-*' -o -printf '%y %m %p\n' | LC_ALL=C sort
		find ./etc -xdev -type f -exec md5sum {} + | LC_ALL=C sort -k2
	) >"$1"
}

# initrd_luksipc: the luksipc entries of the root's initramfs, "SIZE PATH"
initrd_luksipc() {
	in_root sh -c 'lsinitramfs -l /boot/initrd.img-*' | awk '/luksipc/ { print $5, $NF }'
}

t_install_purge() {
	local cache kver p f static_size inst
	[ "$(id -u)" = 0 ] || fail "needs root (chroot into a Debian 12 root)"
	# shellcheck source=qemu-tests/lib/realroot.sh
	. "$TESTS_ROOT/qemu-tests/lib/realroot.sh"
	realroot_base || fail "no Debian 12 root: $REALROOT_ERR"
	echo "root: $REALROOT_TAR (${REALROOT_SECS}s)"
	R=$T/root
	realroot_unpack "$R" || fail "cannot unpack $REALROOT_TAR"
	kver=$(realroot_kver "$R")

	# dracut-luksipc needs dracut-core (and it kpartx), not in the root:
	# apt-get download once into the cache.
	cache=${QEMU_CACHE:-/var/cache/luksipc-qemu}/deb-check
	mkdir -p "$cache" "$R/tmp/debs"
	for p in dracut-core kpartx; do
		f=$(find "$cache" -name "${p}_*.deb" | head -n 1)
		if [ -z "$f" ]; then
			(cd "$cache" && apt-get -q -o APT::Sandbox::User=root download "$p") ||
				fail "cannot download $p into $cache"
			f=$(find "$cache" -name "${p}_*.deb" | head -n 1)
		fi
		cp "$f" "$R/tmp/debs/"
	done
	in_root sh -c 'dpkg -i /tmp/debs/*.deb' >deps.log 2>&1 ||
		{ cat deps.log; fail "cannot install dracut-core into the root"; }
	rm "$R"/tmp/debs/*
	# shellcheck disable=SC2016 # a dpkg-query format
	echo "root prepared: $(in_root dpkg-query -W -f '${Package} ${Version}\n' dracut-core kpartx | tr '\n' ' ')"
	initrd_luksipc >initrd.before
	[ ! -s initrd.before ] || fail "the root's initramfs holds luksipc before the install: $(cat initrd.before)"
	snapshot before

	for p in $PACKAGES; do cp "$(deb "$p")" "$R/tmp/debs/"; done
	in_root sh -c 'dpkg -i /tmp/debs/*.deb' >install.log 2>&1 || { cat install.log; fail "dpkg -i failed"; }
	grep -q 'Processing triggers for initramfs-tools' install.log ||
		{ cat install.log; fail "installing did not trigger update-initramfs"; }
	for p in $PACKAGES; do
		# shellcheck disable=SC2016 # a dpkg-query format
		inst=$(in_root dpkg-query -W -f '${db:Status-Abbrev}${Version}' "$p")
		[ "$inst" = "ii $VERSION" ] || fail "$p is '$inst' after dpkg -i, not 'ii $VERSION'"
	done
	echo "installed with dpkg -i: $PACKAGES (dependencies met by the root)"
	[ "$(in_root luksipc --version)" = "luksipc $VERSION" ] || fail "luksipc --version: $(in_root luksipc --version)"
	echo "/usr/sbin/luksipc --version: luksipc $VERSION"
	# The snapshot sees the packages (so that it can see what a purge leaves).
	snapshot installed
	diff before installed | sed -n 's/^> [a-z] [0-9]* \.//p' >added
	for f in /usr/sbin/luksipc /usr/lib/luksipc/luksipc.static /usr/lib/dracut/modules.d/55luksipc/module-setup.sh; do
		grep -qx "$f" added || fail "the snapshot after dpkg -i does not show $f"
	done
	echo "the snapshot shows the $(wc -l <added) paths the install added"

	# The trigger rebuilt the initramfs with the hook: the static binary
	# as /usr/sbin/luksipc, the library and the local-top script.
	initrd_luksipc >initrd.installed
	static_size=$(stat -c %s "$R/usr/lib/luksipc/luksipc.static")
	grep -qx "$static_size usr/sbin/luksipc" initrd.installed ||
		{ cat initrd.installed; fail "the initramfs has no usr/sbin/luksipc of luksipc.static's size $static_size"; }
	grep -q ' usr/lib/luksipc/luksipc-lib.sh$' initrd.installed || fail "the initramfs has no luksipc-lib.sh"
	grep -q ' scripts/local-top/luksipc$' initrd.installed || fail "the initramfs has no local-top/luksipc"
	echo "update-initramfs (trigger): initrd.img-$kver holds usr/sbin/luksipc (luksipc.static," \
		"$static_size bytes), luksipc-lib.sh, scripts/local-top/luksipc"

	# dracut builds an image with the module (it is included only when asked).
	in_root dracut -q -N --no-hostonly --kver "$kver" --modules luksipc -f /tmp/dracut.img >dracut.log 2>&1 ||
		{ cat dracut.log; fail "dracut --modules luksipc failed"; }
	in_root lsinitrd /tmp/dracut.img >dracut.ls 2>&1
	for f in usr/sbin/luksipc usr/sbin/luksipc-boot usr/lib/luksipc/luksipc-lib.sh; do
		grep -q " $f\$" dracut.ls || fail "dracut image lacks $f"
	done
	echo "dracut --modules luksipc: the image holds luksipc, luksipc-boot and the library"
	rm -f "$R/tmp/dracut.img" "$R"/tmp/debs/*

	# shellcheck disable=SC2086 # a list of package names
	in_root dpkg --purge $PACKAGES >purge.log 2>&1 || { cat purge.log; fail "dpkg --purge failed"; }
	grep -q 'Processing triggers for initramfs-tools' purge.log ||
		{ cat purge.log; fail "purging did not trigger update-initramfs"; }
	for p in $PACKAGES; do
		# shellcheck disable=SC2016 # a dpkg-query format
		inst=$(in_root dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null || true)
		[ -z "$inst" ] || [ "$inst" = "un " ] || fail "$p is '$inst' after the purge"
	done
	echo "purged: $PACKAGES (dpkg knows them no more)"
	initrd_luksipc >initrd.after
	[ ! -s initrd.after ] || fail "the initramfs still holds luksipc after the purge: $(cat initrd.after)"
	echo "update-initramfs (trigger): initrd.img-$kver holds no luksipc any more"
	snapshot after
	diff -u before after >snapshot.diff || {
		cat snapshot.diff
		fail "the purge left the root changed (- before the install, + after the purge)"
	}
	echo "after the purge: the root's $(grep -c '^[a-z] ' after) paths and $(grep -vc '^[a-z] ' after)" \
		"checksums of /etc are as before the install"
}

run_test "lintian: no error or warning outside documented overrides" t_lintian
run_test "each package holds exactly the expected files" t_file_lists
run_test "control: relations, initramfs trigger, Built-Using, version" t_control
run_test "install, initramfs, purge in a Debian 12 root" t_install_purge
test_done
