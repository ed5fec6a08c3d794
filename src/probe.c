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
		blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
		blkid_probe_enable_partitions(pr, 1);
		r = blkid_do_safeprobe(pr);
	}
	if (r == -2) {
		ret->ambiguous = 1;
		r = 0;
	} else if (r == 0) {
		lookup(pr, "TYPE", ret->type, sizeof(ret->type));
		lookup(pr, "USAGE", ret->usage, sizeof(ret->usage));
		lookup(pr, "PTTYPE", ret->pttype, sizeof(ret->pttype));
	} else if (r == 1) {
		r = 0;
	} else {
		r = -EIO;
	}
	blkid_free_probe(pr);
	return r;
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
