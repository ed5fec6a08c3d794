/*
 * LUKS to LUKS in place: a new volume key, cipher key size, sector size or
 * LUKS version. The payload is decrypted with the old volume key and
 * encrypted with the new one by the same engine; the old header is backed
 * up to the state store before anything moves, so a resume needs only the
 * same command, even after the old header has been overwritten.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "job.h"
#include "luks.h"
#include "luksipc.h"
#include "probe.h"
#include "reencrypt.h"
#include "secmem.h"
#include "xts.h"

#define MAX_OLD_HEADER (256 * MIB)
#define JOURNAL_STEP (8 * MIB)
#define PROBE_BYTES (1 * MIB)

/* The old key: --old-key-file, else the new key file, else a prompt. */
static int get_old_key(struct job *j)
{
	const struct convert_opts *o = j->o;

	if (o->old_key_file)
		return key_from_file(o->old_key_file, &j->old_key);
	if (o->key_file)
		return key_from_file(o->key_file, &j->old_key);
	return key_prompt("the current LUKS header", 0, &j->old_key);
}

static int unlock_old_image(struct job *j, uint32_t key_bytes, uint64_t len, const char *where)
{
	int r;

	j->old_vk_len = key_bytes;
	j->old_vk = secmem_alloc(key_bytes);
	if (!j->old_vk)
		return -ENOMEM;
	r = luks_unlock_image(j->old_image, len, j->old_key.data, j->old_key.len, j->old_vk, &j->old_vk_len);
	key_free(&j->old_key); /* its last use */
	if (r == -EPERM) {
		log_error("the old key does not open the LUKS header %s; give it with --old-key-file", where);
		return E_KEY;
	}
	if (r < 0) {
		log_error("cannot open the LUKS header %s: %s", where, luks_last_error()[0] ? luks_last_error() : strerror(-r));
		return E_REFUSED;
	}
	return 0;
}

int reencrypt_open_readdev(struct job *j)
{
	const char *map = j->o->readdev;
	char why[512];
	int r = dev_open(&j->readdev, map, TARGET_OTHER, DEV_DIRECT);

	if (r < 0) {
		log_error("cannot open the --readdev mapping '%s': %s", map, strerror(-r));
		return E_REFUSED;
	}
	j->have_readdev = 1;
	if (!probe_holds(&j->readdev, &j->dev)) {
		log_error("'%s' is not a device-mapper mapping of '%s'; open the device with cryptsetup open and give that mapping, or drop --readdev",
			  map, j->o->device);
		return E_REFUSED;
	}
	if (probe_in_use(&j->readdev, why, sizeof(why)) > 0) {
		log_error("mapping '%s' is in use: %s; unmount it first", map, why);
		return E_REFUSED;
	}
	return 0;
}

/* The mapping must cover the payload that is converted. */
static int check_readdev_size(struct job *j)
{
	if (j->have_readdev && j->readdev.size < j->geo.data_size) {
		log_error("mapping '%s' has %llu bytes, less than the %llu to convert; is it a mapping of '%s'?", j->o->readdev,
			  (unsigned long long)j->readdev.size, (unsigned long long)j->geo.data_size, j->o->device);
		return E_REFUSED;
	}
	return 0;
}

int reencrypt_unlock_old(struct job *j)
{
	int r = state_read_old_header(&j->st, &j->old_image);

	if (r == -EBADMSG) {
		log_error("state store '%s' is damaged: its backup of the old LUKS header fails its checksum", j->o->state);
		return E_REFUSED;
	}
	if (r == 0)
		r = check_readdev_size(j);
	/* Through a mapping, only a journal replay needs the old key. */
	if (r == 0 && j->have_readdev && !j->geo.journal)
		return 0;
	if (r == 0)
		r = get_old_key(j);
	return r < 0 ? r : unlock_old_image(j, j->st.sb.old_key_bytes, j->st.sb.old_header_len, "backed up in the state store");
}

