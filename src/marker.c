/* The device-side marker: see marker.h and docs/format.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "luksipc.h"
#include "marker.h"

/* 16 bytes that no filesystem leaves by chance at the end of a device. */
static const uint8_t marker_magic[16] = "LUKSIPC-INFLIGHT";
#define MARKER_VERSION 1
#define MARKER_SUM_OFF (MARKER_SIZE - 32)

static void put_field(uint8_t *p, size_t cap, const char *s)
{
	size_t n = strnlen(s, cap - 1);

	memcpy(p, s, n);
}

static void get_field(const uint8_t *p, size_t cap, char *out, size_t out_cap)
{
	size_t n = strnlen((const char *)p, cap - 1);

	if (n >= out_cap)
		n = out_cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

uint64_t marker_offset(uint64_t n)
{
	return n >= 2 * MARKER_SIZE ? n / MARKER_SIZE * MARKER_SIZE - MARKER_SIZE : 0;
}

void marker_encode(const struct state_sb *sb, const char *state_path, uint8_t out[MARKER_SIZE])
{
	memset(out, 0, MARKER_SIZE);
	memcpy(out, marker_magic, 16);
	put_le64(out + 16, MARKER_VERSION);
	memcpy(out + 24, sb->state_uuid, 16);
	put_le64(out + 40, sb->geo.device_size);
	put_le64(out + 48, sb->geo.header_size);
	put_le64(out + 56, sb->created);
	put_field(out + 64, 48, sb->luks_uuid);
	put_field(out + 112, 256, state_path ? state_path : "");
	SHA256(out, MARKER_SUM_OFF, out + MARKER_SUM_OFF);
}

int marker_decode(const uint8_t in[MARKER_SIZE], struct marker *ret)
{
	uint8_t sum[32];

	if (memcmp(in, marker_magic, 16) != 0 || get_le64(in + 16) != MARKER_VERSION)
		return -EINVAL;
	SHA256(in, MARKER_SUM_OFF, sum);
	if (memcmp(sum, in + MARKER_SUM_OFF, 32) != 0)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->state_uuid, in + 24, 16);
	ret->device_size = get_le64(in + 40);
	ret->header_size = get_le64(in + 48);
	ret->created = get_le64(in + 56);
	get_field(in + 64, 48, ret->luks_uuid, sizeof(ret->luks_uuid));
	get_field(in + 112, 256, ret->state_path, sizeof(ret->state_path));
	return 0;
}

int marker_read(struct dev *d, struct marker *ret)
{
	uint64_t off = marker_offset(d->size);
	uint8_t *buf;
	int r;

	if (!off)
		return 0;
	buf = dev_buf_alloc(MARKER_SIZE);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(d, buf, MARKER_SIZE, off);
	if (r == 0)
		r = marker_decode(buf, ret) == 0;
	free(buf);
	return r;
}

int marker_write(struct dev *d, const struct state_sb *sb, const char *state_path)
{
	uint8_t *buf;
	int r;

	if (!sb->marker_off || sb->marker_off != marker_offset(d->size))
		return -EINVAL;
	char *abs = state_path ? realpath(state_path, NULL) : NULL; /* the message of a later refusal names it */

	buf = dev_buf_alloc(MARKER_SIZE);
	if (!buf) {
		free(abs);
		return -ENOMEM;
	}
	marker_encode(sb, abs ? abs : state_path, buf);
	free(abs);
	r = dev_pwrite_full(d, buf, MARKER_SIZE, sb->marker_off);
	free(buf);
	return r < 0 ? r : dev_flush(d);
}
