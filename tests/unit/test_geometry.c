/* Geometry: step boundaries and the no-overlap invariant, exhaustively on small sizes. */
#include <errno.h>
#include <stdint.h>

#include "geometry.h"
#include "unit.h"

/* Steps still to do at frontier f, counted independently: boundaries are multiples of S. */
static uint64_t steps_left(const struct geometry *g, uint64_t f)
{
	return f == 0 ? 0 : (f - 1) / g->step_size + 1;
}

/* Walks every step and checks the invariants of geometry.h. */
static void walk(const struct geometry *g)
{
	uint64_t f = g->data_size, covered = 0, steps = 0;

	CHECK(steps_left(g, f) >= 1);
	while (f > 0) {
		uint64_t a = geometry_step_start(g, f);
		uint64_t len = f - a;
		CHECK(a < f);
		CHECK(len <= g->step_size);
		CHECK(a % g->sector_size == 0);
		/* destination [H+a, H+f) does not overlap source [src+a, src+f) */
		if (!g->journal)
			CHECK(g->header_size + a >= g->src_offset + f);
		/* nor any source still to be read, which lies below src+a */
		CHECK(g->header_size + a >= g->src_offset + a);
		/* and stays on the device */
		CHECK(g->header_size + f <= g->device_size);
		CHECK(steps_left(g, f) == steps_left(g, a) + 1);
		/* once the durable frontier is <= the limit, no source the output
		 * overlaps is still needed: every step [x, y) with a source overlapping
		 * [H+a, H+f) lies at or above the limit */
		uint64_t limit = geometry_write_limit(g, a);
		CHECK(g->journal ? limit == a : limit >= f);
		for (uint64_t y = g->data_size; y > 0; y = geometry_step_start(g, y)) {
			uint64_t x = geometry_step_start(g, y);
			int overlaps = g->src_offset + x < g->header_size + f && g->src_offset + y > g->header_size + a;
			if (overlaps && !g->journal)
				CHECK(x >= limit);
		}
		covered += len;
		steps++;
		f = a;
	}
	CHECK(covered == g->data_size);
	CHECK(steps == steps_left(g, g->data_size));
}

/*
 * The forward walk (--decrypt of an attached header): steps [a, b) upward
 * from 0, output at [a, b), source at [src + a, src + b). An output never
 * overlaps its own source nor the source of a later step, only sources of
 * steps already done; the steps cover [0, P) once; output and source stay
 * on the device.
 */
static void walk_forward(const struct geometry *g)
{
	uint64_t a = 0, covered = 0;

	CHECK(g->forward && !g->journal && g->header_size == 0);
	while (a < g->data_size) {
		uint64_t b = a + g->step_size < g->data_size ? a + g->step_size : g->data_size;

		CHECK(a % g->sector_size == 0 && b % g->sector_size == 0);
		CHECK(b <= g->src_offset + a);              /* not its own source */
		CHECK(g->src_offset + b <= g->device_size); /* the source is on the device */
		for (uint64_t x = 0; x < g->data_size; x += g->step_size) {
			uint64_t y = x + g->step_size < g->data_size ? x + g->step_size : g->data_size;
			int overlaps = g->src_offset + x < b && g->src_offset + y > a;

			if (overlaps)
				CHECK(y <= a); /* only a step already recorded */
		}
		covered += b - a;
		a = b;
	}
	CHECK(covered == g->data_size);
}

