#!/bin/sh
# tools/check-build-deps.sh CC PKG_CONFIG: are the compiler and the
# libraries luksipc links there? Silent when they are; else one line naming
# the Debian packages to install (tools/deps/build.list) and exit 1.
# make runs it before compiling anything; it installs nothing.
set -u
cc=${1:-cc}
pkg_config=${2:-pkg-config}
missing=
what=
# add PACKAGE WHY: PACKAGE is missing, WHY says how we know
add() {
	missing="$missing $1"
	what="$what${what:+, }$1 ($2)"
}
# The first word: CC may carry options (CC="gcc -m32").
set -f
# shellcheck disable=SC2086 # split CC into the command and its options
set -- $cc
set +f
if ! command -v "$1" >/dev/null 2>&1; then
	case $1 in
	*clang*) add clang "no C compiler '$1'" ;;
	*) add gcc "no C compiler '$1'" ;;
	esac
fi
# has_pc MODULE: MODULE.pc in pkg-config's usual places (when there is no
# pkg-config to ask, so that the message names every package at once)
has_pc() {
	for d in /usr/lib/*/pkgconfig /usr/lib/pkgconfig /usr/share/pkgconfig \
		/usr/local/lib/*/pkgconfig /usr/local/lib/pkgconfig; do
		[ -e "$d/$1.pc" ] && return 0
	done
	return 1
}
have_pkg_config=yes
if ! command -v "$pkg_config" >/dev/null 2>&1; then
	add pkg-config "no '$pkg_config'"
	have_pkg_config=no
fi
# pkg-config module:Debian package
for m in libcryptsetup:libcryptsetup-dev blkid:libblkid-dev libcrypto:libssl-dev ext2fs:libext2fs-dev; do
	if [ "$have_pkg_config" = yes ]; then
		"$pkg_config" --exists "${m%%:*}" 2>/dev/null || add "${m#*:}" "pkg-config finds no ${m%%:*}"
	else
		has_pc "${m%%:*}" || add "${m#*:}" "no ${m%%:*}.pc"
	fi
done
[ -n "$missing" ] || exit 0
echo "luksipc: cannot build, missing $what; apt-get install$missing, or make deps as root" >&2
exit 1
