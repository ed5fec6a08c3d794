/* Signatures, filesystem sizes, and "is anybody using this device". */
#define _GNU_SOURCE
#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "luksipc.h"
#include "probe.h"

static void lookup(blkid_probe pr, const char *name, char *out, size_t len)
{
	const char *v = NULL;

	out[0] = '\0';
	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		snprintf(out, len, "%s", v);
}

int probe_signatures(struct dev *d, struct probe_result *ret)
{
	blkid_probe pr = blkid_new_probe();
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!pr)
		return -ENOMEM;
	r = blkid_probe_set_device(pr, d->fd, 0, 0);
	if (r == 0) {
		blkid_probe_enable_superblocks(pr, 1);
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
		blkid_probe_enable_partitions(pr, 1);
		r = blkid_do_safeprobe(pr);
	}
	if (r == -2) {
		ret->ambiguous = 1;
		r = 0;
	} else if (r == 0) {
		lookup(pr, "TYPE", ret->type, sizeof(ret->type));
		lookup(pr, "PTTYPE", ret->pttype, sizeof(ret->pttype));
	} else if (r == 1) {
		r = 0;
	} else {
		r = -EIO;
	}
	blkid_free_probe(pr);
	return r;
}

int probe_part_uuid(const char *path, char *out, size_t len)
{
	blkid_probe pr = blkid_new_probe_from_filename(path);
	int r;

	out[0] = '\0';
	if (!pr)
		return errno ? -errno : -ENOENT;
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	r = blkid_do_safeprobe(pr);
	if (r == 0)
		lookup(pr, "PART_ENTRY_UUID", out, len);
	blkid_free_probe(pr);
	if (r < 0)
		return -EIO;
	return out[0] ? 0 : -ENOENT;
}

static int ext_size(const uint8_t *sb, uint64_t *ret)
{
	uint64_t blocks = get_le32(sb + 4);
	uint32_t log = get_le32(sb + 24);

	if (get_le16(sb + 56) != 0xEF53 || log > 6)
		return -EINVAL;
	if (get_le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
		blocks |= (uint64_t)get_le32(sb + 0x150) << 32;
	*ret = blocks * (UINT64_C(1024) << log);
	return 0;
}

static int xfs_size(const uint8_t *sb, uint64_t *ret)
{
	uint32_t bsize = get_be32(sb + 4);

	if (memcmp(sb, "XFSB", 4) != 0 || bsize < 512 || bsize > 65536)
		return -EINVAL;
	*ret = get_be64(sb + 8) * bsize;
	return 0;
}

static int btrfs_size(const uint8_t *sb, uint64_t *ret)
{
	if (memcmp(sb + 0x40, "_BHRfS_M", 8) != 0)
		return -EINVAL;
	*ret = get_le64(sb + 0xc9 + 8); /* dev_item.total_bytes: this device's share */
	return 0;
}

static int vfat_size(const uint8_t *bs, uint64_t *ret)
{
	uint32_t bps = get_le16(bs + 11);
	uint64_t sectors = get_le16(bs + 19);

	if (sectors == 0)
		sectors = get_le32(bs + 32);
	if (bps < 512 || bps > 4096 || (bps & (bps - 1)) || sectors == 0)
		return -EINVAL;
	*ret = sectors * bps;
	return 0;
}

int probe_parse_fs_size(const uint8_t *buf, size_t len, const char *type, uint64_t *ret)
{
	if (!strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4"))
		return len >= 2048 ? ext_size(buf + 1024, ret) : -EINVAL;
	if (!strcmp(type, "xfs"))
		return len >= 512 ? xfs_size(buf, ret) : -EINVAL;
	if (!strcmp(type, "btrfs"))
		return len >= 0x10000 + 4096 ? btrfs_size(buf + 0x10000, ret) : -EINVAL;
	if (!strcmp(type, "vfat"))
		return len >= 512 ? vfat_size(buf, ret) : -EINVAL;
	return -ENOTSUP;
}

int probe_fs_size(struct dev *d, const char *type, uint64_t *ret)
{
	size_t len = 128 * 1024;
	uint8_t *buf;
	int r;

	if (d->size < len)
		len = (size_t)d->size;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(d, buf, len, 0);
	if (r == 0)
		r = probe_parse_fs_size(buf, len, type, ret);
	free(buf);
	return r;
}

static int mounted_on(dev_t rdev, char *why, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	unsigned maj, min;
	char mnt[2048];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &maj, &min, mnt) == 3 &&
		    makedev(maj, min) == rdev) {
			snprintf(why, len, "mounted on %s", mnt);
			found = 1;
		}
	fclose(f);
	return found;
}

