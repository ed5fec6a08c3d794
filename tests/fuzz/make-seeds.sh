#!/bin/sh
# make-seeds.sh LUKSIPC OUTDIR: the fuzz target's seed corpus, states from
# real runs of LUKSIPC: stores left by faults at each initialisation write,
# interrupted conversions (plaintext to LUKS, LUKS to LUKS with a journal and
# with a shift), finished ones. Each seed is the first 132 KiB of a store
# (superblocks, records, notes): the header images beyond are only hashed.
# Generated at build time (make fuzz), never committed.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/luksipc-seeds.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
MiB=1048576
N=$((10 * MiB + 3 * 4096))
fast="--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --batch -l 0"
head -c 64 /dev/urandom >key
head -c 64 /dev/urandom >key2

# fresh NAME [ROOM]: a plaintext image with an ext4 filesystem that leaves
# ROOM bytes (2 MiB) at the end.
fresh() {
	rm -f "$1.img"
	truncate -s "$N" "$1.img"
	mkfs.ext4 -q -F "$1.img" $(((N - ${2:-2 * MiB}) / 1024)) >/dev/null 2>&1
	printf 'seed data %s\n' "$1" | dd of="$1.img" bs=1 seek=$((5 * MiB)) conv=notrunc 2>/dev/null
}

# run NAME ENV... -- ARGS...: a conversion of NAME.img with state NAME.st
# (exit status ignored: faults are the point); keeps the seed.
run() {
	name=$1
	shift
	# shellcheck disable=SC2086
	env "$@" "$bin" convert -d "$name.img" --state "$name.st" --key-file key \
		--type luks2 --header-size 2M --step-size 512K $fast >/dev/null 2>&1 || :
	[ -f "$name.st" ] && head -c $((132 * 1024)) "$name.st" >"$out/$name"
	return 0
}

for n in 1 2 3 4 5; do
	fresh "init-w$n"
	run "init-w$n" LUKSIPC_TEST_FAULT=state-write:$n:EIO
done
fresh first-flush && run first-flush LUKSIPC_TEST_FAULT=write:1:EIO
fresh mid && run mid LUKSIPC_TEST_FAULT=write:7:EIO
fresh late && run late LUKSIPC_TEST_FAULT=write:18:EIO
fresh finished && run finished LUKSIPC_TEST_FAULT=
# the header written, "done" not recorded
fresh header && run header LUKSIPC_TEST_FAULT=state-flush:25:EIO

# LUKS to LUKS: a LUKS2 source made by luksipc, then re-encrypted with the
# same header size (journal) and with a larger one (shift), interrupted.
for kind in journal shift; do
	fresh "re-$kind" $((6 * MiB))
	run "re-$kind" LUKSIPC_TEST_FAULT=
	mv "re-$kind.st" "re-$kind.src.st"
	h=2M
	[ "$kind" = shift ] && h=4M
	for f in write:3:EIO state-write:6:EIO ""; do
		tag=$(echo "${f:-done}" | tr ':' '-')
		cp "re-$kind.img" "re-$kind-$tag.img"
		# shellcheck disable=SC2086
		env LUKSIPC_TEST_FAULT="$f" "$bin" convert --reencrypt -d "re-$kind-$tag.img" --state "re-$kind-$tag.st" \
			--old-key-file key --key-file key2 --type luks2 --header-size $h --step-size 512K \
			$fast >/dev/null 2>&1 || :
		[ -f "re-$kind-$tag.st" ] && head -c $((132 * 1024)) "re-$kind-$tag.st" >"$out/re-$kind-$tag"
	done
done
# --used-only: interrupted and finished; the map (at 1 MiB + the 2M header
# image) is appended after the first 132 KiB, where the target decodes it.
for f in write:2:EIO state-write:3:EIO ""; do
	tag=used-$(echo "${f:-done}" | tr ':' '-')
	fresh "$tag"
	# shellcheck disable=SC2086
	env LUKSIPC_TEST_FAULT="$f" "$bin" convert -d "$tag.img" --state "$tag.st" --key-file key \
		--type luks2 --header-size 2M --step-size 512K --used-only $fast >/dev/null 2>&1 || :
	if [ -f "$tag.st" ]; then
		head -c $((132 * 1024)) "$tag.st" >"$out/$tag"
		# exactly the encoded extents: superblock offsets 668 (map offset) and 676 (length)
		moff=$(od -An -tu8 -j 668 -N 8 "$tag.st" | tr -d ' ')
		mlen=$(od -An -tu8 -j 676 -N 8 "$tag.st" | tr -d ' ')
		tail -c +$((moff + 1)) "$tag.st" | head -c "$mlen" >>"$out/$tag"
	fi
done
# a short and an empty store
head -c 5000 "$out/mid" >"$out/short"
: >"$out/empty"
echo "$(find "$out" -type f | wc -l) seeds in $out"
# An interrupted run leaves a converting record; a binary without the test
# hooks finishes every run, and the corpus lacks the interesting states.
if ! "$bin" status --state mid.st 2>/dev/null | grep -q '^phase: converting$'; then
	echo "make-seeds: $bin ignored LUKSIPC_TEST_FAULT, so no seed is an interrupted run; use a test build" >&2
	exit 1
fi
