/*
 * libFuzzer target for the state store parser: the input is the first bytes
 * of a store (superblocks, record slots, notes, and whatever follows). It is
 * loaded the way convert, status and a journal replay load a store, from a
 * memory-backed file through the same I/O seam (src/dev.c), with and without
 * a record key. Build and run: make fuzz-check (docs/interface.md).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine.h"
#include "luksipc.h"
#include "state.h"

/* Seeds end at 132 KiB; what follows is a --used-only map (docs/format.md), decoded on its own. */
#define MAP_AT (132u * 1024)

/* Larger journals are refused by the engine (step_size, at most the header size). */
#define JOURNAL_CAP (64u * 1024 * 1024)

static const uint8_t vk[64] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/*
 * Mutations almost never keep a SHA-256 right, so most inputs would stop at
 * the checksums. Unless the last byte is odd, the input's superblock copies
 * and record slots get valid checksums first (and records a valid HMAC
 * under vk, with the record key derived as src/state.c does): the decoders
 * behind them are what is fuzzed. Offsets: docs/format.md.
 */
static void fix_sums(uint8_t *p, size_t size)
{
	static const char label[] = "luksipc state record hmac v1";
	uint8_t msg[sizeof(label) + 16], key[32];
	unsigned int len = 32;

	for (size_t off = 0; off <= STATE_SB_SIZE; off += STATE_SB_SIZE)
		if (off + STATE_SB_SIZE <= size)
			SHA256(p + off, STATE_SB_SIZE - 32, p + off + STATE_SB_SIZE - 32);
	if (size < 32)
		return;
	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), p + 16, 16);
	HMAC(EVP_sha256(), vk, sizeof(vk), msg, sizeof(msg), key, &len);
	for (size_t off = STATE_REC_SLOT0; off <= STATE_REC_SLOT1; off += STATE_REC_SLOT1 - STATE_REC_SLOT0) {
		if (off + STATE_REC_SIZE > size)
			break;
		HMAC(EVP_sha256(), key, 32, p + off, 416, p + off + 416, &len);
		SHA256(p + off, 448, p + off + 448);
	}
}

static int store_fd(const uint8_t *data, size_t size)
{
	static int fd = -1;

	if (fd < 0)
		fd = memfd_create("fuzz-state", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	return fd;
}

/* A device for the evidence checks: 4 MiB of zeros, made once. */
static struct dev *device(void)
{
	static struct dev d = { .fd = -1, .dfd = -1 };

	if (d.fd < 0) {
		d.fd = memfd_create("fuzz-device", MFD_CLOEXEC);
		if (d.fd < 0 || ftruncate(d.fd, 4 << 20) < 0)
			abort();
		d.size = 4 << 20;
	}
	return &d;
}

/* What resume and status read once a superblock is valid. */
static void load(struct state *s)
{
	uint8_t *img = NULL;
	char *notes = NULL;

	if (state_load_records(s) == 0)
		(void)engine_verify(device(), s); /* the evidence offsets and lengths */
	if (s->have_rec && s->rec.journal_f) {
		uint64_t len = s->sb.journal_len < JOURNAL_CAP ? s->sb.journal_len : JOURNAL_CAP;
		uint8_t *buf = malloc(len ? len : 1);

		/* as replay_journal: the step fits the buffer, or the record is refused */
		if (buf && s->rec.journal_f - s->rec.journal_a <= len)
			(void)state_read_journal(s, buf);
		free(buf);
	}
	if (state_read_header(s, &img) == 0)
		free(img);
	img = NULL;
	if (s->sb.old_header_len && state_read_old_header(s, &img) == 0)
		free(img);
	if (state_read_notes(s, &notes) == 0)
		free(notes);
	/* the first record's evidence window comes from the map (check_identity has vetted the step size) */
	if (s->sb.used_only && state_read_map(s) == 0 && s->sb.geo.step_size) {
		struct state_rec rec;

		(void)engine_first_record(device(), s, &s->sb.geo, &rec);
	}
	usedmap_free(&s->map);
	s->have_map = 0;
}

/* The map decoder and its queries, on the bytes after MAP_AT. */
static void map_tail(const uint8_t *data, size_t size, uint64_t limit)
{
	struct usedmap m;
	struct usedmap_extent runs[66], top;
	uint64_t len = size > MAP_AT ? (size - MAP_AT) / USEDMAP_EXTENT_BYTES * USEDMAP_EXTENT_BYTES : 0;

	if (!len || usedmap_decode(&m, data + MAP_AT, len, limit) < 0)
		return;
	for (uint64_t f = limit; f > 0; f = f > 64 * USEDMAP_UNIT ? f - 64 * USEDMAP_UNIT : 0) {
		uint64_t a = f > 64 * USEDMAP_UNIT ? f - 64 * USEDMAP_UNIT : 0;

		(void)usedmap_runs(&m, a, f, 16 * USEDMAP_UNIT, runs, 66);
		(void)usedmap_top_below(&m, f, 1 << 20, &top);
		if (limit - f > (256u << 20))
			break;
	}
	usedmap_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(size ? size : 1);
	struct state s;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (size && !(data[size - 1] & 1))
		fix_sums(copy, size);
	log_level = -1; /* quiet */
	memset(&s, 0, sizeof(s));
	s.dev.fd = store_fd(copy, size);
	free(copy);
	s.dev.dfd = -1;
	s.dev.target = TARGET_STATE;
	s.dev.size = size;
	if (state_read_sb(&s) < 0) {
		map_tail(data, size, 64u << 20);
		return 0;
	}
	map_tail(data, size, s.sb.geo.data_size);
	load(&s); /* checksums only, as status and the "already converted" check */
	state_set_key(&s, vk, sizeof(vk));
	load(&s); /* with a record key, as a resume after unlocking */
	return 0;
}
