/*
 * The recovery key finalize shows: systemd-cryptenroll's format (256 random
 * bits as 64 modhex characters in 8 groups of 8), and the check of what the
 * admin types back (case, spaces and dashes do not matter; every character
 * does).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <string.h>

#include "enroll.h"
#include "unit.h"

static int well_formed(const char *k)
{
	if (strlen(k) != ENROLL_RECOVERY_LEN)
		return 0;
	for (int i = 0; i < ENROLL_RECOVERY_LEN; i++)
		if (i % 9 == 8 ? k[i] != '-' : !strchr("cbdefghijklnrtuv", k[i]))
			return 0;
	return 1;
}

int main(void)
{
	char a[ENROLL_RECOVERY_LEN + 1], b[ENROLL_RECOVERY_LEN + 1], typed[200];

	CHECK(enroll_recovery_key(a) == 0);
	CHECK(enroll_recovery_key(b) == 0);
	CHECK(well_formed(a));
	CHECK(well_formed(b));
	CHECK(strcmp(a, b) != 0);

	CHECK(enroll_recovery_matches(a, a, strlen(a)));
	/* without dashes, upper case, spaced in groups */
	{
		size_t o = 0;

		for (const char *p = a; *p; p++)
			if (*p != '-')
				typed[o++] = (char)toupper((unsigned char)*p);
		CHECK(enroll_recovery_matches(a, typed, o));
		o = 0;
		for (const char *p = a; *p; p++)
			typed[o++] = *p == '-' ? ' ' : *p;
		CHECK(enroll_recovery_matches(a, typed, o));
	}
	/* one character short, one extra, one changed, empty */
	CHECK(!enroll_recovery_matches(a, a, strlen(a) - 1));
	snprintf(typed, sizeof(typed), "%sc", a);
	CHECK(!enroll_recovery_matches(a, typed, strlen(typed)));
	snprintf(typed, sizeof(typed), "%s", a);
	typed[10] = typed[10] == 'c' ? 'b' : 'c';
	CHECK(!enroll_recovery_matches(a, typed, strlen(typed)));
	CHECK(!enroll_recovery_matches(a, "", 0));
	CHECK(!enroll_recovery_matches(a, b, strlen(b)));
	UNIT_DONE("enroll");
}