/* Reads and describes the current header; refuses what luksipc cannot read. */
static int read_old_header(struct job *j, struct luks_info *info, const char *verb)
{
	const char *dev = j->o->device;
	uint64_t h_old = 0;
	int r = luks_device_data_offset(dev, &h_old);

	if (r < 0 || h_old == 0 || h_old > MAX_OLD_HEADER || h_old >= j->dev.size) {
		log_error("cannot read the LUKS header of '%s'%s; check it with cryptsetup luksDump", dev, r < 0 ? "" : ": implausible data offset");
		return E_REFUSED;
	}
	j->old_image = dev_buf_alloc(h_old);
	if (!j->old_image)
		return -ENOMEM;
	r = dev_pread_full(&j->dev, j->old_image, h_old, 0);
	if (r == 0)
		r = luks_inspect_image(j->old_image, h_old, info);
	if (r < 0)
		return r == -EINVAL ? (log_error("cannot read the LUKS header of '%s'", dev), E_REFUSED) : r;
	if (strcmp(info->cipher, LUKS_CIPHER) || strcmp(info->cipher_mode, LUKS_CIPHER_MODE) || (info->key_bytes != 32 && info->key_bytes != 64) ||
	    info->unsupported || info->data_offset != h_old) {
		log_error("'%s' uses %s-%s with a %u-bit key%s; luksipc %s only " LUKS_CIPHER_SPEC " without integrity or an unfinished reencryption",
			  dev, info->cipher, info->cipher_mode, info->key_bytes * 8, info->unsupported ? " and unsupported features" : "", verb);
		return E_REFUSED;
	}
	return 0;
}

/*
 * --old-header: the current header is detached (data offset 0, a data
 * segment to the device's end); its whole image goes to the state store as
 * the old header backup, *len its length. The device must carry no header.
 */
static int read_old_detached(struct job *j, struct luks_info *info, uint64_t *len)
{
	const char *path = j->o->old_header;
	size_t n = 0;
	int dynamic = 1;
	int r = luks_read_detached(path, &j->old_image, &n, &dynamic);

	if (r == 0)
		r = luks_inspect_image(j->old_image, n, info);
	if (r < 0) {
		log_error("cannot read a LUKS header in '%s' (--old-header): %s", path, luks_last_error()[0] ? luks_last_error() : strerror(-r));
		return E_REFUSED;
	}
	if (strcmp(info->cipher, LUKS_CIPHER) || strcmp(info->cipher_mode, LUKS_CIPHER_MODE) || (info->key_bytes != 32 && info->key_bytes != 64) ||
	    info->unsupported) {
		log_error("the LUKS header in '%s' uses %s-%s with a %u-bit key%s; luksipc re-encrypts only " LUKS_CIPHER_SPEC " without integrity or an unfinished reencryption",
			  path, info->cipher, info->cipher_mode, info->key_bytes * 8, info->unsupported ? " and unsupported features" : "");
		return E_REFUSED;
	}
	if (info->data_offset != 0 || !dynamic) {
		log_error("the LUKS header in '%s' puts the data %s; with --old-header luksipc takes a detached header's data from byte 0 to the end of '%s' only",
			  path, info->data_offset ? "at a data offset" : "in a segment of fixed size", j->o->device);
		return E_REFUSED;
	}
	*len = n;
	return 0;
}

static int plan_reencrypt(struct job *j, const struct luks_info *old)
{
	const struct convert_opts *o = j->o;
	uint64_t h = job_header_size(j);
	uint32_t ss = old->sector_size > o->sector_size ? old->sector_size : o->sector_size;
	uint64_t s = o->step_size;
	char a[32];
	int r;

	if (h < old->data_offset) {
		log_error("the new header (%s) would be smaller than the old one (%s); use --header-size %llu or larger",
			  fmt_size(h, a, sizeof(a)), fmt_size(old->data_offset, a + 16, 16), (unsigned long long)old->data_offset);
		return E_USAGE;
	}
	if (!s)
		s = h - old->data_offset >= MIB ? h - old->data_offset : JOURNAL_STEP;
	if (s > JOB_STEP_MAX)
		s = JOB_STEP_MAX;
	s = s / ss * ss;
	r = geometry_init(&j->geo, j->dev.size, h, old->data_offset, s, ss);
	if (r == -ENOSPC) {
		log_error("device '%s' is too small for a %s LUKS header", o->device, fmt_size(h, a, sizeof(a)));
		return E_REFUSED;
	}
	if (r < 0) {
		log_error("header size %llu and step size %llu do not fit sector size %u", (unsigned long long)h, (unsigned long long)s, ss);
		return E_USAGE;
	}
	if (o->sector_size > 512 && (j->dev.size - h) % o->sector_size) {
		log_error("device '%s' leaves no whole number of %u-byte sectors after the header; use --sector-size 512", o->device, o->sector_size);
		return E_REFUSED;
	}
	return 0;
}

