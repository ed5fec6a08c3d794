#!/bin/sh
# The Makefile builds and says what is missing; it installs packages only
# for the goals that need them: `make` as an unprivileged user builds and
# calls no apt, `make deps` and the test goals install their lists
# (tools/deps/*.list), a missing compiler or -dev package stops make with one
# line naming the package. User CFLAGS, CPPFLAGS and LDLIBS add to the
# required flags in every build. `make install` lays out the files that the
# Debian packages ship (tests/deb/expected/; make deb-check checks the
# packages themselves), and the build dependencies are listed alike in
# tools/, debian/control and the missing-package message.
# shellcheck source=tests/lib/common.sh
. "$(dirname "$0")/../lib/common.sh"

# mk ARGS...: make in the tree with a clean environment (no flags or
# MAKEFLAGS from a make that runs this test), objects in $T/b
mk() {
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u MAKEOVERRIDES -u CFLAGS -u CPPFLAGS \
		-u LDFLAGS -u LDLIBS make --no-print-directory -C "$TESTS_ROOT" BUILD="$T/b" "$@"
}

# fake_apt DIR [UID]: dpkg-query that says no package is installed and an
# apt-get that only records its arguments in $T/apt.log; with UID, an id
# that says so.
fake_apt() {
	mkdir -p "$1"
	printf '#!/bin/sh\nprintf "un "\n' >"$1/dpkg-query"
	printf '#!/bin/sh\necho "$*" >>"%s/apt.log"\n' "$T" >"$1/apt-get"
	[ -z "${2:-}" ] || printf '#!/bin/sh\necho %s\n' "$2" >"$1/id"
	chmod 755 "$1"/*
}

t_unprivileged_build() {
	need_cmd cc pkg-config
	mkdir tree
	(cd "$TESTS_ROOT" && tar -c --exclude=./build --exclude=./.git .) | tar -x -C tree
	fake_apt "$T/fake"
	chmod 755 "$T"
	as=''
	if [ "$(id -u)" = 0 ]; then
		chown -R nobody tree
		as='runuser -u nobody --'
	fi
	# shellcheck disable=SC2086 # as: a command and its options, or nothing
	run_rc 0 $as env -u MAKEFLAGS -u MAKELEVEL PATH="$T/fake:$PATH" make -C tree
	[ -x tree/build/luksipc ] || fail "make built no build/luksipc"
	[ ! -e apt.log ] || fail "make called apt-get: $(cat apt.log)"
	echo "make as $(if [ -n "$as" ]; then echo nobody; else id -un; fi): build/luksipc built, no apt-get"
	# shellcheck disable=SC2086
	run_rc 0 $as env -u MAKEFLAGS -u MAKELEVEL PATH="$T/fake:$PATH" make -C tree install DESTDIR="$T/tree/dest"
	[ -x tree/dest/usr/local/sbin/luksipc ] || fail "make install put no /usr/local/sbin/luksipc"
	[ ! -e apt.log ] || fail "make install called apt-get: $(cat apt.log)"
	echo "make install DESTDIR=: no apt-get"
	# make deps as non-root with packages missing: refuses, naming them
	if [ -n "$as" ]; then
		# shellcheck disable=SC2086
		run_rc 2 $as env -u MAKEFLAGS -u MAKELEVEL PATH="$T/fake:$PATH" make -C tree deps
		assert_grep '^install-deps: missing Debian packages \(build\):.* libcryptsetup-dev.*; run as root' err
		[ ! -e apt.log ] || fail "make deps as nobody called apt-get"
		echo "make deps as nobody: refused, naming the packages"
	fi
}

t_goals_install_their_lists() {
	fake_apt "$T/fake" 0
	PATH=$T/fake:$PATH
	export PATH
	run_rc 0 mk deps
	assert_grep ' install .*build-essential' apt.log
	assert_grep ' install .*libcryptsetup-dev' apt.log
	assert_no_grep 'qemu-system-x86|shellcheck|debhelper' apt.log
	echo "make deps: apt-get $(grep ' install ' apt.log)"
	# The goals and the lists they install before compiling (make -n shows
	# the recipe of build-deps, every object's order-only prerequisite).
	for goal in all:- install:- check:"build tests" unit-check:build demo:"build qemu tests" \
		qemu-check-ci:"build qemu static tests" mutation-check:"build tests" \
		sanitize-check:"build tests" static-check:"build static" deb-check:"build deb static"; do
		g=${goal%%:*}
		want=${goal#*:}
		lists=$(mk -n "$g" 2>&1 | sed -n 's|^\./tools/install-deps\.sh \(.*\)$|\1|p' | head -n 1)
		[ "$want" != - ] || want=''
		[ "$lists" = "$want" ] || fail "make $g installs '${lists:-nothing}', expected '${want:-nothing}'"
		echo "make $g: installs ${lists:-nothing}"
	done
}

t_missing_dependency() {
	# pkg-config that finds everything but libcryptsetup
	printf '#!/bin/sh\ncase "$*" in *libcryptsetup*) exit 1 ;; esac\nexec pkg-config "$@"\n' >pc
	chmod 755 pc
	run_rc 2 mk PKG_CONFIG="$T/pc"
	[ "$(grep -c '^luksipc:' err)" = 1 ] || fail "not one 'luksipc:' line: $(cat err)"
	assert_grep '^luksipc: cannot build, missing libcryptsetup-dev \(pkg-config finds no libcryptsetup\); apt-get install libcryptsetup-dev, or make deps as root$' err
	[ ! -e b/obj ] || fail "make compiled although libcryptsetup is missing"
	echo "no libcryptsetup: $(grep '^luksipc:' err)"
	run_rc 2 mk CC="$T/no-such-cc"
	assert_grep "^luksipc: cannot build, missing gcc \(no C compiler '$T/no-such-cc'\); apt-get install gcc, or make deps as root$" err
	echo "no compiler: $(grep '^luksipc:' err)"
	# no pkg-config to ask: the -dev packages are looked for by their .pc
	run_rc 2 mk PKG_CONFIG="$T/no-such-pkg-config"
	assert_grep "^luksipc: cannot build, missing pkg-config \(no '$T/no-such-pkg-config'\); apt-get install pkg-config, or make deps as root$" err
	echo "no pkg-config: $(grep '^luksipc:' err)"
	# with everything there, the check is silent
	run_rc 0 "$TESTS_ROOT/tools/check-build-deps.sh" cc pkg-config
	[ ! -s err ] || fail "check-build-deps.sh complains with everything installed: $(cat err)"
}

# compile_lines FILE: the compiler lines of a make -n output that take
# CPPFLAGS (compiling; a unit test is compiled and linked at once)
compile_lines() {
	grep -E '^(cc|gcc|clang) .*( -c -o | -o [^ ]*/unit/)' "$1" || true
}