int main(void)
{
	struct geometry g;

	/* rejected parameters */
	CHECK(geometry_init(&g, 100 << 20, 16 << 20, 0, 32 << 20, 512) == -EINVAL); /* S > H */
	CHECK(geometry_init(&g, 100 << 20, 16 << 20, 0, 0, 512) == -EINVAL);
	CHECK(geometry_init(&g, 100 << 20, 16 << 20, 0, 1000, 512) == -EINVAL);
	CHECK(geometry_init(&g, 100 << 20, 16 << 20, 0, 1 << 20, 1024) == -EINVAL);
	CHECK(geometry_init(&g, 100 << 20, (16 << 20) + 512, 0, 1 << 20, 512) == -EINVAL);
	CHECK(geometry_init(&g, 100 << 20, 16 << 20, 0, 4096 + 512, 4096) == -EINVAL);
	CHECK(geometry_init(&g, 16 << 20, 16 << 20, 0, 1 << 20, 512) == -ENOSPC);
	CHECK(geometry_init(&g, (16 << 20) + 511, 16 << 20, 0, 1 << 20, 512) == -ENOSPC);

	/* P is N - H rounded down to the sector size */
	CHECK(geometry_init(&g, (40 << 20) + 1000, 16 << 20, 0, 16 << 20, 512) == 0);
	CHECK(g.data_size == (24 << 20) + 512);
	CHECK(geometry_init(&g, (40 << 20) + 5000, 16 << 20, 0, 16 << 20, 4096) == 0);
	CHECK(g.data_size == (24 << 20) + 4096);

	/* the topmost step is the short one; boundaries are multiples of S */
	CHECK(geometry_init(&g, (40 << 20) + 4096, 16 << 20, 0, 16 << 20, 512) == 0);
	CHECK(geometry_step_start(&g, g.data_size) == 16 << 20);
	CHECK(geometry_step_start(&g, 16 << 20) == 0);
	CHECK(steps_left(&g, g.data_size) == 2);

	/* exhaustive walks over many small shapes, both directions of sizes */
	for (uint64_t n = 4096 * 3; n < 4096 * 40; n += 512 * 7)
		for (uint64_t h = 4096; h <= 4096 * 4; h += 4096)
			for (uint64_t s = 512; s <= h; s += 512)
				if (geometry_init(&g, n, h, 0, s, 512) == 0)
					walk(&g);
	for (uint64_t n = 4096 * 3; n < 4096 * 64; n += 4096)
		for (uint64_t s = 4096; s <= 8192; s += 4096)
			if (geometry_init(&g, n, 8192, 0, s, 4096) == 0)
				walk(&g);
	/* a source offset (LUKS to LUKS): without a journal S fits in H - src */
	CHECK(geometry_init(&g, 64 << 20, 16 << 20, 2 << 20, 14 << 20, 512) == 0);
	CHECK(!g.journal);
	walk(&g);
	CHECK(geometry_init(&g, 64 << 20, 16 << 20, 2 << 20, 16 << 20, 512) == 0);
	CHECK(g.journal);
	CHECK(geometry_init(&g, 64 << 20, 16 << 20, 16 << 20, 4 << 20, 4096) == 0);
	CHECK(g.journal && g.data_size == 48 << 20);
	CHECK(geometry_init(&g, 64 << 20, 2 << 20, 16 << 20, 1 << 20, 512) == -EINVAL); /* src > H */
	CHECK(geometry_init(&g, 64 << 20, 16 << 20, 0, 16 << 20, 512) == 0 && !g.journal);
	/* a detached header (H = 0): the whole device, every step journaled */
	CHECK(geometry_init(&g, (40 << 20) + 1000, 0, 0, 16 << 20, 512) == 0);
	CHECK(g.journal && g.data_size == (40 << 20) + 512);
	CHECK(geometry_write_limit(&g, 16 << 20) == 16 << 20);
	CHECK(geometry_init(&g, (40 << 20) + 5000, 0, 0, 32 << 20, 4096) == 0); /* S > H = 0 is fine */
	CHECK(g.journal && g.data_size == (40 << 20) + 4096);
	CHECK(geometry_init(&g, 64 << 20, 0, 512, 1 << 20, 512) == -EINVAL); /* src > H */
	CHECK(geometry_init(&g, 511, 0, 0, 512, 512) == -ENOSPC);
	for (uint64_t n = 4096; n < 4096 * 40; n += 512 * 7)
		for (uint64_t s = 512; s <= 4096 * 3; s += 512)
			if (geometry_init(&g, n, 0, 0, s, 512) == 0)
				walk(&g);
	/* forward (H = 0 < src): S at most src, src a multiple of 4096, P = N - src rounded */
	CHECK(geometry_init(&g, (64 << 20) + 1000, 0, 16 << 20, 16 << 20, 512) == 0);
	CHECK(g.forward && !g.journal && g.data_size == (48 << 20) + 512);
	walk_forward(&g);
	CHECK(geometry_init(&g, 64 << 20, 0, 16 << 20, (16 << 20) + 512, 512) == -EINVAL); /* S > src */
	CHECK(geometry_init(&g, 64 << 20, 0, (2 << 20) + 512, 1 << 20, 512) == -EINVAL);   /* src not 4K */
	CHECK(geometry_init(&g, 64 << 20, 0, 2 << 20, 0, 512) == -EINVAL);
	CHECK(geometry_init(&g, 64 << 20, 0, 2 << 20, 2048 + 512, 4096) == -EINVAL);
	CHECK(geometry_init(&g, (2 << 20) + 511, 0, 2 << 20, 1 << 20, 512) == -ENOSPC);
	CHECK(geometry_init(&g, (2 << 20) + 8192 + 100, 0, 2 << 20, 1 << 20, 4096) == 0 && g.data_size == 8192);
	walk_forward(&g);
	for (uint64_t n = 4096 * 2; n < 4096 * 40; n += 512 * 7)
		for (uint64_t src = 4096; src <= 4096 * 4; src += 4096)
			for (uint64_t st = 512; st <= src; st += 512)
				if (geometry_init(&g, n, 0, src, st, 512) == 0)
					walk_forward(&g);
	UNIT_DONE("geometry");
}
