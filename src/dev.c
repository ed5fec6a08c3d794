/* The I/O seam: full reads and writes and flushes; the test hooks sit here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"
#include "luksipc.h"
#include "testhooks.h"

#define HUGE_ALIGN (2u * 1024 * 1024)

void *dev_buf_alloc(size_t len)
{
	size_t align = len >= HUGE_ALIGN ? HUGE_ALIGN : DEV_ALIGN;
	void *p;

	if (posix_memalign(&p, align, len ? len : 1) != 0)
		return NULL;
	if (align == HUGE_ALIGN)
		madvise(p, len / HUGE_ALIGN * HUGE_ALIGN, MADV_HUGEPAGE); /* a hint: failure is harmless */
	return p;
}

int dev_open(struct dev *ret, const char *path, int target, unsigned flags)
{
	struct stat st;
	int oflags = O_CLOEXEC | ((flags & DEV_RDWR) ? O_RDWR : O_RDONLY);
	int fd;

	if (strlen(path) >= sizeof(ret->path))
		return -ENAMETOOLONG;
	if (flags & DEV_CREATE)
		fd = open(path, oflags | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	else {
		/* Decide O_EXCL after a stat: it means "not in use" only for block devices. */
		if (stat(path, &st) < 0)
			return -errno;
		if (S_ISBLK(st.st_mode) && (flags & DEV_EXCL))
			oflags |= O_EXCL;
		fd = open(path, oflags);
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		goto fail;
	memset(ret, 0, sizeof(*ret));
	ret->fd = fd;
	ret->dfd = -1;
	ret->target = target;
	snprintf(ret->path, sizeof(ret->path), "%s", path);
	if (S_ISBLK(st.st_mode)) {
		ret->is_block = 1;
		ret->rdev = st.st_rdev;
		if (ioctl(fd, BLKGETSIZE64, &ret->size) < 0)
			goto fail;
	} else if (S_ISREG(st.st_mode)) {
		ret->size = (uint64_t)st.st_size;
		ret->st_dev = st.st_dev;
		ret->ino = st.st_ino;
	} else {
		errno = ENOTBLK;
		goto fail;
	}
	/* No O_EXCL here: the first descriptor holds the claim. EINVAL: tmpfs. */
	if (flags & DEV_DIRECT)
		ret->dfd = open(path, (oflags & ~O_EXCL) | O_DIRECT);
	return 0;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

void dev_close(struct dev *d)
{
	if (d && d->dfd >= 0) {
		close(d->dfd);
		d->dfd = -1;
	}
	if (d && d->fd >= 0) {
		close(d->fd);
		d->fd = -1;
	}
}

/* The descriptor for a transfer: O_DIRECT when everything is aligned. */
static int pick_fd(const struct dev *d, const void *buf, size_t len, uint64_t off)
{
	if (d->dfd >= 0 && ((uintptr_t)buf % DEV_ALIGN | len % DEV_ALIGN | off % DEV_ALIGN) == 0)
		return d->dfd;
	return d->fd;
}

int dev_pread_full(struct dev *d, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	int r = test_hook_fault(d->target, TEST_OP_READ);

	if (r < 0)
		return r;
	while (len > 0) {
		ssize_t n = pread(pick_fd(d, p, len, off), p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* unexpected end of device */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int dev_pwrite_full(struct dev *d, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	int r = test_hook_fault(d->target, TEST_OP_WRITE);

	if (r < 0)
		return r;
	for (size_t left = len; left > 0;) {
		ssize_t n = pwrite(pick_fd(d, p, left, off), p, left, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENOSPC;
		p += n;
		off += (uint64_t)n;
		left -= (size_t)n;
	}
	test_hook_trace(d->target, 'W', buf, len, off - len);
	return 0;
}

int dev_flush(struct dev *d)
{
	int r = test_hook_fault(d->target, TEST_OP_FLUSH);

	if (r < 0)
		return r;
	test_hook_trace(d->target, 'F', NULL, 0, 0);
	while (fdatasync(d->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int dev_set_size(struct dev *d, uint64_t size)
{
	if (d->is_block)
		return -ENOTSUP;
	test_hook_trace(d->target, 'S', NULL, 0, size);
	if (ftruncate(d->fd, (off_t)size) < 0)
		return -errno;
	d->size = size;
	return 0;
}