t_user_flags_add() {
	need_cmd nm
	mk -n CFLAGS=-O0 all "$T/b/test/luksipc" "$T/b/unit/test_state" "$T/b/asan/obj/util.o" \
		"$T/b/static-obj/util.o" "$T/b/static-test-obj/util.o" >n.out 2>&1
	compile_lines n.out >c.lines
	for d in obj test-obj asan/obj static-obj static-test-obj unit; do
		grep -q -- "-o $T/b/$d/" c.lines || fail "make -n shows no compile into $d"
	done
	n=0
	while IFS= read -r line; do
		for f in -std=c11 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
			-pthread -fstack-protector-strong -D_FORTIFY_SOURCE=2; do
			case " $line " in *" $f "*) ;; *) fail "CFLAGS=-O0 drops $f: $line" ;; esac
		done
		case " $line " in *" -O0 -Og "*) ;; *) fail "CFLAGS=-O0: no -Og after it: $line" ;; esac
		n=$((n + 1))
	done <c.lines
	[ "$n" -ge 6 ] || fail "only $n compile lines in make -n"
	echo "make -n CFLAGS=-O0: $n compile lines (shipped, test, unit, ASan, static, static test) keep -std=c11, the warnings, FORTIFY, -pthread, and add -Og"
	mk -n CFLAGS=-O0 LDLIBS=-lm mutation-check >m.out 2>&1
	assert_grep 'CFLAGS="-std=c11 .*-O0 -Og"' m.out
	assert_grep 'CPPFLAGS=".*-D_FORTIFY_SOURCE=2 .*-DLUKSIPC_TEST_HOOKS"' m.out
	assert_grep 'LDLIBS=".*-lcryptsetup.* -pthread -lm"' m.out
	echo "make mutation-check passes the same flags to the mutants"
	# -O1 is optimisation enough; a CPPFLAGS FORTIFY level replaces ours
	mk -n CFLAGS=-O1 CPPFLAGS=-D_FORTIFY_SOURCE=3 >n1.out 2>&1
	compile_lines n1.out >c1.lines
	[ -s c1.lines ] || fail "make -n CFLAGS=-O1 shows no compile line"
	assert_no_grep ' -Og( |$)|_FORTIFY_SOURCE=2' c1.lines
	assert_grep ' -D_FORTIFY_SOURCE=3 ' c1.lines
	echo "CFLAGS=-O1: no -Og; CPPFLAGS=-D_FORTIFY_SOURCE=3 replaces =2"
	# Built for real under -Werror: FORTIFY works (fortified __*_chk calls).
	run_rc 0 mk CI=true CFLAGS=-O0 LDLIBS=-lm
	nchk=$(nm -D b/luksipc | grep -c ' U __.*_chk' || true)
	nstack=$(nm -D b/luksipc | grep -c ' U __stack_chk_fail' || true)
	[ "$((nchk - nstack))" -ge 1 ] || fail "CFLAGS=-O0: build/luksipc calls no fortified __*_chk function"
	echo "CI=true CFLAGS=-O0: built with -Werror; $((nchk - nstack)) fortified __*_chk functions linked"
}

