/* The state store: encoding, double-slot records, ordered initialisation. */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "luksipc.h"
#include "state.h"

static const uint8_t sb_magic[8] = "LUKSIPC";
static const uint8_t rec_magic[8] = "LIPCREC";
/*
 * STATE_FORMAT 3: copy C at the tail, the store size and the first step's
 * evidence (2 on one line of work), the keyed "ahead" evidence (2 on the
 * other); both together are 3. 4: --used-only and its allocation map.
 * 5: the device-side marker, and the map's digest in every record.
 * 6: a detached header (convert --header); only such stores say 6, so that
 * a luksipc that cannot finish them refuses them, and every other store is
 * still written as 5 (records are 5 in both).
 * 7: the forward walk (the payload moves down: --decrypt of a header on
 * the device, --reencrypt --header); only such stores say 7, for the same
 * reason.
 */
#define SB_VERSION STATE_FORMAT_PLAIN
#define SB_VERSION_DETACHED STATE_FORMAT_DETACHED
#define SB_VERSION_FORWARD STATE_FORMAT
#define KNOWN_VERSION(v) ((v) == SB_VERSION || (v) == SB_VERSION_DETACHED || (v) == SB_VERSION_FORWARD)
#define REC_VERSION STATE_FORMAT_PLAIN
#define SB_SUM_OFF (STATE_SB_SIZE - 32)
#define REC_HMAC_OFF 416
#define REC_SUM_OFF 448

/* the forward walk (geometry.h): --decrypt of a header on the device, or --reencrypt --header */
static int sb_forward(const struct state_sb *sb)
{
	return sb->geo.header_size == 0 && sb->geo.src_offset > 0;
}

static void put_str(uint8_t *p, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);
	memcpy(p, s, n);
	memset(p + n, 0, cap - n);
}

