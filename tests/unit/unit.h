/* A tiny unit-test harness: CHECK records a failure and goes on. */
#ifndef LUKSIPC_UNIT_H
#define LUKSIPC_UNIT_H

#include <stdio.h>

static int unit_failed, unit_checks;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		unit_checks++;                                                      \
		if (!(cond)) {                                                      \
			unit_failed++;                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                   \
	} while (0)

#define UNIT_DONE(name)                                                             \
	do {                                                                        \
		printf("%s %s (%d checks)\n", unit_failed ? "FAIL" : "ok", name, unit_checks); \
		return unit_failed ? 1 : 0;                                         \
	} while (0)

#endif