# expected_install: the files of tests/deb/expected/*.list as make install
# lays them out (no /usr/share/doc or lintian overrides, which debhelper
# adds; man pages not yet compressed), mode and path
expected_install() {
	cat "$TESTS_ROOT"/tests/deb/expected/*.list | grep -v '^#' |
		grep -v -e ' usr/share/doc/' -e ' usr/share/lintian/' |
		sed 's|^\(.* usr/share/man/.*\)\.gz$|\1|' | sort
}

t_install_matches_packages() {
	need_shipped_build
	# the tree's own build (build/luksipc, and build/luksipc.static if made)
	run_rc 0 env -u MAKEFLAGS -u MAKELEVEL make --no-print-directory -C "$TESTS_ROOT" \
		install DESTDIR="$T/root" PREFIX=/usr
	(cd root && find . ! -type d -printf '%M %P\n' | sort) >got
	expected_install >want
	# the static binary only when `make static` built it
	[ -e root/usr/lib/luksipc/luksipc.static ] || sed -i '\| usr/lib/luksipc/luksipc.static$|d' want
	diff -u want got >d || { cat d; fail "make install PREFIX=/usr differs from the packages' files (- packages, + make install)"; }
	echo "make install PREFIX=/usr: the $(wc -l <got) files the packages ship, modes included"
	cat "$TESTS_ROOT"/debian/*.install | grep -v -e '^#' -e luksipc.static >install.paths
	while read -r path; do
		[ -e "root/$path" ] || fail "debian/*.install names $path, make install does not put it there"
	done <install.paths
	echo "every path of debian/*.install is installed"
}

need_shipped_build() {
	[ -x "$LUKSIPC_SHIPPED" ] || skip_unless_ci "$LUKSIPC_SHIPPED not built (run make)"
}

# words FILE: the package names of a tools/deps list, one a line
words() {
	sed 's/#.*//' "$1" | tr -s '[:blank:]' '\n' | sed '/^$/d' | sort -u
}

t_one_list_of_build_deps() {
	# check-build-deps.sh names packages of build.list
	for p in $(grep -o '[a-z0-9]\+-dev' "$TESTS_ROOT/tools/check-build-deps.sh" | sort -u) gcc pkg-config; do
		case $p in
		gcc) words "$TESTS_ROOT/tools/deps/build.list" | grep -qx build-essential ;;
		*) words "$TESTS_ROOT/tools/deps/build.list" | grep -qx "$p" ;;
		esac || fail "tools/check-build-deps.sh names $p, tools/deps/build.list does not"
	done
	# debian/control builds with what build.list and static.list install
	bd=$(sed -n '/^Build-Depends:/,/^[^ ]/p' "$TESTS_ROOT/debian/control" | sed 's/^Build-Depends://; /^[A-Z#]/d' |
		tr ',' '\n' | sed 's/^ *//; s/[ (].*//' | sed '/^$/d' | sort -u)
	[ -n "$bd" ] || fail "no Build-Depends in debian/control"
	for p in $(words "$TESTS_ROOT/tools/deps/build.list") $(words "$TESTS_ROOT/tools/deps/static.list"); do
		# Build-Essential packages go without saying
		case $p in build-essential | libc6-dev) continue ;; esac
		echo "$bd" | grep -qx "$p" || fail "debian/control Build-Depends lacks $p (tools/deps/build.list or static.list)"
	done
	echo "tools/check-build-deps.sh, tools/deps/{build,static}.list and debian/control name the same build dependencies"
	v=$(sed -n 's/^#define LUKSIPC_VERSION "\(.*\)"$/\1/p' "$TESTS_ROOT/src/luksipc.h")
	dv=$(dpkg-parsechangelog -l "$TESTS_ROOT/debian/changelog" -S Version)
	assert_eq "$dv" "$v" "debian/changelog's version is LUKSIPC_VERSION"
	echo "debian/changelog: $dv, as src/luksipc.h"
}

run_test "make as an unprivileged user builds and installs no package" t_unprivileged_build
run_test "make deps and the test goals install their lists, make none" t_goals_install_their_lists
run_test "a missing compiler or -dev package: one line naming it" t_missing_dependency
run_test "CFLAGS, CPPFLAGS, LDLIBS add to the required flags" t_user_flags_add
run_test "make install lays out the Debian packages' files" t_install_matches_packages
run_test "one list of build dependencies" t_one_list_of_build_deps
test_done
