# shellcheck shell=sh
# Guest-side helpers, installed as /lib/qemu-test.sh in every test
# initramfs built by busybox-initrd.sh and in the test root built by
# mkdisk.sh. Busybox sh.
#
#   qt_mounts            mount proc, sysfs, devtmpfs, /run and /tmp
#   qt_say MSG           one line to the console, and to ttyS0 as well when
#                        the console is not already on ttyS0
#   qt_verdict PASS|FAIL DETAIL   print the single "LUKSIPC-VERDICT:" line,
#                        sync and power off (never returns)
#   qt_wait_dev DEV [SEC]  wait (default 10 s) for a block device node
#   qt_arg NAME          value of NAME=... on /proc/cmdline ("" if absent)

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

qt_mounts() {
	[ -e /proc/self ] || mount -t proc proc /proc
	[ -d /sys/class ] || mount -t sysfs sysfs /sys
	grep -q '^[^ ]* /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
	mkdir -p /run /tmp
	grep -q ' /run ' /proc/mounts || mount -t tmpfs tmpfs /run
	grep -q ' /tmp ' /proc/mounts || mount -t tmpfs tmpfs /tmp
}

qt_say() {
	echo "$*" >/dev/console
	case " $(cat /sys/class/tty/console/active 2>/dev/null) " in
	*" ttyS0 "*) ;;
	*) [ -c /dev/ttyS0 ] && echo "$*" >/dev/ttyS0 ;;
	esac
}

qt_verdict() {
	qt_say "LUKSIPC-VERDICT: $1${2:+ $2}"
	sync
	sleep 0.2
	poweroff -f
	while :; do sleep 1; done
}

qt_wait_dev() {
	_n=$((${2:-10} * 10))
	while [ ! -b "$1" ] && [ "$_n" -gt 0 ]; do
		sleep 0.1
		_n=$((_n - 1))
	done
	[ -b "$1" ]
}

qt_arg() {
	read -r _cmdline </proc/cmdline
	for _a in $_cmdline; do
		case "$_a" in "$1"=*) echo "${_a#*=}"; return 0 ;; esac
	done
	echo ""
}
