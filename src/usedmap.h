/*
 * The allocation map of --used-only: which payload bytes the filesystem
 * uses, as sorted extents [start, end) in bytes, each a multiple of
 * USEDMAP_UNIT (rounded outward: a byte counted as used that is free costs
 * work, never data). Taken once, before anything is written (fsmap.c),
 * saved on the state store (docs/format.md, "The allocation map") and
 * loaded from there on every resume. Pure: no I/O here.
 *
 * A map never holds more than USEDMAP_MAX_EXTENTS extents: when a
 * filesystem is more fragmented than that, the smallest gaps are counted
 * as used (coarsened), which keeps memory and the store bounded.
 */
#ifndef LUKSIPC_USEDMAP_H
#define LUKSIPC_USEDMAP_H

#include <stddef.h>
#include <stdint.h>

#define USEDMAP_UNIT 4096
#define USEDMAP_MAX_EXTENTS (1u << 20)
#define USEDMAP_EXTENT_BYTES 16 /* on the store: le64 start, le64 end */

struct usedmap_extent {
	uint64_t start, end;
};

struct usedmap {
	struct usedmap_extent *ext;
	size_t n, cap;
	uint64_t limit;   /* payload size: nothing at or beyond it is used */
	uint64_t min_gap; /* gaps shorter than this are counted as used (coarsening) */
	uint64_t used;    /* bytes in the extents */
};

/* An empty map of a payload of limit bytes. */
void usedmap_init(struct usedmap *m, uint64_t limit);
void usedmap_free(struct usedmap *m);
/*
 * Adds [start, end) (rounded outward to USEDMAP_UNIT, cut at the limit).
 * Calls must come in ascending order of start, overlapping allowed.
 * 0 or -ENOMEM.
 */
int usedmap_add(struct usedmap *m, uint64_t start, uint64_t end);

/* After the last usedmap_add: coarsens the map to at most USEDMAP_MAX_EXTENTS extents. */
void usedmap_finish(struct usedmap *m);

/* Bytes of the encoded map, and the encoding (n extents, 16 bytes each). */
uint64_t usedmap_encoded_len(const struct usedmap *m);
void usedmap_encode(const struct usedmap *m, uint8_t *out);
/*
 * Decodes len bytes (a multiple of 16) of a map of a payload of limit bytes.
 * The extents must be sorted, aligned, non-empty, separated by a gap and
 * below the limit. 0, -EINVAL, -ENOMEM.
 */
int usedmap_decode(struct usedmap *m, const uint8_t *in, uint64_t len, uint64_t limit);

/*
 * Bytes the map counts as used at or above x, for progress: x may only go
 * down between calls with the same cursor (it starts again from the top
 * when it goes up), so a whole run costs O(extents). Zero the cursor first.
 */
struct usedmap_cursor {
	size_t i;       /* extents [i, n) lie wholly at or above x */
	uint64_t above; /* their bytes */
	uint64_t x;
	int started;
};
uint64_t usedmap_used_from(const struct usedmap *m, struct usedmap_cursor *c, uint64_t x);

/* Index of the first extent that ends after x (m->n if none). */
size_t usedmap_first_after(const struct usedmap *m, uint64_t x);
/*
 * The used bytes of [a, f) and of [a + shift, f + shift) (shifted back by
 * shift), merged: what a step must write. Written to runs (at most cap
 * entries, which (f - a) / USEDMAP_UNIT + 2 always suffices for) in
 * ascending order; returns their number. shift 0 gives the used bytes of
 * [a, f) alone.
 */
size_t usedmap_runs(const struct usedmap *m, uint64_t a, uint64_t f, uint64_t shift, struct usedmap_extent *runs, size_t cap);
/*
 * The highest used bytes below f: [max(s, e - max), e) of the highest
 * extent [s, e) that starts below f, e cut at f. 0 and *ret empty when
 * nothing below f is used, else 1.
 */
int usedmap_top_below(const struct usedmap *m, uint64_t f, uint64_t max, struct usedmap_extent *ret);

#endif
