#!/bin/sh
# tools/install-deps.sh LIST...: install the Debian packages named in
# tools/deps/LIST.list (build, tests, qemu, static, deb), those missing.
# One package or more a line; '#' starts a comment. Safe to run repeatedly:
# it calls apt-get only when something is missing, and then needs root.
# The Makefile calls it for the goals that need more than the build
# (`make deps`: build; `make check`: build tests; ...); `make` never does.
set -eu
here=$(dirname "$0")
if [ $# -eq 0 ]; then
	echo "usage: $0 LIST... (LIST: $(for f in "$here"/deps/*.list; do basename "$f" .list; done | tr '\n' ' ' | sed 's/ $//'))" >&2
	exit 2
fi
files=
for l in "$@"; do
	f=$here/deps/$l.list
	[ -r "$f" ] || { echo "install-deps: no package list '$f'" >&2; exit 2; }
	files="$files $f"
done
# shellcheck disable=SC2086 # a list of file names without blanks
pkgs=$(cat $files | sed 's/#.*//' | tr -s '[:blank:]' '\n' | sed '/^$/d' | sort -u)
missing=
for p in $pkgs; do
	status=$(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$status" in
	ii*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -n "$missing" ] || exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages ($*):$missing; run as root or install them" >&2
	exit 1
fi
echo "install-deps: installing ($*)$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing >&2
