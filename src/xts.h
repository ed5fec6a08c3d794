/*
 * Sector encryption compatible with dm-crypt's aes-xts-plain64: each
 * encryption sector of sector_size bytes uses as its tweak the little-endian
 * 64-bit number of the first 512-byte sector it covers, counted from the
 * start of the data segment (LUKS2 never sets iv_large_sectors).
 */
#ifndef LUKSIPC_XTS_H
#define LUKSIPC_XTS_H

#include <stddef.h>
#include <stdint.h>

struct xts;

/* key_len is 32 or 64 bytes. The key is copied into OpenSSL's context. */
int xts_new(struct xts **ret, const uint8_t *key, size_t key_len, uint32_t sector_size, int encrypt);
void xts_free(struct xts *x);
/* A second context with the same key, for another thread. 0 or -errno. */
int xts_dup(struct xts **ret, const struct xts *x);

/*
 * Transforms buf in place; buf holds len bytes (a multiple of sector_size)
 * of the data segment starting at payload offset off (a multiple of
 * sector_size). 0 or -EIO.
 */
int xts_crypt(struct xts *x, uint8_t *buf, size_t len, uint64_t off);

#endif
