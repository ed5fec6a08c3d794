/*
 * What is on a device, and who else is using it: libblkid for signatures,
 * superblock parsing for filesystem sizes, mountinfo and sysfs for use.
 * Nothing here writes.
 */
#ifndef LUKSIPC_PROBE_H
#define LUKSIPC_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "dev.h"

struct probe_result {
	char type[32];  /* filesystem or other signature type, "" if none */
	char pttype[16]; /* partition table type, "" if none */
	int ambiguous;  /* more than one signature */
};

/* Probes signatures on d. 0 or -errno. */
int probe_signatures(struct dev *d, struct probe_result *ret);

/*
 * Reads the size in bytes of the filesystem of the given type from its
 * superblock (ext2/3/4, xfs, btrfs, vfat). 0, -ENOTSUP (type not known),
 * -EINVAL (superblock not valid), -errno.
 */
int probe_fs_size(struct dev *d, const char *type, uint64_t *ret);

/*
 * Pure superblock parsers over the first 128 KiB of a device, unit-tested.
 * 0 or -EINVAL.
 */
int probe_parse_fs_size(const uint8_t *buf, size_t len, const char *type, uint64_t *ret);

/*
 * Tells whether d is in use: mounted, held by another kernel device, or
 * (regular files) backing a loop device. Writes a description such as
 * "mounted on /boot" to why. 1 in use, 0 not, -errno.
 */
int probe_in_use(const struct dev *d, char *why, size_t len);

/* 1 if a and b are the same storage or overlap (partition of a disk), else 0. */
int probe_overlap(const struct dev *a, const struct dev *b);

/*
 * 1 if the block device upper (a device-mapper mapping) sits directly on
 * lower: lower is one of its slaves, or, for an image file, the loop device
 * attached to it is. Else 0.
 */
int probe_holds(const struct dev *upper, const struct dev *lower);

/* The partition's own UUID (GPT, or the MBR disk id and number) of the block device at path, as
 * PARTUUID= names it: 0, -ENOENT when it is no partition, -errno. */
int probe_part_uuid(const char *path, char *out, size_t len);

/* 0 and the UUID if d starts with a LUKS header, -ENOENT if not, -errno. */
int probe_luks_uuid(struct dev *d, char uuid[41]);

/* Reads len bytes at off of a view of a device (plaintext, or decrypted on the fly). 0 or -errno. */
typedef int (*probe_read_fn)(void *ctx, void *buf, size_t len, uint64_t off);

/*
 * Checks the copies that a filesystem of the given type spreads over the
 * device (ext2/3/4 backup superblocks, XFS allocation group headers, btrfs
 * mirror superblocks, the second FAT) against its primary, as far as they
 * lie within size. 1 and a description in why when one is missing or
 * differs: a sign of a conversion that moved data over it. 0 when all
 * match or the type keeps none. -errno on a read error.
 */
int probe_fs_copies(probe_read_fn rd, void *ctx, uint64_t size, const char *type, char *why, size_t len);

/* 1 if the byte histogram of buf (at least 1 KiB) is that of random data, as ciphertext is. */
int probe_random_looking(const uint8_t *buf, size_t len);

#endif
