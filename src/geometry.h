/*
 * Where every byte goes: pure arithmetic, no I/O.
 *
 * The device has N bytes. Payload byte x (0 <= x < P) is read at raw offset
 * src_offset + x and written, encrypted, at raw offset H + x (src_offset is 0
 * for plaintext -> LUKS). The conversion walks backward in steps: the step
 * that ends at the frontier f covers payload [geometry_step_start(f), f).
 * Step boundaries are multiples of S counted from payload offset 0, so only
 * the topmost step may be shorter than S.
 *
 * Safety invariant (checked by geometry_init): S <= H - src_offset. Then a
 * step's destination never overlaps its own source, nor any payload that a
 * later (lower) step still has to read. See docs/format.md.
 *
 * LUKS to LUKS with 0 <= H - src_offset < S (e.g. the same header size) sets
 * journal: a step's output then overlaps its own source, never a lower one,
 * and the engine journals the source (old ciphertext) before writing.
 * Plaintext is never journaled: the journal would put it on the state store.
 *
 * H = 0 (convert --header: the LUKS header lives elsewhere, the payload is
 * encrypted where it lies) sets journal too: every step overwrites exactly
 * its own source. Then the engine journals the step's output (the new
 * ciphertext), a redo log, never the plaintext source.
 *
 * H = 0 with src_offset > 0 (convert --decrypt of a header on the device)
 * sets forward: the payload moves DOWN by src_offset into the header's
 * place, so the walk goes from payload offset 0 upward, step [a, b) read
 * at src_offset + a and written at a. S <= src_offset keeps each output
 * below its own source and every later one; P is N - src_offset rounded
 * down to the sector size. The frontier counts the payload left, P - b, as
 * it does for the backward walk, so progress and status read it alike.
 */
#ifndef LUKSIPC_GEOMETRY_H
#define LUKSIPC_GEOMETRY_H

#include <stdint.h>

struct geometry {
	uint64_t device_size; /* N */
	uint64_t header_size; /* H: the new data offset */
	uint64_t src_offset;  /* where the payload is now (0: plaintext) */
	uint64_t step_size;   /* S */
	uint64_t data_size;   /* P: payload bytes converted */
	uint32_t sector_size; /* step alignment: the larger encryption sector size */
	int journal;          /* output overlaps its own source: journal it */
	int forward;          /* H = 0 < src_offset: the payload moves down, the walk goes up */
};

/*
 * Validates the parameters and fills *ret. P is N - H rounded down to the
 * sector size. H = 0 with src_offset 0: a detached header; H = 0 with
 * src_offset > 0 (a multiple of 4096): forward, S <= src_offset. Returns 0,
 * or -EINVAL (bad alignment, 0 < H < src_offset, S > H > 0 with src_offset
 * 0, or S > src_offset forward), or -ENOSPC (the device is too small for a
 * header and one sector).
 */
int geometry_init(struct geometry *ret, uint64_t n, uint64_t h, uint64_t src_offset,
		  uint64_t s, uint32_t sector_size);

/* Start of the step ending at frontier f, 0 < f <= P. */
uint64_t geometry_step_start(const struct geometry *g, uint64_t f);

/*
 * The output of the step starting at a, [H + a, H + f), may be written only
 * once the durable frontier is at or below the value returned: then every
 * source it overlaps is converted and recorded. With S = H that is the
 * previous step's record; with S = H/m, the record m steps back, so up to m
 * steps can be in flight between a write and its durable record. In
 * journal mode it returns a itself: the step overlaps its own source and
 * cannot be written ahead of its own record (the journal's).
 */
uint64_t geometry_write_limit(const struct geometry *g, uint64_t a);

#endif