static void get_str(const uint8_t *p, size_t cap, char *out, size_t outcap)
{
	size_t n = strnlen((const char *)p, cap);
	if (n >= outcap)
		n = outcap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static void put_evidence(uint8_t *p, const struct evidence *e)
{
	put_le64(p, e->off);
	put_le64(p + 8, e->len);
	memcpy(p + 16, e->sha256, 32);
}

static void get_evidence(const uint8_t *p, struct evidence *e)
{
	e->off = get_le64(p);
	e->len = get_le64(p + 8);
	memcpy(e->sha256, p + 16, 32);
}

void state_sb_encode(const struct state_sb *sb, uint8_t out[STATE_SB_SIZE])
{
	memset(out, 0, STATE_SB_SIZE);
	memcpy(out, sb_magic, 8);
	put_le32(out + 8, sb_forward(sb) ? SB_VERSION_FORWARD : sb->detached ? SB_VERSION_DETACHED : SB_VERSION);
	put_le32(out + 12, sb->mode);
	memcpy(out + 16, sb->state_uuid, 16);
	put_le64(out + 32, sb->geo.device_size);
	put_le64(out + 40, sb->geo.header_size);
	put_le64(out + 48, sb->geo.src_offset);
	put_le64(out + 56, sb->geo.step_size);
	put_le64(out + 64, sb->geo.data_size);
	put_le32(out + 72, sb->geo.sector_size);
	put_le32(out + 76, sb->key_bytes);
	put_le32(out + 80, sb->luks_version);
	put_le64(out + 88, sb->header_off);
	put_le64(out + 96, sb->header_len);
	memcpy(out + 104, sb->header_sha256, 32);
	put_str(out + 136, 48, sb->luks_uuid);
	put_str(out + 184, 256, sb->device_path);
	put_str(out + 440, 16, sb->fs_type);
	put_le64(out + 456, sb->fs_size);
	put_le64(out + 464, sb->created);
	put_le32(out + 472, sb->old_sector_size);
	put_le32(out + 476, sb->old_key_bytes);
	put_le32(out + 480, sb->old_luks_version);
	put_le64(out + 488, sb->old_header_off);
	put_le64(out + 496, sb->old_header_len);
	memcpy(out + 504, sb->old_header_sha256, 32);
	put_str(out + 536, 48, sb->old_luks_uuid);
	put_le64(out + 584, sb->journal_off);
	put_le64(out + 592, sb->journal_len);
	put_le32(out + 600, sb->sector_size);
	put_le64(out + 604, sb->store_size);
	put_evidence(out + 612, &sb->first);
	put_le32(out + 660, sb->used_only);
	put_le32(out + 664, USEDMAP_UNIT);
	put_le64(out + 668, sb->map_off);
	put_le64(out + 676, sb->map_len);
	put_le64(out + 684, sb->map_used);
	memcpy(out + 692, sb->map_sha256, 32);
	memcpy(out + 724, sb->map_mac, 32);
	put_le32(out + 1024, sb->started);
	put_le64(out + 756, sb->marker_off);
	put_le32(out + 764, sb->detached);
	put_str(out + 768, 256, sb->header_path);
	SHA256(out, SB_SUM_OFF, out + SB_SUM_OFF);
}

int state_sb_decode(const uint8_t in[STATE_SB_SIZE], struct state_sb *ret)
{
	uint8_t sum[32];
	struct state_sb sb;

	if (memcmp(in, sb_magic, 8) != 0)
		return -EINVAL;
	SHA256(in, SB_SUM_OFF, sum);
	if (memcmp(sum, in + SB_SUM_OFF, 32) != 0)
		return -EINVAL;
	/* Every version keeps magic, version and checksum where version 1 had them. */
	if (!KNOWN_VERSION(get_le32(in + 8)))
		return -EPROTO;
	memset(&sb, 0, sizeof(sb));
	sb.mode = get_le32(in + 12);
	memcpy(sb.state_uuid, in + 16, 16);
	sb.geo.device_size = get_le64(in + 32);
	sb.geo.header_size = get_le64(in + 40);
	sb.geo.src_offset = get_le64(in + 48);
	sb.geo.step_size = get_le64(in + 56);
	sb.geo.data_size = get_le64(in + 64);
	sb.geo.sector_size = get_le32(in + 72);
	sb.key_bytes = get_le32(in + 76);
	sb.luks_version = get_le32(in + 80);
	sb.header_off = get_le64(in + 88);
	sb.header_len = get_le64(in + 96);
	memcpy(sb.header_sha256, in + 104, 32);
	get_str(in + 136, 48, sb.luks_uuid, sizeof(sb.luks_uuid));
	get_str(in + 184, 256, sb.device_path, sizeof(sb.device_path));
	get_str(in + 440, 16, sb.fs_type, sizeof(sb.fs_type));
	sb.fs_size = get_le64(in + 456);
	sb.created = get_le64(in + 464);
	sb.old_sector_size = get_le32(in + 472);
	sb.old_key_bytes = get_le32(in + 476);
	sb.old_luks_version = get_le32(in + 480);
	sb.old_header_off = get_le64(in + 488);
	sb.old_header_len = get_le64(in + 496);
	memcpy(sb.old_header_sha256, in + 504, 32);
	get_str(in + 536, 48, sb.old_luks_uuid, sizeof(sb.old_luks_uuid));
	sb.journal_off = get_le64(in + 584);
	sb.journal_len = get_le64(in + 592);
	sb.sector_size = get_le32(in + 600);
	sb.store_size = get_le64(in + 604);
	get_evidence(in + 612, &sb.first);
	sb.started = get_le32(in + 1024);
	sb.marker_off = get_le64(in + 756);
	sb.detached = get_le32(in + 764);
	get_str(in + 768, 256, sb.header_path, sizeof(sb.header_path));
	/* 7 says forward (detached or not), 6 detached and not forward, 5 neither */
	if (sb.started > 1 || sb_forward(&sb) != (get_le32(in + 8) == SB_VERSION_FORWARD) ||
	    (!sb_forward(&sb) && sb.detached != (get_le32(in + 8) == SB_VERSION_DETACHED)))
		return -EINVAL;
	sb.used_only = get_le32(in + 660);
	sb.map_off = get_le64(in + 668);
	sb.map_len = get_le64(in + 676);
	sb.map_used = get_le64(in + 684);
	memcpy(sb.map_sha256, in + 692, 32);
	memcpy(sb.map_mac, in + 724, 32);
	/* the unit is fixed; a map without used-only, or used-only without a map, is no store of ours */
	if (sb.used_only > USED_ONLY_WIPE || get_le32(in + 664) != USEDMAP_UNIT || (sb.used_only == USED_ONLY_OFF) != (sb.map_len == 0))
		return -EINVAL;
	*ret = sb;
	return 0;
}

static void rec_hmac(const uint8_t *hmac_key, const uint8_t *rec, uint8_t out[32])
{
	unsigned int len = 32;
	HMAC(EVP_sha256(), hmac_key, 32, rec, REC_HMAC_OFF, out, &len);
}

void state_rec_encode(const struct state_rec *rec, const uint8_t state_uuid[16],
		      const uint8_t *hmac_key, uint8_t out[STATE_REC_SIZE])
{
	memset(out, 0, STATE_REC_SIZE);
	memcpy(out, rec_magic, 8);
	put_le32(out + 8, REC_VERSION);
	put_le32(out + 12, rec->phase);
	memcpy(out + 16, state_uuid, 16);
	put_le64(out + 32, rec->seq);
	put_le64(out + 40, rec->frontier);
	put_evidence(out + 48, &rec->ahead);
	put_evidence(out + 96, &rec->behind);
	put_le64(out + 144, rec->time);
	put_le64(out + 152, rec->journal_a);
	put_le64(out + 160, rec->journal_f);
	memcpy(out + 168, rec->journal_sha256, 32);
	memcpy(out + 200, rec->map_sha256, 32);
	if (hmac_key)
		rec_hmac(hmac_key, out, out + REC_HMAC_OFF);
	SHA256(out, REC_SUM_OFF, out + REC_SUM_OFF);
}

int state_rec_decode(const uint8_t in[STATE_REC_SIZE], const uint8_t state_uuid[16],
		     const uint8_t *hmac_key, struct state_rec *ret)
{
	uint8_t sum[32];
	struct state_rec rec;

	if (memcmp(in, rec_magic, 8) != 0 || get_le32(in + 8) != REC_VERSION)
		return -EINVAL;
	SHA256(in, REC_SUM_OFF, sum);
	if (memcmp(sum, in + REC_SUM_OFF, 32) != 0 || memcmp(in + 16, state_uuid, 16) != 0)
		return -EINVAL;
	if (hmac_key) {
		rec_hmac(hmac_key, in, sum);
		if (CRYPTO_memcmp(sum, in + REC_HMAC_OFF, 32) != 0)
			return -EBADMSG;
	}
	memset(&rec, 0, sizeof(rec));
	rec.phase = get_le32(in + 12);
	rec.seq = get_le64(in + 32);
	rec.frontier = get_le64(in + 40);
	get_evidence(in + 48, &rec.ahead);
	get_evidence(in + 96, &rec.behind);
	rec.time = get_le64(in + 144);
	rec.journal_a = get_le64(in + 152);
	rec.journal_f = get_le64(in + 160);
	memcpy(rec.journal_sha256, in + 168, 32);
	memcpy(rec.map_sha256, in + 200, 32);
	if (rec.phase > PHASE_DONE)
		return -EINVAL;
	*ret = rec;
	return 0;
}

uint64_t state_plan(struct state_sb *sb)
{
	sb->header_off = STATE_HEADER_OFF;
	sb->old_header_off = sb->header_off + sb->header_len;
	sb->journal_off = sb->old_header_off + sb->old_header_len;
	sb->map_off = sb->journal_off + sb->journal_len;
	if (sb->map_len)
		sb->map_off = (sb->map_off + STATE_SB_SIZE - 1) / STATE_SB_SIZE * STATE_SB_SIZE;
	return sb->map_off + (sb->map_len + STATE_SB_SIZE - 1) / STATE_SB_SIZE * STATE_SB_SIZE + STATE_SB_SIZE;
}

uint64_t state_tail_sb_off(uint64_t size)
{
	return size / STATE_SB_SIZE * STATE_SB_SIZE - STATE_SB_SIZE;
}

int state_read_sb(struct state *s)
{
	uint64_t copies[3] = { 0, STATE_SB_SIZE, 0 };
	int n = 2;
	uint8_t buf[STATE_SB_SIZE];
	struct state_sb sb;
	int other = 0;

	s->have_sb = 0;
	s->sb_copies = 0;
	if (s->dev.size >= 3 * STATE_SB_SIZE) {
		copies[2] = state_tail_sb_off(s->dev.size);
		n = 3;
	} else if (s->dev.size < 2 * STATE_SB_SIZE) {
		n = (int)(s->dev.size / STATE_SB_SIZE);
	}
	/* Every copy is read, so that a run can say which ones are damaged. */
	for (int i = 0; i < n; i++) {
		int r = dev_pread_full(&s->dev, buf, sizeof(buf), copies[i]);

		if (r < 0)
			return r;
		r = state_sb_decode(buf, &sb);
		if (r == -EPROTO && !other) {
			other = 1;
			s->found_format = get_le32(buf + 8);
		}
		if (r != 0)
			continue;
		s->sb_copies |= 1 << i;
		if (!s->have_sb) {
			s->sb = sb;
			s->have_sb = 1;
		}
	}
	/*
	 * A copy of another version has a valid checksum, so it is no torn
	 * write: the store is refused even when another copy reads as ours.
	 */
	if (other)
		s->have_sb = 0;
	return other ? -EPROTO : s->have_sb ? 0 : -ENOENT;
}

/* 1 if the len bytes at off of the store start with magic (a short store has none). */
static int magic_at(struct state *s, uint64_t off, const void *magic, size_t len)
{
	uint8_t buf[8];

	if (off + len > s->dev.size || len > sizeof(buf))
		return 0;
	if (dev_pread_full(&s->dev, buf, len, off) < 0)
		return -EIO;
	return memcmp(buf, magic, len) == 0;
}

#define REMNANT_SCAN (256 * 1024 * 1024)

/* A LUKS binary header (either copy) at a 4 KiB boundary from 1 MiB on. 1 found, 0 not, -errno. */
static int luks_magic_scan(struct state *s, char *what, size_t len)
{
	static const uint8_t luks1[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
	static const uint8_t luks2b[6] = { 'S', 'K', 'U', 'L', 0xba, 0xbe };
	const size_t chunk = 1024 * 1024;
	uint64_t end = s->dev.size < STATE_HEADER_OFF + REMNANT_SCAN ? s->dev.size : STATE_HEADER_OFF + REMNANT_SCAN;
	uint8_t *buf = dev_buf_alloc(chunk);
	int r = buf ? 0 : -ENOMEM;

	for (uint64_t off = STATE_HEADER_OFF; r == 0 && off + 4096 <= end; off += chunk) {
		size_t n = end - off < chunk ? (size_t)(end - off) / 4096 * 4096 : chunk;

		if ((r = dev_pread_full(&s->dev, buf, n, off)) < 0)
			break;
		for (size_t i = 0; i < n; i += 4096)
			if (memcmp(buf + i, luks1, 6) == 0 || memcmp(buf + i, luks2b, 6) == 0) {
				snprintf(what, len, "a LUKS header image at byte %llu", (unsigned long long)(off + i));
				r = 1;
				break;
			}
	}
	free(buf);
	return r;
}

/* 1 if copy i of the superblock has the magic; *ret_version its format version. */
static int sb_magic_at(struct state *s, uint64_t off, uint32_t *ret_version)
{
	uint8_t buf[12];

	if (off + sizeof(buf) > s->dev.size)
		return 0;
	if (dev_pread_full(&s->dev, buf, sizeof(buf), off) < 0)
		return -EIO;
	*ret_version = get_le32(buf + 8);
	return memcmp(buf, sb_magic, 8) == 0;
}

int state_find_remnants(struct state *s, char *what, size_t len)
{
	static const char notes[] = "luksipc converted";
	static const char *const copy_name[] = { "A", "B", "C, at the end" };
	const struct {
		uint64_t off;
		const void *magic;
		size_t len;
		const char *name;
	} marks[] = {
		{ STATE_REC_SLOT0, rec_magic, 8, "a progress record (slot 0)" },
		{ STATE_REC_SLOT1, rec_magic, 8, "a progress record (slot 1)" },
		{ STATE_NOTES_OFF + 4, notes, 8, "the admin notes of a conversion" },
	};
	uint64_t copies[3] = { 0, STATE_SB_SIZE, s->dev.size >= 3 * STATE_SB_SIZE ? state_tail_sb_off(s->dev.size) : 0 };
	uint32_t version = 0;
	int bad_copy = -1;
	int r;

	for (int i = 0; i < 3; i++) {
		if (i == 2 && copies[2] == 0)
			break;
		if ((r = sb_magic_at(s, copies[i], &version)) < 0)
			return r;
		if (r && !KNOWN_VERSION(version)) {
			snprintf(what, len, "a superblock (copy %s) marked state format %u (this luksipc reads formats %u to %u)",
				 copy_name[i], version, SB_VERSION, SB_VERSION_FORWARD);
			return 1;
		}
		if (r && bad_copy < 0)
			bad_copy = i;
	}
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if ((r = magic_at(s, marks[i].off, marks[i].magic, marks[i].len)) < 0)
			return r;
		if (r) {
			snprintf(what, len, "%s", marks[i].name);
			return 1;
		}
	}
	/*
	 * The header images: the new one at 1 MiB, the old one (LUKS to LUKS)
	 * right after it, each with LUKS2's second binary header inside. Their
	 * sizes are in the lost superblock, so every 4 KiB is looked at.
	 */
	if ((r = luks_magic_scan(s, what, len)) != 0)
		return r;
	if (bad_copy >= 0) {
		snprintf(what, len, "a superblock (copy %s) that fails its checksum", copy_name[bad_copy]);
		return 2;
	}
	return 0;
}

void state_set_key(struct state *s, const uint8_t *vk, size_t vk_len)
{
	static const char label[] = "luksipc state record hmac v1";
	uint8_t msg[sizeof(label) + 16];
	unsigned int len = 32;

	memcpy(msg, label, sizeof(label));
	memcpy(msg + sizeof(label), s->sb.state_uuid, 16);
	HMAC(EVP_sha256(), vk, (int)vk_len, msg, sizeof(msg), s->hmac_key, &len);
	s->have_key = 1;
	state_set_evidence_key(s, vk, vk_len);
}

void state_set_evidence_key(struct state *s, const uint8_t *vk, size_t vk_len)
{
	static const char label[] = "luksipc state evidence hmac v2";
	static const char map_label[] = "luksipc state map hmac v4";
	unsigned int len = 32;

	HMAC(EVP_sha256(), vk, (int)vk_len, (const uint8_t *)label, sizeof(label), s->ev_key, &len);
	HMAC(EVP_sha256(), vk, (int)vk_len, (const uint8_t *)map_label, sizeof(map_label), s->map_key, &len);
	s->have_ev_key = 1;
}

void state_evidence_mac(const struct state *s, const uint8_t *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	HMAC(EVP_sha256(), s->ev_key, 32, buf, len, out, &n);
}

int state_load_records(struct state *s)
{
	static const uint64_t slots[] = { STATE_REC_SLOT0, STATE_REC_SLOT1 };
	uint8_t buf[STATE_REC_SIZE];
	struct state_rec rec;
	int r;

	s->have_rec = 0;
	s->rec_hmac_bad = 0;
	for (int i = 0; i < 2; i++) {
		if (slots[i] + sizeof(buf) > s->dev.size)
			continue; /* a store cut short while it was made: no record there */
		r = dev_pread_full(&s->dev, buf, sizeof(buf), slots[i]);
		if (r < 0)
			return r;
		r = state_rec_decode(buf, s->sb.state_uuid, s->have_key ? s->hmac_key : NULL, &rec);
		if (r == -EBADMSG)
			s->rec_hmac_bad = 1;
		if (r < 0)
			continue;
		if (!s->have_rec || rec.seq > s->rec.seq) {
			s->rec = rec;
			s->have_rec = 1;
		}
	}
	return s->have_rec ? 0 : -ENOENT;
}

/* Whether [off, off + len) lies in the store: lengths from the superblock are checked before use. */
static int in_store(const struct state *s, uint64_t off, uint64_t len)
{
	return off <= s->dev.size && len <= s->dev.size - off;
}

/* Reads len bytes at off and checks them against sha256. */
static int read_verified(struct state *s, uint64_t off, uint64_t len, const uint8_t sha256[32], uint8_t *buf)
{
	uint8_t sum[32];
	int r = in_store(s, off, len) ? dev_pread_full(&s->dev, buf, len, off) : -EBADMSG;

	if (r < 0)
		return r;
	SHA256(buf, len, sum);
	return memcmp(sum, sha256, 32) == 0 ? 0 : -EBADMSG;
}

static int read_image(struct state *s, uint64_t off, uint64_t len, const uint8_t sha256[32], uint8_t **ret)
{
	uint8_t *img;
	int r;

	if (!in_store(s, off, len))
		return -EBADMSG; /* before allocating what a damaged superblock asks for */
	img = dev_buf_alloc(len);
	if (!img)
		return -ENOMEM;
	r = read_verified(s, off, len, sha256, img);
	if (r < 0) {
		free(img);
		return r;
	}
	*ret = img;
	return 0;
}

int state_read_header(struct state *s, uint8_t **ret)
{
	return read_image(s, s->sb.header_off, s->sb.header_len, s->sb.header_sha256, ret);
}

int state_read_old_header(struct state *s, uint8_t **ret)
{
	return read_image(s, s->sb.old_header_off, s->sb.old_header_len, s->sb.old_header_sha256, ret);
}

/* The map's area on the store: its length rounded up to 4 KiB, for direct I/O. */
static uint64_t map_area(const struct state_sb *sb)
{
	return (sb->map_len + STATE_SB_SIZE - 1) / STATE_SB_SIZE * STATE_SB_SIZE;
}

int state_set_map(struct state *s, struct state_sb *sb)
{
	unsigned int len = 32;

	free(s->map_buf);
	s->map_buf = NULL;
	sb->map_len = usedmap_encoded_len(&s->map);
	sb->map_used = s->map.used;
	if (!sb->map_len)
		return -EINVAL; /* the first 4 KiB are always used */
	s->map_buf = dev_buf_alloc(map_area(sb));
	if (!s->map_buf)
		return -ENOMEM;
	memset(s->map_buf, 0, map_area(sb));
	usedmap_encode(&s->map, s->map_buf);
	SHA256(s->map_buf, sb->map_len, sb->map_sha256);
	HMAC(EVP_sha256(), s->map_key, 32, s->map_buf, sb->map_len, sb->map_mac, &len);
	return 0;
}

int state_read_map(struct state *s)
{
	const struct state_sb *sb = &s->sb;
	uint8_t mac[32];
	unsigned int n = 32;
	uint8_t *buf;
	int r;

	if (!sb->map_len || sb->map_len > (uint64_t)USEDMAP_MAX_EXTENTS * USEDMAP_EXTENT_BYTES || !in_store(s, sb->map_off, map_area(sb)))
		return -EBADMSG; /* before allocating what a damaged superblock asks for */
	buf = dev_buf_alloc(map_area(sb));
	if (!buf)
		return -ENOMEM;
	r = read_verified(s, sb->map_off, sb->map_len, sb->map_sha256, buf);
	if (r == 0 && s->have_ev_key) {
		HMAC(EVP_sha256(), s->map_key, 32, buf, sb->map_len, mac, &n);
		if (CRYPTO_memcmp(mac, sb->map_mac, 32) != 0)
			r = -EKEYREJECTED;
	}
	if (r == 0) {
		usedmap_free(&s->map);
		r = usedmap_decode(&s->map, buf, sb->map_len, sb->geo.data_size);
		r = r == -EINVAL ? -EBADMSG : r;
	}
	free(buf);
	s->have_map = r == 0;
	s->map_wipe = sb->used_only == USED_ONLY_WIPE;
	return r;
}

int state_write_journal(struct state *s, const uint8_t *buf, uint64_t len)
{
	int r;

	if (len > s->sb.journal_len)
		return -EINVAL;
	r = dev_pwrite_full(&s->dev, buf, len, s->sb.journal_off);
	return r < 0 ? r : dev_flush(&s->dev);
}

int state_read_journal(struct state *s, uint8_t *buf)
{
	uint64_t len = s->rec.journal_f - s->rec.journal_a;

	if (s->rec.journal_f == 0 || len > s->sb.journal_len)
		return -EBADMSG;
	return read_verified(s, s->sb.journal_off, len, s->rec.journal_sha256, buf);
}

/*
 * Reads len bytes at off: 0 if they are those of expect, -EBADMSG if not.
 * In 1 MiB pieces, so that it costs no more memory than that.
 */
static int read_back(struct state *s, uint64_t off, uint64_t len, const uint8_t *expect)
{
	const size_t piece = 1024 * 1024;
	uint8_t *buf = dev_buf_alloc(piece);
	int r = buf ? 0 : -ENOMEM;

	for (uint64_t done = 0; r == 0 && done < len; done += piece) {
		size_t n = len - done < piece ? (size_t)(len - done) : piece;

		r = dev_pread_full(&s->dev, buf, n, off + done);
		if (r == 0 && memcmp(buf, expect + done, n) != 0)
			r = -EBADMSG;
	}
	free(buf);
	return r;
}

/*
 * Encodes s->sb and writes copies A, B, then C (in the last whole 4 KiB of
 * the store's recorded size); no flush. A cut leaves each copy whole
 * (checksummed), old or new.
 */
static int write_sb_copies(struct state *s)
{
	uint8_t buf[STATE_SB_SIZE];
	int r;

	state_sb_encode(&s->sb, buf);
	r = dev_pwrite_full(&s->dev, buf, sizeof(buf), 0);
	if (r == 0)
		r = dev_pwrite_full(&s->dev, buf, sizeof(buf), STATE_SB_SIZE);
	if (r == 0)
		r = dev_pwrite_full(&s->dev, buf, sizeof(buf), state_tail_sb_off(s->sb.store_size));
	return r;
}

int state_mark_started(struct state *s)
{
	int r;

	s->sb.started = 1;
	r = write_sb_copies(s);
	if (r == 0)
		r = dev_flush(&s->dev);
	return r;
}

int state_create(struct state *s, const struct state_sb *sb, const uint8_t *header_image,
		 const uint8_t *old_header_image)
{
	int r;

	s->sb = *sb;
	s->sb.store_size = s->dev.size;
	if (s->dev.size < state_plan(&s->sb) || sb->header_off != s->sb.header_off)
		return -ENOSPC;
	/*
	 * 1. The superblock, three times: two at the start, one at the end, so
	 * that no damage confined to one end makes the store look empty. It is
	 * durable before anything else of the conversion is written, so a store
	 * that holds a header image, notes or a record but no valid superblock
	 * was damaged, never merely cut short. Its checksum makes a torn copy
	 * invalid; the header's SHA-256 in it makes a missing header visible.
	 */
	r = write_sb_copies(s);
	if (r == 0)
		r = dev_flush(&s->dev);
	if (r < 0)
		return r;
	s->have_sb = 1;
	s->sb_copies = 7;
	/*
	 * 2. The header image, the only copy of the volume key until the end,
	 * and for LUKS to LUKS the old header, the only copy once it is
	 * overwritten.
	 */
	r = dev_pwrite_full(&s->dev, header_image, sb->header_len, sb->header_off);
	if (r == 0 && sb->old_header_len)
		r = dev_pwrite_full(&s->dev, old_header_image, sb->old_header_len, sb->old_header_off);
	if (r == 0 && sb->map_len)
		r = s->map_buf ? dev_pwrite_full(&s->dev, s->map_buf, map_area(sb), sb->map_off) : -EINVAL;
	if (r == 0)
		r = dev_flush(&s->dev);
	/*
	 * 3. Read back: a store that does not return what it was given is
	 * refused. Compared byte for byte with what was written (whose SHA-256
	 * the superblock holds), which costs less than hashing it again.
	 */
	if (r == 0)
		r = read_back(s, sb->header_off, sb->header_len, header_image);
	if (r == 0 && sb->old_header_len)
		r = read_back(s, sb->old_header_off, sb->old_header_len, old_header_image);
	if (r == 0 && sb->map_len)
		r = read_back(s, sb->map_off, map_area(sb), s->map_buf);
	return r;
}

int state_commit(struct state *s, struct state_rec *rec)
{
	uint8_t buf[STATE_REC_SIZE];
	int r;

	rec->seq = s->have_rec ? s->rec.seq + 1 : 1;
	/* the record's HMAC covers the map it was made with */
	if (s->sb.used_only)
		memcpy(rec->map_sha256, s->sb.map_sha256, 32);
	else
		memset(rec->map_sha256, 0, 32);
	state_rec_encode(rec, s->sb.state_uuid, s->hmac_key, buf);
	r = dev_pwrite_full(&s->dev, buf, sizeof(buf), rec->seq % 2 ? STATE_REC_SLOT1 : STATE_REC_SLOT0);
	if (r == 0)
		r = dev_flush(&s->dev);
	if (r < 0)
		return r;
	s->rec = *rec;
	s->have_rec = 1;
	return 0;
}

int state_write_notes(struct state *s, const char *text)
{
	size_t n = strlen(text);
	uint8_t *buf;
	int r;

	if (n + 5 > STATE_NOTES_MAX)
		n = STATE_NOTES_MAX - 5;
	buf = calloc(1, STATE_NOTES_MAX);
	if (!buf)
		return -ENOMEM;
	put_le32(buf, (uint32_t)n);
	memcpy(buf + 4, text, n);
	r = dev_pwrite_full(&s->dev, buf, STATE_NOTES_MAX, STATE_NOTES_OFF);
	if (r == 0)
		r = dev_flush(&s->dev);
	free(buf);
	return r;
}

int state_read_notes(struct state *s, char **ret)
{
	uint8_t len[4];
	uint32_t n;
	char *text;
	int r = dev_pread_full(&s->dev, len, sizeof(len), STATE_NOTES_OFF);

	if (r < 0)
		return r;
	n = get_le32(len);
	if (n > STATE_NOTES_MAX - 5)
		n = 0;
	text = calloc(1, n + 1);
	if (!text)
		return -ENOMEM;
	if (n && (r = dev_pread_full(&s->dev, text, n, STATE_NOTES_OFF + 4)) < 0) {
		free(text);
		return r;
	}
	*ret = text;
	return 0;
}

int state_wipe(struct state *s)
{
	uint64_t end = state_plan(&s->sb);
	size_t chunk = 1024 * 1024;
	uint8_t *zero = calloc(1, chunk);
	int r = 0;

	if (!zero)
		return -ENOMEM;
	if (end > s->dev.size)
		end = s->dev.size;
	for (uint64_t off = 0; off < end && r == 0; off += chunk) {
		size_t n = end - off < chunk ? (size_t)(end - off) : chunk;
		r = dev_pwrite_full(&s->dev, zero, n, off);
	}
	/* copy C: at the end of the store as it is, and where it was made */
	if (r == 0 && s->dev.size >= 3 * STATE_SB_SIZE)
		r = dev_pwrite_full(&s->dev, zero, STATE_SB_SIZE, state_tail_sb_off(s->dev.size));
	if (r == 0 && s->sb.store_size >= 3 * STATE_SB_SIZE && s->sb.store_size <= s->dev.size)
		r = dev_pwrite_full(&s->dev, zero, STATE_SB_SIZE, state_tail_sb_off(s->sb.store_size));
	if (r == 0)
		r = dev_flush(&s->dev);
	free(zero);
	return r;
}
