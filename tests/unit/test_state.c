/* State store encoding: round trips, checksums, HMAC, uuid binding, torn bytes. */
#include <errno.h>
#include <openssl/sha.h>
#include <string.h>

#include "state.h"
#include "unit.h"

/* The superblock's checksum over what the test changed by hand. */
static void reseal(uint8_t *buf)
{
	SHA256(buf, STATE_SB_SIZE - 32, buf + STATE_SB_SIZE - 32);
}

static struct state_sb sample_sb(void)
{
	struct state_sb sb;

	memset(&sb, 0, sizeof(sb));
	memset(sb.state_uuid, 0xab, sizeof(sb.state_uuid));
	sb.mode = MODE_ENCRYPT;
	CHECK(geometry_init(&sb.geo, 123456789 * 512ull, 16 << 20, 0, 4 << 20, 4096) == 0);
	sb.key_bytes = 64;
	sb.luks_version = 2;
	sb.header_off = STATE_HEADER_OFF;
	sb.header_len = 16 << 20;
	memset(sb.header_sha256, 0x5a, 32);
	strcpy(sb.luks_uuid, "0bd3e2a4-6a3b-4c1c-9d4e-0123456789ab");
	strcpy(sb.device_path, "/dev/disk/by-partuuid/whatever");
	strcpy(sb.fs_type, "ext4");
	sb.fs_size = 1 << 30;
	sb.created = 1700000000;
	return sb;
}

static void test_sb(void)
{
	struct state_sb sb = sample_sb(), out;
	uint8_t buf[STATE_SB_SIZE];

	sb.store_size = (17 << 20) + 4096;
	sb.first.off = 5 << 20;
	sb.first.len = 1 << 20;
	memset(sb.first.sha256, 0x5a, 32);
	sb.marker_off = 123456789 * 512ull / 4096 * 4096 - 4096;
	state_sb_encode(&sb, buf);
	CHECK(state_sb_decode(buf, &out) == 0);
	CHECK(out.marker_off == sb.marker_off);
	CHECK(memcmp(&out.geo, &sb.geo, sizeof(sb.geo)) == 0);
	CHECK(out.key_bytes == 64 && out.luks_version == 2 && out.mode == MODE_ENCRYPT);
	CHECK(strcmp(out.luks_uuid, sb.luks_uuid) == 0);
	CHECK(strcmp(out.device_path, sb.device_path) == 0);
	CHECK(memcmp(out.header_sha256, sb.header_sha256, 32) == 0);
	CHECK(out.fs_size == sb.fs_size && out.created == sb.created);
	CHECK(out.store_size == sb.store_size && memcmp(&out.first, &sb.first, sizeof(sb.first)) == 0);
	CHECK(out.started == 0);
	sb.started = 1;
	state_sb_encode(&sb, buf);
	CHECK(state_sb_decode(buf, &out) == 0 && out.started == 1);
	sb.started = 2; /* only 0 or 1, even with a good checksum */
	state_sb_encode(&sb, buf);
	CHECK(state_sb_decode(buf, &out) == -EINVAL);
	sb.started = 1;
	state_sb_encode(&sb, buf);
	/* any flipped byte is detected */
	for (size_t i = 0; i < sizeof(buf); i += 97) {
		buf[i] ^= 0x01;
		CHECK(state_sb_decode(buf, &out) == -EINVAL);
		buf[i] ^= 0x01;
	}
	memset(buf, 0, sizeof(buf));
	CHECK(state_sb_decode(buf, &out) == -EINVAL);
	/* a detached header: format 6, its path kept; the version and the flag must agree */
	sb.detached = 1;
	snprintf(sb.header_path, sizeof(sb.header_path), "/boot/luks-root.hdr");
	state_sb_encode(&sb, buf);
	CHECK(buf[8] == STATE_FORMAT_DETACHED && buf[8] == 6);
	CHECK(state_sb_decode(buf, &out) == 0 && out.detached == 1 && strcmp(out.header_path, sb.header_path) == 0);
	sb.detached = 0;
	state_sb_encode(&sb, buf);
	CHECK(buf[8] == STATE_FORMAT_PLAIN && state_sb_decode(buf, &out) == 0 && out.detached == 0 && out.header_path[0] == '/');
	/* the forward walk (--decrypt of a header on the device, --reencrypt --header): format 7; a 7 that is no forward walk is refused */
	{
		struct state_sb f = sb;

		f.mode = MODE_DECRYPT;
		f.geo.header_size = 0;
		f.geo.src_offset = 16 * 1024 * 1024;
		state_sb_encode(&f, buf);
		CHECK(buf[8] == STATE_FORMAT && buf[8] == 7);
		CHECK(state_sb_decode(buf, &out) == 0 && out.mode == MODE_DECRYPT && out.geo.src_offset == f.geo.src_offset);
		f.mode = MODE_REENCRYPT;
		f.detached = 1;
		state_sb_encode(&f, buf);
		CHECK(buf[8] == 7 && state_sb_decode(buf, &out) == 0 && out.detached == 1);
		f.geo.src_offset = 0; /* detached, not forward: 6 */
		state_sb_encode(&f, buf);
		CHECK(buf[8] == 6);
		buf[8] = 7;
		reseal(buf);
		CHECK(state_sb_decode(buf, &out) == -EINVAL);
		state_sb_encode(&sb, buf); /* attached, not forward: 5 */
		CHECK(buf[8] == STATE_FORMAT_PLAIN);
		buf[8] = 7;
		reseal(buf);
		CHECK(state_sb_decode(buf, &out) == -EINVAL);
	}
}