static int held_by(dev_t rdev, char *why, size_t len)
{
	char path[128];
	struct dirent *e;
	DIR *dir;
	int found = 0;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(rdev), minor(rdev));
	dir = opendir(path);
	if (!dir)
		return 0;
	while (!found && (e = readdir(dir)))
		if (e->d_name[0] != '.') {
			snprintf(why, len, "held by /dev/%s", e->d_name);
			found = 1;
		}
	closedir(dir);
	return found;
}

static int read_sysfs_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int ok = f && fgets(buf, (int)len, f);

	if (f)
		fclose(f);
	if (!ok)
		return -ENOENT;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int loop_backed(const struct dev *d, char *why, size_t len)
{
	char real[PATH_MAX], path[300], backing[PATH_MAX];
	struct dirent *e;
	DIR *dir = opendir("/sys/block");
	int found = 0;

	if (!dir || !realpath(d->path, real)) {
		if (dir)
			closedir(dir);
		return 0;
	}
	while (!found && (e = readdir(dir))) {
		if (strncmp(e->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", e->d_name);
		if (read_sysfs_line(path, backing, sizeof(backing)) == 0 && strcmp(backing, real) == 0) {
			snprintf(why, len, "attached to /dev/%s", e->d_name);
			found = 1;
		}
	}
	closedir(dir);
	return found;
}

int probe_in_use(const struct dev *d, char *why, size_t len)
{
	if (!d->is_block)
		return loop_backed(d, why, len);
	return mounted_on(d->rdev, why, len) || held_by(d->rdev, why, len);
}

/* The whole disk and byte range of a block device, from sysfs. */
static void block_extent(dev_t rdev, dev_t *disk, uint64_t *start, uint64_t *size)
{
	char path[128], buf[64], link[PATH_MAX], dpath[PATH_MAX + 16];
	unsigned maj, min;
	ssize_t n;

	*disk = rdev;
	*start = 0;
	*size = UINT64_MAX;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", major(rdev), minor(rdev));
	if (read_sysfs_line(path, buf, sizeof(buf)) == 0)
		*size = strtoull(buf, NULL, 10) * 512;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/start", major(rdev), minor(rdev));
	if (read_sysfs_line(path, buf, sizeof(buf)) < 0)
		return; /* not a partition */
	*start = strtoull(buf, NULL, 10) * 512;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(rdev), minor(rdev));
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = '\0';
	*strrchr(link, '/') = '\0';
	/* link ends in .../block/<disk>/<partition>: the disk is the parent */
	snprintf(dpath, sizeof(dpath), "/sys/block/%s/dev", strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
	if (read_sysfs_line(dpath, buf, sizeof(buf)) == 0 && sscanf(buf, "%u:%u", &maj, &min) == 2)
		*disk = makedev(maj, min);
}

int probe_overlap(const struct dev *a, const struct dev *b)
{
	dev_t da, db;
	uint64_t sa, la, sb, lb;

	if (!a->is_block && !b->is_block)
		return a->st_dev == b->st_dev && a->ino == b->ino;
	if (a->is_block != b->is_block)
		return 0;
	if (a->rdev == b->rdev)
		return 1;
	block_extent(a->rdev, &da, &sa, &la);
	block_extent(b->rdev, &db, &sb, &lb);
	if (da != db)
		return 0;
	return sa < sb + lb && sb < sa + la;
}

/* Is the slave named name (in /sys/block) lower itself, or its loop device? */
static int slave_is(const char *name, const struct dev *lower)
{
	char path[300], buf[PATH_MAX], real[PATH_MAX];
	unsigned maj, min;

	if (lower->is_block) {
		snprintf(path, sizeof(path), "/sys/class/block/%s/dev", name);
		return read_sysfs_line(path, buf, sizeof(buf)) == 0 && sscanf(buf, "%u:%u", &maj, &min) == 2 &&
		       makedev(maj, min) == lower->rdev;
	}
	snprintf(path, sizeof(path), "/sys/class/block/%s/loop/backing_file", name);
	return read_sysfs_line(path, buf, sizeof(buf)) == 0 && realpath(lower->path, real) && strcmp(buf, real) == 0;
}

int probe_holds(const struct dev *upper, const struct dev *lower)
{
	char path[128];
	struct dirent *e;
	DIR *dir;
	int found = 0;

	if (!upper->is_block)
		return 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/slaves", major(upper->rdev), minor(upper->rdev));
	dir = opendir(path);
	if (!dir)
		return 0;
	while (!found && (e = readdir(dir)))
		found = e->d_name[0] != '.' && slave_is(e->d_name, lower);
	closedir(dir);
	return found;
}

int probe_luks_uuid(struct dev *d, char uuid[41])
{
	static const uint8_t magic[6] = { 'L', 'U', 'K', 'S', 0xba, 0xbe };
	uint8_t hdr[208];
	int r;

	if (d->size < sizeof(hdr))
		return -ENOENT;
	r = dev_pread_full(d, hdr, sizeof(hdr), 0);
	if (r < 0)
		return r;
	if (memcmp(hdr, magic, sizeof(magic)) != 0)
		return -ENOENT;
	memcpy(uuid, hdr + 168, 40);
	uuid[40] = '\0';
	return 0;
}

/*
 * --- Signs of a conversion in progress ---------------------------------
 *
 * A conversion moves the payload backward and leaves the start of the
 * filesystem in place until the very end, so a half-converted device still
 * shows the filesystem's primary superblock. Its copies spread over the
 * device do not survive: the ciphertext written over them no longer matches
 * the primary. Each check below reads what the primary's geometry places
 * there and compares it with the primary.
 */

#define COPY_BUF 4096

/* ext2/3/4: backup superblocks at the start of groups 1, 3^k, 5^k, 7^k (sparse_super), the two of sparse_super2, or every group. */
static int ext_is_backup_group(uint64_t g, uint32_t compat, uint32_t ro_compat, const uint8_t *sb)
{
	if (compat & 0x200) /* sparse_super2 */
		return g == get_le32(sb + 0x24c) || g == get_le32(sb + 0x250);
	if (!(ro_compat & 0x1)) /* no sparse_super: every group */
		return 1;
	for (uint64_t b = 3; b <= 7; b += 2) {
		uint64_t p = 1;
		while (p < g)
			p *= b;
		if (p == g)
			return 1;
	}
	return g == 1;
}

static int ext_copies(probe_read_fn rd, void *ctx, uint64_t size, char *why, size_t len)
{
	uint8_t sb[1024], bk[1024];
	int r = rd(ctx, sb, sizeof(sb), 1024);
	uint64_t blocks, bs, first, bpg, groups;

	if (r < 0)
		return r;
	if (get_le16(sb + 56) != 0xEF53 || get_le32(sb + 24) > 6)
		return 0;
	blocks = get_le32(sb + 4);
	if (get_le32(sb + 0x60) & 0x80)
		blocks |= (uint64_t)get_le32(sb + 0x150) << 32;
	bs = UINT64_C(1024) << get_le32(sb + 24);
	first = get_le32(sb + 20);
	bpg = get_le32(sb + 32);
	if (bpg == 0 || blocks <= first)
		return 0;
	groups = (blocks - first + bpg - 1) / bpg;
	for (uint64_t g = 1; g < groups; g++) {
		uint64_t off = (first + g * bpg) * bs;

		if (!ext_is_backup_group(g, get_le32(sb + 0x5c), get_le32(sb + 0x64), sb) || off + sizeof(bk) > size)
			continue;
		if ((r = rd(ctx, bk, sizeof(bk), off)) < 0)
			return r;
		if (get_le16(bk + 56) != 0xEF53 || memcmp(bk + 0x68, sb + 0x68, 16) != 0 ||
		    get_le32(bk + 24) != get_le32(sb + 24) || get_le32(bk + 32) != bpg) {
			snprintf(why, len, "the ext4 backup superblock of group %llu (byte %llu) is not a copy of the primary",
				 (unsigned long long)g, (unsigned long long)off);
			return 1;
		}
	}
	return 0;
}

/* XFS: every allocation group starts with a superblock copy, then its AGF and AGI. */
static int xfs_copies(probe_read_fn rd, void *ctx, uint64_t size, char *why, size_t len)
{
	uint8_t sb[512], ag[512];
	int r = rd(ctx, sb, sizeof(sb), 0);
	uint64_t bsize, agblocks, agcount, sect;

	if (r < 0)
		return r;
	if (memcmp(sb, "XFSB", 4) != 0)
		return 0;
	bsize = get_be32(sb + 4);
	agblocks = get_be32(sb + 84);
	agcount = get_be32(sb + 88);
	sect = (uint64_t)sb[102] << 8 | sb[103];
	if (bsize < 512 || bsize > 65536 || agblocks == 0 || sect < 512 || sect > 32768)
		return 0;
	for (uint64_t a = 0; a < agcount; a++) {
		uint64_t off = a * agblocks * bsize;
		static const char *const magic[] = { "XFSB", "XAGF", "XAGI" };

		for (uint64_t k = a ? 0 : 1; k < 3; k++) {
			if (off + k * sect + sizeof(ag) > size)
				return 0;
			if ((r = rd(ctx, ag, sizeof(ag), off + k * sect)) < 0)
				return r;
			if (memcmp(ag, magic[k], 4) != 0 || (k == 0 && (memcmp(ag + 32, sb + 32, 16) != 0 || get_be32(ag + 84) != agblocks))) {
				snprintf(why, len, "the XFS %s of allocation group %llu (byte %llu) is not there",
					 k == 0 ? "superblock copy" : k == 1 ? "free space header (AGF)" : "inode header (AGI)",
					 (unsigned long long)a, (unsigned long long)(off + k * sect));
				return 1;
			}
		}
	}
	return 0;
}

/* btrfs: mirror superblocks at 64 MiB and 256 GiB, where the device holds them. */
static int btrfs_copies(probe_read_fn rd, void *ctx, uint64_t size, char *why, size_t len)
{
	static const uint64_t mirrors[] = { UINT64_C(64) << 20, UINT64_C(256) << 30 };
	uint8_t sb[4096], m[4096];
	int r = rd(ctx, sb, sizeof(sb), 0x10000);
	uint64_t total;

	if (r < 0)
		return r;
	if (memcmp(sb + 0x40, "_BHRfS_M", 8) != 0)
		return 0;
	total = get_le64(sb + 0xc9 + 8);
	for (size_t i = 0; i < sizeof(mirrors) / sizeof(mirrors[0]); i++) {
		if (mirrors[i] + sizeof(m) > total || mirrors[i] + sizeof(m) > size)
			continue;
		if ((r = rd(ctx, m, sizeof(m), mirrors[i])) < 0)
			return r;
		if (memcmp(m + 0x40, "_BHRfS_M", 8) != 0 || memcmp(m + 0x20, sb + 0x20, 16) != 0 || get_le64(m + 0x30) != mirrors[i]) {
			snprintf(why, len, "the btrfs mirror superblock at byte %llu is not a copy of the primary", (unsigned long long)mirrors[i]);
			return 1;
		}
	}
	return 0;
}

/* FAT: the second table equals the first (entries 0 and 1, which may carry dirty bits, aside). */
static int fat_copies(probe_read_fn rd, void *ctx, uint64_t size, char *why, size_t len)
{
	uint8_t bs[512], *a = NULL, *b = NULL;
	uint64_t bps, rsv, nfats, fatsz, t1, t2;
	int r = rd(ctx, bs, sizeof(bs), 0);

	if (r < 0)
		return r;
	bps = get_le16(bs + 11);
	rsv = get_le16(bs + 14);
	nfats = bs[16];
	fatsz = get_le16(bs + 22);
	if (fatsz == 0) {
		fatsz = get_le32(bs + 36);
		if (get_le16(bs + 40) & 0x80) /* FAT32 with mirroring off: one active table */
			return 0;
	}
	if (bps < 512 || bps > 4096 || (bps & (bps - 1)) || nfats < 2 || fatsz == 0 || rsv == 0)
		return 0;
	t1 = rsv * bps;
	t2 = t1 + fatsz * bps;
	if (t2 + fatsz * bps > size)
		return 0;
	a = malloc(COPY_BUF);
	b = malloc(COPY_BUF);
	r = a && b ? 0 : -ENOMEM;
	for (uint64_t done = 0; r == 0 && done < fatsz * bps; done += COPY_BUF) {
		size_t n = fatsz * bps - done < COPY_BUF ? (size_t)(fatsz * bps - done) : COPY_BUF;
		size_t skip = done == 0 ? 8 : 0;

		if ((r = rd(ctx, a, n, t1 + done)) < 0 || (r = rd(ctx, b, n, t2 + done)) < 0)
			break;
		if (n > skip && memcmp(a + skip, b + skip, n - skip) != 0) {
			snprintf(why, len, "the second FAT (byte %llu) differs from the first near byte %llu of the table",
				 (unsigned long long)t2, (unsigned long long)done);
			r = 1;
		}
	}
	free(a);
	free(b);
	return r;
}

int probe_fs_copies(probe_read_fn rd, void *ctx, uint64_t size, const char *type, char *why, size_t len)
{
	if (!strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4"))
		return ext_copies(rd, ctx, size, why, len);
	if (!strcmp(type, "xfs"))
		return xfs_copies(rd, ctx, size, why, len);
	if (!strcmp(type, "btrfs"))
		return btrfs_copies(rd, ctx, size, why, len);
	if (!strcmp(type, "vfat"))
		return fat_copies(rd, ctx, size, why, len);
	return 0;
}

int probe_random_looking(const uint8_t *buf, size_t len)
{
	uint32_t count[256] = { 0 };
	double expect = (double)len / 256.0, chi = 0;

	if (len < 1024)
		return 0;
	for (size_t i = 0; i < len; i++)
		count[buf[i]]++;
	for (int i = 0; i < 256; i++)
		chi += ((double)count[i] - expect) * ((double)count[i] - expect) / expect;
	/* 255 degrees of freedom: random data stays below 400 but for 1 in 10^8 */
	return chi < 400.0;
}
