/* The I/O seam: full reads and writes, flushes, and the test hooks. */
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

#define HUGE_ALIGN (2u * 1024 * 1024)

enum { OP_READ, OP_WRITE, OP_FLUSH, OP_COUNT };

struct fault {
	int target, op, err;
	unsigned long nth;
};

static struct {
	int initialised;
	int trace_fd;
	struct fault faults[16];
	int nfaults;
	unsigned long count[3][OP_COUNT];
} hooks = { .trace_fd = -1 };

static int parse_fault(const char *spec, struct fault *f)
{
	static const char *const ops[] = { "read", "write", "flush" };
	char op[32];
	char err[16];
	unsigned long n;

	if (sscanf(spec, "%31[a-z-]:%lu:%15[A-Z]", op, &n, err) != 3 || n == 0)
		return -EINVAL;
	f->target = TARGET_DEVICE;
	f->nth = n;
	const char *o = op;
	if (strncmp(o, "state-", 6) == 0) {
		f->target = TARGET_STATE;
		o += 6;
	}
	f->op = -1;
	for (int i = 0; i < OP_COUNT; i++)
		if (strcmp(o, ops[i]) == 0)
			f->op = i;
	f->err = strcmp(err, "EIO") == 0 ? EIO : strcmp(err, "ENOSPC") == 0 ? ENOSPC : 0;
	return f->op < 0 || f->err == 0 ? -EINVAL : 0;
}

static void hooks_init(void)
{
	const char *trace = getenv("LUKSIPC_TEST_TRACE");
	const char *faults = getenv("LUKSIPC_TEST_FAULT");

	hooks.initialised = 1;
	if (trace && *trace)
		hooks.trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (!faults || !*faults)
		return;
	char *copy = strdup(faults);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok && hooks.nfaults < 16;
	     tok = strtok_r(NULL, ",", &save)) {
		if (parse_fault(tok, &hooks.faults[hooks.nfaults]) == 0)
			hooks.nfaults++;
		else
			log_warn("ignoring malformed LUKSIPC_TEST_FAULT entry '%s'", tok);
	}
	free(copy);
}

/* Counts the operation; returns -errno when a fault is due, else 0. */
static int hook_fault(const struct dev *d, int op)
{
	if (!hooks.initialised)
		hooks_init();
	if (d->target > TARGET_KEYFILE)
		return 0;
	/* Reads may come from the engine's reader thread. */
	unsigned long n = __atomic_add_fetch(&hooks.count[d->target][op], 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < hooks.nfaults; i++) {
		const struct fault *f = &hooks.faults[i];
		if (f->target == d->target && f->op == op && f->nth == n)
			return -f->err;
	}
	return 0;
}

/*
 * Writes are traced when they complete and flushes when they are issued, so
 * the trace never claims a flush made durable a write that was still in
 * flight in another thread (the committer flushes while the main thread
 * writes the next step).
 */
static void hook_trace(const struct dev *d, char op, const void *buf, size_t len, uint64_t off)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	uint8_t rec[16];

	if (!hooks.initialised)
		hooks_init();
	if (hooks.trace_fd < 0)
		return;
	pthread_mutex_lock(&lock);
	memset(rec, 0, sizeof(rec));
	rec[0] = (uint8_t)op;
	rec[1] = (uint8_t)d->target;
	put_le32(rec + 4, (uint32_t)len);
	put_le64(rec + 8, off);
	/* Best effort: a short trace makes the crash test fail loudly. */
	if (write(hooks.trace_fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) ||
	    (len && write(hooks.trace_fd, buf, len) != (ssize_t)len))
		log_warn("cannot write the test trace: %s", strerror(errno));
	pthread_mutex_unlock(&lock);
}

void dev_test_delay(const char *var)
{
	const char *s = getenv(var);
	uint64_t ms;

	if (s && parse_u64(s, &ms) == 0 && ms > 0) {
		struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

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
	if (!hooks.initialised)
		hooks_init();
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
	int r = hook_fault(d, OP_READ);

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
	int r = hook_fault(d, OP_WRITE);

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
	hook_trace(d, 'W', buf, len, off - len);
	return 0;
}

int dev_flush(struct dev *d)
{
	int r = hook_fault(d, OP_FLUSH);

	if (r < 0)
		return r;
	hook_trace(d, 'F', NULL, 0, 0);
	while (fdatasync(d->fd) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int dev_set_size(struct dev *d, uint64_t size)
{
	if (d->is_block)
		return -ENOTSUP;
	hook_trace(d, 'S', NULL, 0, size);
	if (ftruncate(d->fd, (off_t)size) < 0)
		return -errno;
	d->size = size;
	return 0;
}
