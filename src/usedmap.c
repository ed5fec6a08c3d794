/* The allocation map of --used-only: building, encoding, queries (usedmap.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "luksipc.h"
#include "usedmap.h"

void usedmap_init(struct usedmap *m, uint64_t limit)
{
	memset(m, 0, sizeof(*m));
	m->limit = limit;
	m->min_gap = 1;
}

void usedmap_free(struct usedmap *m)
{
	free(m->ext);
	m->ext = NULL;
	m->n = m->cap = 0;
	m->used = 0;
}

/* Counts gaps shorter than min_gap as used, merging the extents around them. */
static void merge_gaps(struct usedmap *m)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (k && m->ext[i].start - m->ext[k - 1].end < m->min_gap)
			m->ext[k - 1].end = m->ext[i].end;
		else
			m->ext[k++] = m->ext[i];
	}
	m->n = k;
	m->used = 0;
	for (size_t i = 0; i < m->n; i++)
		m->used += m->ext[i].end - m->ext[i].start;
}

int usedmap_add(struct usedmap *m, uint64_t start, uint64_t end)
{
	struct usedmap_extent *last;

	start = start / USEDMAP_UNIT * USEDMAP_UNIT;
	end = end > UINT64_MAX - USEDMAP_UNIT ? UINT64_MAX / USEDMAP_UNIT * USEDMAP_UNIT
					      : (end + USEDMAP_UNIT - 1) / USEDMAP_UNIT * USEDMAP_UNIT;
	/* cut at the payload's end, which may lie inside a unit: nothing beyond it is read */
	if (end > m->limit)
		end = m->limit;
	if (start >= end)
		return 0;
	last = m->n ? &m->ext[m->n - 1] : NULL;
	if (last && start < last->end + m->min_gap && start >= last->start) {
		if (end > last->end) {
			m->used += end - last->end;
			last->end = end;
		}
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 256;
		struct usedmap_extent *e;

		/* Too many extents: count ever larger gaps as used until half the limit is left. */
		while (m->n >= 2 * (size_t)USEDMAP_MAX_EXTENTS) {
			m->min_gap = m->min_gap < USEDMAP_UNIT ? 2 * USEDMAP_UNIT : 2 * m->min_gap;
			merge_gaps(m);
		}
		if (m->n < m->cap)
			return usedmap_add(m, start, end);
		e = realloc(m->ext, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		m->ext = e;
		m->cap = cap;
	}
	m->ext[m->n].start = start;
	m->ext[m->n].end = end;
	m->n++;
	m->used += end - start;
	return 0;
}

void usedmap_finish(struct usedmap *m)
{
	while (m->n > USEDMAP_MAX_EXTENTS) {
		m->min_gap = m->min_gap < USEDMAP_UNIT ? 2 * USEDMAP_UNIT : 2 * m->min_gap;
		merge_gaps(m);
	}
}

uint64_t usedmap_encoded_len(const struct usedmap *m)
{
	return (uint64_t)m->n * USEDMAP_EXTENT_BYTES;
}

void usedmap_encode(const struct usedmap *m, uint8_t *out)
{
	for (size_t i = 0; i < m->n; i++) {
		put_le64(out + i * USEDMAP_EXTENT_BYTES, m->ext[i].start);
		put_le64(out + i * USEDMAP_EXTENT_BYTES + 8, m->ext[i].end);
	}
}

int usedmap_decode(struct usedmap *m, const uint8_t *in, uint64_t len, uint64_t limit)
{
	uint64_t n = len / USEDMAP_EXTENT_BYTES, prev = 0;

	usedmap_init(m, limit);
	if (len % USEDMAP_EXTENT_BYTES || n > USEDMAP_MAX_EXTENTS)
		return -EINVAL;
	if (n == 0)
		return 0;
	m->ext = malloc(n * sizeof(*m->ext));
	if (!m->ext)
		return -ENOMEM;
	m->cap = n;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t s = get_le64(in + i * USEDMAP_EXTENT_BYTES), e = get_le64(in + i * USEDMAP_EXTENT_BYTES + 8);

		/* aligned, except an end at the limit; ascending, with a gap between extents */
		if (s % USEDMAP_UNIT || (e % USEDMAP_UNIT && e != limit) || s >= e || e > limit || (i && s <= prev)) {
			usedmap_free(m);
			return -EINVAL;
		}
		m->ext[i].start = s;
		m->ext[i].end = e;
		m->used += e - s;
		prev = e;
	}
	m->n = n;
	return 0;
}

uint64_t usedmap_used_from(const struct usedmap *m, struct usedmap_cursor *c, uint64_t x)
{
	if (!c->started || x > c->x) {
		c->i = m->n;
		c->above = 0;
		c->started = 1;
	}
	c->x = x;
	while (c->i > 0 && m->ext[c->i - 1].start >= x) {
		c->i--;
		c->above += m->ext[c->i].end - m->ext[c->i].start;
	}
	return c->above + (c->i > 0 && m->ext[c->i - 1].end > x ? m->ext[c->i - 1].end - x : 0);
}

size_t usedmap_first_after(const struct usedmap *m, uint64_t x)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->ext[mid].end > x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* Appends [s, e) to runs, merging with the last run when they touch. */
static size_t add_run(struct usedmap_extent *runs, size_t n, size_t cap, uint64_t s, uint64_t e)
{
	if (s >= e)
		return n;
	if (n && s <= runs[n - 1].end) {
		if (e > runs[n - 1].end)
			runs[n - 1].end = e;
		return n;
	}
	if (n == cap)
		return n; /* cannot happen with the documented cap */
	runs[n].start = s;
	runs[n].end = e;
	return n + 1;
}

size_t usedmap_runs(const struct usedmap *m, uint64_t a, uint64_t f, uint64_t shift, struct usedmap_extent *runs, size_t cap)
{
	size_t i = usedmap_first_after(m, a);
	size_t j = shift ? usedmap_first_after(m, a + shift) : m->n;
	size_t n = 0;

	/* merge the two sorted lists: extents over [a, f), and over [a + shift, f + shift) moved down by shift */
	for (;;) {
		int have_i = i < m->n && m->ext[i].start < f;
		int have_j = j < m->n && m->ext[j].start < f + shift;
		uint64_t sj = have_j && m->ext[j].start > a + shift ? m->ext[j].start - shift : a;
		uint64_t s, e;

		if (!have_i && !have_j)
			break;
		if (have_i && (!have_j || m->ext[i].start <= sj)) {
			s = m->ext[i].start;
			e = m->ext[i].end;
			i++;
		} else {
			s = sj;
			e = m->ext[j].end - shift;
			j++;
		}
		n = add_run(runs, n, cap, s < a ? a : s, e > f ? f : e);
	}
	return n;
}

int usedmap_top_below(const struct usedmap *m, uint64_t f, uint64_t max, struct usedmap_extent *ret)
{
	/* the first extent starting at or after f, minus one */
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->ext[mid].start >= f)
			hi = mid;
		else
			lo = mid + 1;
	}
	memset(ret, 0, sizeof(*ret));
	if (lo == 0)
		return 0;
	ret->end = m->ext[lo - 1].end < f ? m->ext[lo - 1].end : f;
	ret->start = ret->end - m->ext[lo - 1].start > max ? ret->end - max : m->ext[lo - 1].start;
	return 1;
}
