#!/bin/sh
# Build the static libraries that Debian does not ship, for `make static`:
#   libdevmapper.a  from Debian's lvm2 source package (make device-mapper)
#   libcryptsetup.a from Debian's cryptsetup source package
# into a cache under the build tree:
#   $DEPS/src      apt-get source trees
#   $DEPS/prefix   installed headers, .a files and pkg-config files
#   $DEPS/*.log    one log per phase (the tail is printed on failure)
#   $DEPS/stamp    written last; while it matches this script, nothing is redone
# The other static libraries (libcrypto, json-c, argon2, blkid, uuid, libc)
# come from Debian -dev packages, see tools/deps/static.list.
#
# Usage: static/build-deps.sh [DEPS_DIR]   (default: build/static-deps)
# Environment: FORCE=1 rebuilds even when the stamp matches; JOBS=N.
# Idempotent; needs root only when packages or the deb-src entry are missing.
set -eu

# Called from make: keep the caller's flags and variable overrides (CFLAGS=...,
# -k, -jN) out of the configure scripts and sub-makes of lvm2 and cryptsetup.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES CFLAGS CPPFLAGS LDFLAGS LIBS CC

here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
top=$(dirname "$here")

# Internal: `build-deps.sh --phase NAME DEPS_DIR` runs one phase in a child
# process, so that `set -e` holds inside it (it would not inside `if f`).
phase=
if [ "${1:-}" = --phase ]; then
	phase=$2
	shift 2
fi

DEPS=${1:-$top/build/static-deps}
mkdir -p "$DEPS"
DEPS=$(cd "$DEPS" && pwd)
SRC=$DEPS/src
PREFIX=$DEPS/prefix
STAMP=$DEPS/stamp
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
SRC_LIST=/etc/apt/sources.list.d/luksipc-src.sources

# ---------------------------------------------------------------- phases

have_deb_src() {
	# any enabled deb-src line (one-line format) or deb822 stanza
	grep -qsE '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list && return 0
	grep -qsiE '^[[:space:]]*Types:.*deb-src' /etc/apt/sources.list.d/*.sources && return 0
	return 1
}

need_root() {
	[ "$(id -u)" -eq 0 ] && return 0
	echo "build-deps: $1; run static/build-deps.sh as root once" >&2
	exit 1
}

phase_apt() {
	updated=no
	if ! have_deb_src; then
		need_root "no deb-src entry in /etc/apt"
		echo "adding $SRC_LIST"
		# mirror the deb stanzas of debian.sources, as deb-src
		if [ -r /etc/apt/sources.list.d/debian.sources ]; then
			sed -e 's/^Types:.*/Types: deb-src/' \
				/etc/apt/sources.list.d/debian.sources >"$SRC_LIST.tmp"
		else
			cat >"$SRC_LIST.tmp" <<-'EOF'
			Types: deb-src
			URIs: http://deb.debian.org/debian
			Suites: bookworm bookworm-updates
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

			Types: deb-src
			URIs: http://deb.debian.org/debian-security
			Suites: bookworm-security
			Components: main
			Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
			EOF
		fi
		mv "$SRC_LIST.tmp" "$SRC_LIST"
		apt-get update -q
		updated=yes
	fi
	pkgs=$(sed 's/#.*//' "$top/tools/deps/static.list" | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
	missing=
	for p in $pkgs; do
		case $(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null || true) in
		ii*) ;;
		*) missing="$missing $p" ;;
		esac
	done
	if [ -n "$missing" ]; then
		need_root "missing Debian packages:$missing"
		echo "installing:$missing"
		[ "$updated" = yes ] || apt-get update -q
		updated=yes
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
	fi
	if [ -z "$(apt-cache showsrc cryptsetup lvm2 2>/dev/null)" ]; then
		[ "$updated" = yes ] || apt-get update -q
	fi
	apt-cache showsrc cryptsetup lvm2 | grep -E '^(Package|Version):'
}

phase_fetch() {
	rm -rf "$SRC"
	mkdir -p "$SRC"
	cd "$SRC"
	# as root, apt would download as _apt and warn that it cannot
	apt-get -o APT::Sandbox::User=root source -q cryptsetup lvm2
}

srcdir() {
	for d in "$SRC/$1"-[0-9]*; do
		[ -d "$d" ] && { echo "$d"; return 0; }
	done
	echo "build-deps: no $1 source tree in $SRC" >&2
	return 1
}

