/*
 * The device-side marker (docs/format.md, "The device-side marker"): one
 * 4 KiB block at the top of the device, above the converted payload, that
 * says "a luksipc conversion is in progress here" while the payload moves.
 * It is written and flushed after record 1 and the started mark, before
 * the first write to the payload, and overwritten with ciphertext of zeros
 * after the final header, before the record says done. A fresh start that
 * finds it refuses, so a conversion whose whole state store was lost is
 * never started again over its own output.
 */
#ifndef LUKSIPC_MARKER_H
#define LUKSIPC_MARKER_H

#include <stdint.h>

#include "dev.h"
#include "state.h"

#define MARKER_SIZE 4096

struct marker {
	uint8_t state_uuid[16];
	char luks_uuid[LUKS_UUID_LEN + 1];
	uint64_t device_size, header_size, created;
	char state_path[256];
};

/* Where the marker of an n-byte device lies: its last whole 4 KiB block; 0 if too small. */
uint64_t marker_offset(uint64_t n);

/* Pure encoding, unit-tested. decode: 0, or -EINVAL when in holds no marker. */
void marker_encode(const struct state_sb *sb, const char *state_path, uint8_t out[MARKER_SIZE]);
int marker_decode(const uint8_t in[MARKER_SIZE], struct marker *ret);

/* 1 and *ret when d holds a marker at marker_offset(d->size), 0 when not, -errno. */
int marker_read(struct dev *d, struct marker *ret);
/* Writes sb's marker at sb->marker_off and flushes d. */
int marker_write(struct dev *d, const struct state_sb *sb, const char *state_path);

#endif