/* The plaintext view of a LUKS device: its payload, decrypted with the old key as it is read. */
struct old_view {
	struct dev *dev;
	uint64_t base; /* the old data offset */
	uint32_t ss;
	struct xts *dec;
};

static int read_old_view(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct old_view *v = ctx;
	uint64_t a = off / v->ss * v->ss;
	uint64_t e = (off + len + v->ss - 1) / v->ss * v->ss;
	uint8_t *tmp = malloc(e - a);
	int r = tmp ? 0 : -ENOMEM;

	if (r == 0)
		r = dev_pread_full(v->dev, tmp, e - a, v->base + a);
	if (r == 0)
		r = xts_crypt(v->dec, tmp, e - a, a);
	if (r == 0)
		memcpy(buf, tmp + (off - a), len);
	if (tmp)
		explicit_bzero(tmp, e - a);
	free(tmp);
	return r;
}

static int read_mapping(void *ctx, void *buf, size_t len, uint64_t off)
{
	return dev_pread_full(ctx, buf, len, off);
}

#define SAMPLES 16
#define SAMPLE_SPAN (1 * MIB)

/*
 * 1 if every sampled 4 KiB of the top 1 MiB of the filesystem (or of the
 * payload) reads as random data. A run that re-encrypted from the top leaves
 * there data of the new key, which the old key decrypts to noise; a
 * filesystem rarely has only incompressible data in its last megabyte.
 */
static int top_is_noise(probe_read_fn rd, void *ctx, uint64_t end)
{
	uint8_t *buf = malloc(4096);
	int noise = 0, r = buf ? 0 : -ENOMEM;

	end = end / 4096 * 4096;
	for (int i = 0; r == 0 && i < SAMPLES && end >= SAMPLE_SPAN; i++) {
		r = rd(ctx, buf, 4096, end - SAMPLE_SPAN + (uint64_t)i * (SAMPLE_SPAN / SAMPLES));
		noise += r == 0 && probe_random_looking(buf, 4096);
	}
	if (buf)
		explicit_bzero(buf, 4096);
	free(buf);
	return r < 0 ? r : noise == SAMPLES;
}

/* A fresh start must not meet a device that a run with a lost state has partly re-encrypted. */
static int check_half_reencrypted(struct job *j, probe_read_fn rd, void *ctx, uint64_t size, const struct state_sb *sb)
{
	uint64_t end = sb->fs_size && sb->fs_size <= j->geo.data_size ? sb->fs_size : j->geo.data_size;
	char extra[160] = "";
	int r = top_is_noise(rd, ctx, end);

	if (r < 0) {
		log_error("cannot read device '%s' to check it for a conversion in progress: %s", j->o->device, strerror(-r));
		return r;
	}
	if (r)
		snprintf(extra, sizeof(extra), "the last MiB of its filesystem (below byte %llu) decrypts to random data, as data a run already converted does",
			 (unsigned long long)end);
	return job_check_half_converted(j, rd, ctx, size, sb->fs_type, extra);
}

