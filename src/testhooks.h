/*
 * Test hooks: the I/O trace, fault injection and delays that the host and
 * QEMU tests drive through LUKSIPC_TEST_* environment variables
 * (docs/interface.md). They exist only in a test build, compiled with
 * -DLUKSIPC_TEST_HOOKS (`make build/test/luksipc`, `make static-test`).
 * Without that define every hook below is an empty inline function, the
 * shipped binary holds no code that reads those variables, and the I/O
 * seam in dev.c stays a plain wrapper.
 */
#ifndef LUKSIPC_TESTHOOKS_H
#define LUKSIPC_TESTHOOKS_H

#include <stddef.h>
#include <stdint.h>

enum test_op { TEST_OP_READ, TEST_OP_WRITE, TEST_OP_FLUSH, TEST_OP_COUNT };
enum test_delay { TEST_DELAY_STEP, TEST_DELAY_HEADER };

#ifdef LUKSIPC_TEST_HOOKS
/* Counts one operation on target; -errno when a fault is due, else 0. */
int test_hook_fault(int target, int op);
/*
 * Records a completed write ('W', with its bytes), an issued flush ('F') or
 * a size change ('S', len 0, off = the new size). Only the converted device
 * and the state store are traced: a key file's bytes never reach the trace.
 */
void test_hook_trace(int target, char op, const void *buf, size_t len, uint64_t off);
/* Sleeps for the milliseconds that the delay's variable asks for, if any. */
void test_hook_delay(enum test_delay which);
/* LUKSIPC_TEST_SYSROOT: the directory that arm and disarm take for "/" when writing system files. */
const char *test_hook_sysroot(void);
/* LUKSIPC_TEST_FAST_PBKDF=1: keyslots that finalize adds use PBKDF2 with 1000 iterations (host tests). */
int test_hook_fast_pbkdf(void);
/* LUKSIPC_TEST_PARTUUID: the PARTUUID the admin notes take for the device (host tests have no partitions); NULL when unset. */
const char *test_hook_partuuid(void);
#else
static inline int test_hook_fault(int target, int op)
{
	(void)target;
	(void)op;
	return 0;
}

static inline void test_hook_trace(int target, char op, const void *buf, size_t len, uint64_t off)
{
	(void)target;
	(void)op;
	(void)buf;
	(void)len;
	(void)off;
}

static inline void test_hook_delay(enum test_delay which)
{
	(void)which;
}

static inline const char *test_hook_sysroot(void)
{
	return "";
}

static inline int test_hook_fast_pbkdf(void)
{
	return 0;
}

static inline const char *test_hook_partuuid(void)
{
	return NULL;
}
#endif

#endif
