/* The --used-only map: building, coarsening, encoding and the step queries against a per-unit model. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "usedmap.h"
#include "unit.h"

#define UNITS 512
#define U USEDMAP_UNIT

static unsigned rnd_state = 12345;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* Builds a map from a per-unit model (in ascending order, with ranges that overlap). */
static void build(struct usedmap *m, const unsigned char *used, uint64_t limit)
{
	usedmap_init(m, limit);
	for (uint64_t u = 0; u < UNITS; u++)
		if (used[u])
			CHECK(usedmap_add(m, u * U + (rnd() % 2 ? 100 : 0), (u + 1) * U - (rnd() % 2 ? 7 : 0)) == 0);
	usedmap_finish(m);
}

static int in_runs(const struct usedmap_extent *r, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++)
		if (x >= r[i].start && x < r[i].end)
			return 1;
	return 0;
}

static void one(void)
{
	unsigned char used[UNITS];
	struct usedmap m, d;
	struct usedmap_extent runs[64 + 2], top;
	uint64_t limit = (uint64_t)UNITS * U - (rnd() % 3) * 512;
	unsigned density = rnd() % 100;
	uint8_t *buf;

	for (int u = 0; u < UNITS; u++)
		used[u] = rnd() % 100 < density;
	used[0] = 1;
	build(&m, used, limit);
	/* extents: sorted, separated, aligned, exactly the model */
	for (size_t i = 0; i < m.n; i++) {
		CHECK(m.ext[i].start % U == 0);
		CHECK(m.ext[i].end % U == 0 || m.ext[i].end == limit);
		CHECK(i == 0 || m.ext[i].start > m.ext[i - 1].end);
	}
	for (uint64_t u = 0; u < UNITS; u++) {
		size_t k = usedmap_first_after(&m, u * U);
		int in = k < m.n && m.ext[k].start <= u * U && u * U < limit;
		CHECK(in == (used[u] && u * U < limit));
	}
	/* used bytes at or above x, against the model: walking down, then again after a jump up */
	{
		struct usedmap_cursor c;

		memset(&c, 0, sizeof(c));
		for (int pass = 0; pass < 2; pass++)
			for (uint64_t x = limit + 1; x-- > 0;) {
				uint64_t want = 0, step = rnd() % 5000 + 1;

				for (uint64_t u = 0; u < UNITS; u++) {
					uint64_t lo = u * U > x ? u * U : x, hi = (u + 1) * U < limit ? (u + 1) * U : limit;

					if (used[u] && hi > lo)
						want += hi - lo;
				}
				CHECK(usedmap_used_from(&m, &c, x) == want);
				if (x == 0)
					break;
				x = x > step ? x - step + 1 : 1;
			}
		CHECK(usedmap_used_from(&m, &c, 0) == m.used);
	}
	/* encode, decode: the same map; a flipped order is refused */
	buf = malloc(usedmap_encoded_len(&m) + 1);
	usedmap_encode(&m, buf);
	CHECK(usedmap_decode(&d, buf, usedmap_encoded_len(&m), limit) == 0);
	CHECK(d.n == m.n && d.used == m.used && memcmp(d.ext, m.ext, m.n * sizeof(*m.ext)) == 0);
	usedmap_free(&d);
	CHECK(usedmap_decode(&d, buf, usedmap_encoded_len(&m), limit - U) == (m.ext[m.n - 1].end > limit - U ? -EINVAL : 0));
	usedmap_free(&d);
	if (m.n >= 2) {
		memcpy(buf, buf + 16, 16);
		CHECK(usedmap_decode(&d, buf, usedmap_encoded_len(&m), limit) == -EINVAL);
	}
	free(buf);
	/* the step queries, for every step of 64 units and shifts of 0, 64 and 96 units */
	for (uint64_t shift = 0; shift <= 96 * U; shift += 32 * U) {
		if (shift == 32 * U)
			continue;
		for (uint64_t a = 0; a < limit; a += 64 * U) {
			uint64_t f = a + 64 * U < limit ? a + 64 * U : limit;
			size_t n = usedmap_runs(&m, a, f, shift, runs, 64 + 2);

			for (uint64_t x = a; x < f; x += 512) {
				uint64_t u = x / U, v = (x + shift) / U;
				int want = (used[u] && x < limit) || (shift && v < UNITS && used[v] && x + shift < limit);
				CHECK(in_runs(runs, n, x) == want);
			}
			for (size_t i = 0; i < n; i++)
				CHECK(runs[i].start < runs[i].end && (i == 0 || runs[i].start > runs[i - 1].end));
		}
	}
	for (uint64_t f = U; f <= limit; f += U) {
		int have = usedmap_top_below(&m, f, 5 * U, &top);
		uint64_t hi = 0;
		int any = 0;

		for (uint64_t u = 0; u * U < f; u++)
			if (used[u]) {
				any = 1;
				hi = (u + 1) * U < f ? (u + 1) * U : f;
			}
		hi = hi > limit ? limit : hi;
		CHECK(have == any);
		if (have) {
			CHECK(top.end == hi);
			CHECK(top.end - top.start <= 5 * U && top.start < top.end);
			for (uint64_t x = top.start; x < top.end; x += U)
				CHECK(used[x / U]);
		}
	}
	usedmap_free(&m);
}

int main(void)
{
	struct usedmap m;

	for (int i = 0; i < 300; i++)
		one();
	/* coarsening: a checkerboard of 3M units ends at most USEDMAP_MAX_EXTENTS extents, covering every used unit */
	usedmap_init(&m, UINT64_C(6) << 32);
	for (uint64_t u = 0; u < 3u << 20; u++)
		if (usedmap_add(&m, 2 * u * U, (2 * u + 1) * U) < 0)
			break;
	usedmap_finish(&m);
	CHECK(m.n <= USEDMAP_MAX_EXTENTS && m.n > 0);
	CHECK(m.ext[0].start == 0 && m.ext[m.n - 1].end >= (2 * (uint64_t)(3u << 20) - 1) * U);
	CHECK(m.used >= (uint64_t)(3u << 20) * U);
	usedmap_free(&m);
	UNIT_DONE("usedmap");
}