/* The plaintext filesystem, decrypted in memory, must fit the new data area. */
static int check_plaintext(struct job *j, const uint8_t *vk, size_t vk_len, const struct luks_info *old, struct state_sb *sb)
{
	uint64_t plain_size = (j->dev.size - old->data_offset) / old->sector_size * old->sector_size;
	uint64_t len = plain_size < PROBE_BYTES ? plain_size : PROBE_BYTES;
	uint8_t *buf = malloc(len);
	struct xts *dec = NULL;
	struct dev plain = { .fd = -1, .dfd = -1 };
	int fd = memfd_create("luksipc-plain", MFD_CLOEXEC);
	int r = buf && fd >= 0 ? 0 : -ENOMEM;

	if (r == 0)
		r = dev_pread_full(&j->dev, buf, len, old->data_offset);
	if (r == 0)
		r = xts_new(&dec, vk, vk_len, old->sector_size, 0);
	if (r == 0)
		r = xts_crypt(dec, buf, len, 0);
	if (r == 0 && (ftruncate(fd, (off_t)plain_size) < 0 || pwrite(fd, buf, len, 0) != (ssize_t)len))
		r = -errno;
	if (r == 0) {
		plain.fd = fd;
		plain.target = TARGET_OTHER;
		plain.size = plain_size;
		r = job_check_filesystem(j, &plain, j->geo.data_size, sb);
	}
	if (r == 0) {
		struct old_view v = { .dev = &j->dev, .base = old->data_offset, .ss = old->sector_size, .dec = dec };

		r = check_half_reencrypted(j, read_old_view, &v, plain_size, sb);
	}
	if (buf)
		explicit_bzero(buf, len);
	free(buf);
	xts_free(dec);
	if (fd >= 0)
		close(fd);
	return r;
}

int reencrypt_read_device_header(struct job *j, struct luks_info *info, int decrypt)
{
	return read_old_header(j, info, decrypt ? "decrypts" : "re-encrypts");
}

int reencrypt_unlock_device_old(struct job *j, const struct luks_info *old)
{
	int r = get_old_key(j);

	return r < 0 ? r : unlock_old_image(j, old->key_bytes, old->data_offset, "on the device");
}

int reencrypt_check_decrypted(struct job *j, const uint8_t *vk, size_t vk_len, const struct luks_info *hdr, struct state_sb *sb)
{
	return check_plaintext(j, vk, vk_len, hdr, sb);
}

int reencrypt_start(struct job *j)
{
	const struct convert_opts *o = j->o;
	struct luks_info old;
	struct state_sb sb;
	uint64_t old_len = 0;
	int r;

	memset(&sb, 0, sizeof(sb));
	if (o->old_header)
		r = read_old_detached(j, &old, &old_len);
	else if ((r = read_old_header(j, &old, "re-encrypts")) == 0)
		old_len = old.data_offset;
	if (r < 0 || (r = plan_reencrypt(j, &old)) < 0)
		return r;
	sb.header_len = j->geo.header_size;
	sb.old_header_len = old_len;
	sb.journal_len = j->geo.journal ? j->geo.step_size : 0;
	if ((r = job_check_state_store(j, state_plan(&sb))) < 0)
		return r;
	if (!o->batch && (r = job_confirm(o->device)) < 0)
		return r;
	if ((r = check_readdev_size(j)) < 0)
		return r;
	/* Through a mapping, only a journal replay needs the old key. */
	if (!j->have_readdev || j->geo.journal) {
		if ((r = get_old_key(j)) < 0 || (r = unlock_old_image(j, old.key_bytes, old_len, o->old_header ? "in --old-header" : "on the device")) < 0)
			return r;
	}
	if (j->have_readdev) {
		r = job_check_filesystem(j, &j->readdev, j->geo.data_size, &sb);
		if (r == 0)
			r = check_half_reencrypted(j, read_mapping, &j->readdev, j->readdev.size, &sb);
	} else {
		r = check_plaintext(j, j->old_vk, j->old_vk_len, &old, &sb);
	}
	if (r < 0)
		return r;
	if ((r = job_get_key(j, 1)) < 0)
		return r;
	if (!o->uuid)
		j->keep_uuid = old.uuid;
	sb.mode = MODE_REENCRYPT;
	sb.geo = j->geo;
	sb.sector_size = o->sector_size;
	sb.luks_version = (uint32_t)o->luks_version;
	sb.old_sector_size = old.sector_size;
	sb.old_key_bytes = old.key_bytes;
	sb.old_luks_version = (uint32_t)old.version;
	snprintf(sb.old_luks_uuid, sizeof(sb.old_luks_uuid), "%s", old.uuid);
	return job_start(j, &sb);
}