static void test_rec(void)
{
	uint8_t uuid[16], other[16], key[32], key2[32], buf[STATE_REC_SIZE], torn[STATE_REC_SIZE];
	struct state_rec rec, out;

	memset(uuid, 1, 16);
	memset(other, 2, 16);
	memset(key, 3, 32);
	memset(key2, 4, 32);
	memset(&rec, 0, sizeof(rec));
	rec.phase = PHASE_CONVERTING;
	rec.seq = 42;
	rec.frontier = 12345 * 4096ull;
	rec.ahead.off = 1;
	rec.ahead.len = 2;
	memset(rec.ahead.sha256, 7, 32);
	rec.behind.off = 3;
	rec.behind.len = 4;
	memset(rec.behind.sha256, 8, 32);
	memset(rec.map_sha256, 9, 32);
	state_rec_encode(&rec, uuid, key, buf);
	CHECK(state_rec_decode(buf, uuid, key, &out) == 0);
	CHECK(memcmp(out.map_sha256, rec.map_sha256, 32) == 0);
	/* the map's digest is under the record's HMAC */
	buf[200] ^= 1;
	CHECK(state_rec_decode(buf, uuid, key, &out) != 0);
	buf[200] ^= 1;
	CHECK(out.seq == 42 && out.frontier == rec.frontier && out.phase == PHASE_CONVERTING);
	CHECK(out.ahead.off == 1 && out.ahead.len == 2 && out.behind.off == 3 && out.behind.len == 4);
	CHECK(memcmp(out.ahead.sha256, rec.ahead.sha256, 32) == 0);
	CHECK(memcmp(out.behind.sha256, rec.behind.sha256, 32) == 0);
	CHECK(state_rec_decode(buf, uuid, NULL, &out) == 0);  /* checksum only */
	CHECK(state_rec_decode(buf, other, key, &out) == -EINVAL); /* another state's record */
	CHECK(state_rec_decode(buf, uuid, key2, &out) == -EBADMSG); /* forged or foreign key */
	/* a torn write: the first k bytes new, the rest old (zeros); bytes from 480 on are zero anyway */
	for (size_t k = 1; k < 480; k += 13) {
		memset(torn, 0, sizeof(torn));
		memcpy(torn, buf, k);
		CHECK(state_rec_decode(torn, uuid, key, &out) == -EINVAL);
	}
	/* a forged record with a correct checksum but no key fails the HMAC */
	rec.frontier = 0;
	state_rec_encode(&rec, uuid, key2, buf);
	CHECK(state_rec_decode(buf, uuid, key, &out) == -EBADMSG);
}

int main(void)
{
	test_sb();
	test_rec();
	{
		struct state_sb plan = { .header_len = 16 << 20, .old_header_len = 2 << 20, .journal_len = 1 << 20 };
		CHECK(state_plan(&plan) == (20 << 20) + STATE_SB_SIZE); /* copy C at the end */
		CHECK(plan.header_off == 1 << 20 && plan.old_header_off == 17 << 20 && plan.journal_off == 19 << 20);
	}
	UNIT_DONE("state");
}
