/*
 * The test hooks behind the I/O seam (testhooks.h). The whole file is
 * compiled only with -DLUKSIPC_TEST_HOOKS: the shipped binary never reads a
 * LUKSIPC_TEST_* variable.
 */
#ifdef LUKSIPC_TEST_HOOKS
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"
#include "luksipc.h"
#include "testhooks.h"

struct fault {
	int target, op, err;
	unsigned long nth;
};

static struct {
	int trace_fd;
	struct fault faults[16];
	int nfaults;
	uint64_t delay_ms[2]; /* by enum test_delay */
	unsigned long count[3][TEST_OP_COUNT];
} hooks = { .trace_fd = -1 };

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

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
	for (int i = 0; i < TEST_OP_COUNT; i++)
		if (strcmp(o, ops[i]) == 0)
			f->op = i;
	f->err = strcmp(err, "EIO") == 0 ? EIO : strcmp(err, "ENOSPC") == 0 ? ENOSPC : 0;
	return f->op < 0 || f->err == 0 ? -EINVAL : 0;
}

static void parse_faults(const char *faults)
{
	char *copy = strdup(faults);
	char *save = NULL;

	if (!copy)
		return;
	for (char *tok = strtok_r(copy, ",", &save); tok && hooks.nfaults < 16;
	     tok = strtok_r(NULL, ",", &save)) {
		if (parse_fault(tok, &hooks.faults[hooks.nfaults]) == 0)
			hooks.nfaults++;
		else
			log_warn("ignoring malformed LUKSIPC_TEST_FAULT entry '%s'", tok);
	}
	free(copy);
}

static uint64_t env_ms(const char *var)
{
	const char *s = getenv(var);
	uint64_t ms;

	return s && parse_u64(s, &ms) == 0 ? ms : 0;
}

/* Once per process, from whichever thread comes first. */
static void hooks_init(void)
{
	const char *trace = getenv("LUKSIPC_TEST_TRACE");
	const char *faults = getenv("LUKSIPC_TEST_FAULT");

	if (trace && *trace)
		hooks.trace_fd = open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (faults && *faults)
		parse_faults(faults);
	hooks.delay_ms[TEST_DELAY_STEP] = env_ms("LUKSIPC_TEST_DELAY_MS");
	hooks.delay_ms[TEST_DELAY_HEADER] = env_ms("LUKSIPC_TEST_HEADER_DELAY_MS");
}

int test_hook_fault(int target, int op)
{
	pthread_once(&hooks_once, hooks_init);
	if (target < 0 || target > TARGET_KEYFILE)
		return 0;
	/* Reads may come from the engine's reader thread. */
	unsigned long n = __atomic_add_fetch(&hooks.count[target][op], 1, __ATOMIC_SEQ_CST);
	for (int i = 0; i < hooks.nfaults; i++) {
		const struct fault *f = &hooks.faults[i];
		if (f->target == target && f->op == op && f->nth == n)
			return -f->err;
	}
	return 0;
}

/*
 * Writes are traced when they complete and flushes when they are issued, so
 * the trace never claims a flush made durable a write that was still in
 * flight in another thread (the committer flushes while the main thread
 * writes the next step). Targets other than the device, the state store
 * and a detached header (which holds only what the store's header image
 * holds) are left out on purpose: a generated key file, the --readdev
 * mapping. The trace must never hold key material in the clear.
 */
void test_hook_trace(int target, char op, const void *buf, size_t len, uint64_t off)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	uint8_t rec[16];

	pthread_once(&hooks_once, hooks_init);
	if (hooks.trace_fd < 0 || (target != TARGET_DEVICE && target != TARGET_STATE && target != TARGET_HEADER))
		return;
	pthread_mutex_lock(&lock);
	memset(rec, 0, sizeof(rec));
	rec[0] = (uint8_t)op;
	rec[1] = (uint8_t)target;
	put_le32(rec + 4, (uint32_t)len);
	put_le64(rec + 8, off);
	/* Best effort: a short trace makes the crash test fail loudly. */
	if (write(hooks.trace_fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) ||
	    (len && write(hooks.trace_fd, buf, len) != (ssize_t)len))
		log_warn("cannot write the test trace: %s", strerror(errno));
	pthread_mutex_unlock(&lock);
}

void test_hook_delay(enum test_delay which)
{
	pthread_once(&hooks_once, hooks_init);
	uint64_t ms = hooks.delay_ms[which];
	if (ms > 0) {
		struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

const char *test_hook_sysroot(void)
{
	const char *r = getenv("LUKSIPC_TEST_SYSROOT");

	return r ? r : "";
}

int test_hook_fast_pbkdf(void)
{
	const char *v = getenv("LUKSIPC_TEST_FAST_PBKDF");

	return v && !strcmp(v, "1");
}

const char *test_hook_partuuid(void)
{
	return getenv("LUKSIPC_TEST_PARTUUID");
}
#else
typedef int testhooks_not_compiled; /* ISO C wants a non-empty file */
#endif
