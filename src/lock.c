/* flock on the device and the state store; who holds it, from /proc/locks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "luksipc.h"

/* udev takes a short shared lock on a block device while it probes it. */
#define BLOCK_RETRY_MS 2000
#define RETRY_STEP_MS 50

/* The pid holding a lock on inode (dev, ino), from /proc/locks; 0 if none. */
static long holder_pid(dev_t dev, ino_t ino)
{
	char line[256];
	FILE *f = fopen("/proc/locks", "re");
	long pid = 0;

	if (!f)
		return 0;
	while (!pid && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		unsigned long long i;
		long p;

		/* "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; "->" lines are waiters */
		if (strstr(line, "->") ||
		    sscanf(line, "%*d: %*s %*s %*s %ld %x:%x:%llu", &p, &maj, &min, &i) != 4)
			continue;
		if (makedev(maj, min) == dev && (ino_t)i == ino && p > 0)
			pid = p;
	}
	fclose(f);
	return pid;
}

void lock_holder(const char *path, char *ret, size_t len)
{
	char comm_path[64], comm[64] = "";
	struct stat st;
	long pid;
	FILE *f;

	ret[0] = '\0';
	if (stat(path, &st) < 0 || (pid = holder_pid(st.st_dev, st.st_ino)) == 0)
		return;
	snprintf(comm_path, sizeof(comm_path), "/proc/%ld/comm", pid);
	f = fopen(comm_path, "re");
	if (f && fgets(comm, sizeof(comm), f))
		comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
	snprintf(ret, len, " by pid %ld%s%s%s", pid, comm[0] ? " (" : "", comm, comm[0] ? ")" : "");
}

int lock_dev(const struct dev *d, const char *what)
{
	char who[128];
	int waited = 0;

	while (flock(d->fd, LOCK_EX | LOCK_NB) < 0) {
		struct timespec ts = { 0, RETRY_STEP_MS * 1000000L };

		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			log_error("cannot lock %s '%s': %s", what, d->path, strerror(errno));
			return E_REFUSED;
		}
		if (!d->is_block || waited >= BLOCK_RETRY_MS) {
			lock_holder(d->path, who, sizeof(who));
			log_error("%s '%s' is locked%s: another run is using it; wait for it to end, then run again",
				  what, d->path, who[0] ? who : " by another process");
			return E_REFUSED;
		}
		nanosleep(&ts, NULL);
		waited += RETRY_STEP_MS;
	}
	return 0;
}

int lock_loop_backing(const struct dev *d, const char *what)
{
	static int held[4] = { -1, -1, -1, -1 }; /* one per device and store; closed at exit */
	char path[128], file[PATH_MAX], who[128];
	struct stat st;
	FILE *f;
	int fd, n = 0;

	if (!d->is_block)
		return 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file", major(d->rdev), minor(d->rdev));
	f = fopen(path, "re");
	if (!f)
		return 0; /* not a loop device */
	if (!fgets(file, sizeof(file), f))
		file[0] = '\0';
	fclose(f);
	file[strcspn(file, "\n")] = '\0';
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return 0; /* deleted, or not a plain file: nothing else can lock it by name */
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		lock_holder(file, who, sizeof(who));
		log_error("%s '%s' is a loop device of '%s', which is locked%s: another run is using it; wait for it to end, then run again",
			  what, d->path, file, who[0] ? who : " by another process");
		return E_REFUSED;
	}
	while (n < 4 && held[n] >= 0)
		n++;
	if (n < 4)
		held[n] = fd;
	return 0;
}