phase_lvm2() {
	cd "$(srcdir lvm2)"
	# libdevmapper only: no udev, selinux, blkid, readline, systemd, dbus
	./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" \
		--enable-static_link \
		--disable-selinux --disable-udev_sync --disable-udev_rules \
		--disable-blkid_wiping --disable-readline --disable-nls \
		--disable-systemd-journal --disable-app-machineid \
		--disable-notify-dbus --disable-dmeventd --disable-lvmpolld \
		--disable-dmfilemapd --disable-cmdlib
	make -j"$JOBS" device-mapper
	make -C libdm install_static install_include install_pkgconfig
	test -f "$PREFIX/lib/libdevmapper.a"
}

phase_cryptsetup() {
	cd "$(srcdir cryptsetup)"
	# The OpenSSL backend loads the optional "legacy" provider (ripemd160,
	# whirlpool...) from ossl-modules/legacy.so with dlopen, which in a
	# static binary maps a second libc and libcrypto.so. LUKS2 with
	# aes-xts/sha256/argon2/pbkdf2 does not need it: do not load it.
	f=lib/crypto_backend/crypto_openssl.c
	pat='ossl_legacy = OSSL_PROVIDER_try_load(ossl_ctx, "legacy", 0);'
	grep -qF "$pat" "$f" || grep -qF 'luksipc static' "$f" || {
		echo "$f: legacy provider load not found, update the patch" >&2
		exit 1
	}
	sed -i "s|$pat|ossl_legacy = NULL; /* luksipc static: no dlopen */|" "$f"
	grep -qF 'luksipc static' "$f"
	./autogen.sh
	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig \
	CPPFLAGS="-I$PREFIX/include" LDFLAGS="-L$PREFIX/lib" \
	./configure --prefix="$PREFIX" --libdir="$PREFIX/lib" \
		--enable-static --disable-shared \
		--disable-cryptsetup --disable-veritysetup --disable-integritysetup \
		--disable-ssh-token --disable-external-tokens \
		--disable-udev --disable-selinux --disable-nls --disable-asciidoc \
		--disable-pwquality --disable-passwdqc --disable-fuzz-targets \
		--with-crypto_backend=openssl --enable-libargon2 \
		--with-tmpfilesdir="$PREFIX/lib/tmpfiles.d"
	grep -q 'define USE_EXTERNAL_TOKENS' config.h && {
		echo "external tokens still enabled" >&2
		exit 1
	}
	make -j"$JOBS"
	# Only into $PREFIX: without --with-tmpfilesdir, the tmpfiles.d entry
	# goes to systemd's /usr/lib/tmpfiles.d, over cryptsetup-bin's file as
	# root, and fails as any other user.
	make install
	test -f "$PREFIX/lib/libcryptsetup.a"
}

phase_check() {
	# LUKS2 must not need dynamic loading at run time
	for a in libcryptsetup.a libdevmapper.a; do
		if nm -u "$PREFIX/lib/$a" | grep -qwE 'dlopen|dlsym|dlvsym'; then
			echo "$a refers to dlopen/dlsym" >&2
			exit 1
		fi
	done
	PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig pkg-config --static --libs libcryptsetup
}

if [ -n "$phase" ]; then
	"phase_$phase"
	exit 0
fi

# ---------------------------------------------------------------- driver

now() { date +%s.%N; }

stamp_id() {
	printf 'build-deps %s\n' "$(cksum <"$self")"
}

if [ "${FORCE:-0}" != 1 ] && [ -f "$STAMP" ] &&
	[ "$(cat "$STAMP")" = "$(stamp_id)" ] &&
	[ -f "$PREFIX/lib/libcryptsetup.a" ] && [ -f "$PREFIX/lib/libdevmapper.a" ]; then
	echo "build-deps: up to date ($DEPS)"
	touch "$STAMP"
	exit 0
fi
rm -f "$STAMP"

t_start=$(now)
run_phase() {
	log=$DEPS/$1.log
	printf 'build-deps: %-10s ' "$1"
	t0=$(now)
	if sh "$self" --phase "$1" "$DEPS" >"$log" 2>&1; then
		printf 'ok %6.1fs\n' "$(echo "$t0 $(now)" | awk '{print $2 - $1}')"
	else
		echo "FAILED, last lines of $log:"
		tail -n 40 "$log" | sed 's/^/  | /'
		exit 1
	fi
}

run_phase apt
run_phase fetch
run_phase lvm2
run_phase cryptsetup
run_phase check
stamp_id >"$STAMP"
printf 'build-deps: done in %.1fs; %s\n' "$(echo "$t_start $(now)" | awk '{print $2 - $1}')" \
	"$(grep -hE '^Version:' "$DEPS/apt.log" | tr '\n' ' ')"
