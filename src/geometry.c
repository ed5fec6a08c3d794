/* Offsets and step boundaries: see geometry.h for the invariant. */
#include <errno.h>
#include <string.h>

#include "geometry.h"

int geometry_init(struct geometry *ret, uint64_t n, uint64_t h, uint64_t src_offset,
		  uint64_t s, uint32_t sector_size)
{
	struct geometry g;

	if (sector_size != 512 && sector_size != 4096)
		return -EINVAL;
	if (h == 0 && src_offset > 0) { /* --decrypt of an attached header: forward, never journaled */
		if (src_offset % 4096 || src_offset % sector_size || s == 0 || s % sector_size || s > src_offset)
			return -EINVAL;
		if (n < src_offset + sector_size)
			return -ENOSPC;
		memset(&g, 0, sizeof(g));
		g.device_size = n;
		g.src_offset = src_offset;
		g.step_size = s;
		g.sector_size = sector_size;
		g.data_size = (n - src_offset) / sector_size * sector_size;
		g.forward = 1;
		*ret = g;
		return 0;
	}
	/* h == 0: a detached header, plaintext in place (always journaled) */
	if (h % 4096 || h % sector_size || src_offset % 512 || src_offset > h)
		return -EINVAL;
	if (s == 0 || s % sector_size || (src_offset == 0 && h > 0 && s > h))
		return -EINVAL;
	if (n < h + sector_size)
		return -ENOSPC;
	memset(&g, 0, sizeof(g));
	g.device_size = n;
	g.header_size = h;
	g.src_offset = src_offset;
	g.step_size = s;
	g.sector_size = sector_size;
	g.data_size = (n - h) / sector_size * sector_size;
	g.journal = h == 0 || s > h - src_offset;
	*ret = g;
	return 0;
}

uint64_t geometry_step_start(const struct geometry *g, uint64_t f)
{
	if (f == 0)
		return 0;
	return (f - 1) / g->step_size * g->step_size;
}

uint64_t geometry_write_limit(const struct geometry *g, uint64_t a)
{
	/* payload offset whose source lies at the start of this output */
	uint64_t x = g->header_size - g->src_offset + a;

	return x >= g->data_size ? g->data_size : geometry_step_start(g, x + 1);
}
