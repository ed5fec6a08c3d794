/*
 * LD_PRELOAD shim for the crash tier: every fdatasync and fsync sleeps
 * SLOWSYNC_MS milliseconds (default 20) first. A traced run under it has a
 * slow committer and a fast writer, so the writer runs up to the write
 * limit (geometry_write_limit) and the trace holds the interleavings that
 * limit must order; with instant flushes the committer is always ahead and
 * a writer that ignored the limit would leave the same trace.
 * Build: cc -shared -fPIC -o slowsync.so slowsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static struct timespec delay;

__attribute__((constructor)) static void slowsync_init(void)
{
	const char *s = getenv("SLOWSYNC_MS");
	long ms = s ? atol(s) : 20;

	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	delay.tv_sec = ms / 1000;
	delay.tv_nsec = ms % 1000 * 1000000L;
}

int fdatasync(int fd)
{
	nanosleep(&delay, NULL);
	return real_fdatasync(fd);
}

int fsync(int fd)
{
	nanosleep(&delay, NULL);
	return real_fsync(fd);
}
