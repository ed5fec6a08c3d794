/*
 * The I/O seam. Every byte luksipc writes to the converted device and the
 * state store, and every byte it reads of them itself, goes through these
 * functions, so they are the one place where a test build records writes
 * and flushes and injects faults (testhooks.h; in the shipped build the
 * hooks are empty). Three libraries read the device on their own, and only
 * read: libblkid probes signatures on the open descriptor
 * (probe_signatures), libcryptsetup loads the current LUKS header by
 * path (luks_device_data_offset) and libext2fs reads the bitmaps of
 * --used-only by path (fsmap.c), before anything is written; those reads
 * are neither traced nor faulted. Key files are read directly too (keys.c); a generated key file
 * is written through here.
 */
#ifndef LUKSIPC_DEV_H
#define LUKSIPC_DEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What a struct dev is, for the test hooks: only the device, the store and a detached header are traced. */
enum dev_target {
	TARGET_DEVICE = 0,
	TARGET_STATE = 1,
	TARGET_KEYFILE = 2,
	TARGET_HEADER = 3, /* convert --header: the detached header's file or partition (traced, not faulted) */
	TARGET_OTHER = 4, /* neither traced nor faulted: a --readdev mapping, a memory file */
};

#define DEV_RDWR 1u
#define DEV_EXCL 2u   /* O_EXCL on block devices: fails with -EBUSY if in use */
#define DEV_CREATE 4u /* create a regular file (O_EXCL), mode 0600 */

#define DEV_DIRECT 8u /* also open an O_DIRECT descriptor for aligned transfers */
#define DEV_ALIGN 4096 /* buffer, offset and length alignment for O_DIRECT */

struct dev {
	int fd;
	int dfd; /* O_DIRECT descriptor, or -1 when not asked for or not supported */
	int target;
	int is_block;
	char path[4096];
	uint64_t size;
	dev_t rdev;   /* block devices */
	dev_t st_dev; /* regular files: containing filesystem and inode */
	ino_t ino;
};

/* Opens path; on success fills *ret (fd >= 0). Returns 0 or -errno. */
int dev_open(struct dev *ret, const char *path, int target, unsigned flags);
void dev_close(struct dev *d);

/* Full transfers: retry EINTR and short transfers. 0 or -errno. */
int dev_pread_full(struct dev *d, void *buf, size_t len, uint64_t off);
int dev_pwrite_full(struct dev *d, const void *buf, size_t len, uint64_t off);
/* Makes every completed write to d durable (fdatasync). 0 or -errno. */
int dev_flush(struct dev *d);
/* Regular files only: set the file size (zero-filled growth). 0 or -errno. */
int dev_set_size(struct dev *d, uint64_t size);

/*
 * A buffer for large transfers, freed with free(): aligned for O_DIRECT, and
 * from 2 MiB on aligned to 2 MiB with transparent huge pages asked for, so
 * that touching it and pinning it for each direct transfer costs a page
 * table entry per 2 MiB instead of per 4 KiB. NULL when out of memory.
 */
void *dev_buf_alloc(size_t len);

#endif
