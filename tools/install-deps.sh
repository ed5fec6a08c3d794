#!/bin/sh
# Install the Debian packages that the build, the tests and the benchmarks
# need, when they are missing. Each tools/deps/*.list names packages, one a
# line; '#' starts a comment. Safe to run repeatedly: it only calls apt-get
# when something is missing.
set -eu
here=$(dirname "$0")
pkgs=$(cat "$here"/deps/*.list | sed 's/#.*//' | tr -s '[:blank:]' '\n' | sed '/^$/d' | sort -u)
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
	echo "install-deps: missing Debian packages:$missing; run as root or install them" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
