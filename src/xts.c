/*
 * aes-xts-plain64 (IEEE P1619 XTS without ciphertext stealing: sectors are
 * whole blocks) built from two AES-ECB contexts of OpenSSL's EVP interface.
 *
 * Why not EVP's own aes-xts: it takes one data unit (sector) per call, and
 * setting each sector's tweak costs an EVP_CipherInit_ex, about as much as
 * encrypting the 512-byte sector itself (docs/performance.md). Here a whole
 * chunk of sectors is done in three passes: encrypt all the chunk's sector
 * numbers with the tweak key (one ECB call), XOR every block with its tweak
 * (the sector's tweak times alpha^j in GF(2^128)), one ECB call with the
 * data key over the chunk, then the same XOR again. tests/unit/test_parse.c
 * checks it against EVP's aes-xts, sector by sector, in both directions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "luksipc.h"
#include "xts.h"

#define XTS_CHUNK (16 * 1024) /* bytes per pass (stays in L1): a multiple of 4096 */
#define XTS_MAX_SECTORS (XTS_CHUNK / 512)

struct xts {
	EVP_CIPHER_CTX *data;  /* ECB, first half of the key; encrypts or decrypts */
	EVP_CIPHER_CTX *tweak; /* ECB, second half; always encrypts */
	uint8_t *tw;           /* XTS_CHUNK bytes: each block's tweak, wiped on free */
	uint8_t sn[XTS_MAX_SECTORS * 16];
	uint32_t sector_size;
	int encrypt;
};

static EVP_CIPHER_CTX *ecb_ctx(const EVP_CIPHER *cipher, const uint8_t *key, int encrypt)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

	if (c && EVP_CipherInit_ex(c, cipher, NULL, key, NULL, encrypt) == 1 && EVP_CIPHER_CTX_set_padding(c, 0) == 1)
		return c;
	EVP_CIPHER_CTX_free(c);
	return NULL;
}

int xts_new(struct xts **ret, const uint8_t *key, size_t key_len, uint32_t sector_size, int encrypt)
{
	const EVP_CIPHER *cipher = key_len == 64 ? EVP_aes_256_ecb() : key_len == 32 ? EVP_aes_128_ecb() : NULL;
	size_t half = key_len / 2;
	struct xts *x;

	/* Equal halves make XTS weak; OpenSSL's and FIPS dm-crypt refuse them too. */
	if (!cipher || (sector_size != 512 && sector_size != 1024 && sector_size != 2048 && sector_size != 4096) ||
	    memcmp(key, key + half, half) == 0)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->sector_size = sector_size;
	x->encrypt = encrypt;
	x->tw = malloc(XTS_CHUNK);
	x->data = ecb_ctx(cipher, key, encrypt);
	x->tweak = ecb_ctx(cipher, key + half, 1);
	if (!x->tw || !x->data || !x->tweak) {
		xts_free(x);
		return -ENOMEM;
	}
	*ret = x;
	return 0;
}

int xts_dup(struct xts **ret, const struct xts *x)
{
	struct xts *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->sector_size = x->sector_size;
	d->encrypt = x->encrypt;
	d->tw = malloc(XTS_CHUNK);
	d->data = EVP_CIPHER_CTX_new();
	d->tweak = EVP_CIPHER_CTX_new();
	if (!d->tw || !d->data || !d->tweak || EVP_CIPHER_CTX_copy(d->data, x->data) != 1 ||
	    EVP_CIPHER_CTX_copy(d->tweak, x->tweak) != 1) {
		xts_free(d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

void xts_free(struct xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->data); /* cleanses the expanded keys */
	EVP_CIPHER_CTX_free(x->tweak);
	if (x->tw)
		explicit_bzero(x->tw, XTS_CHUNK);
	free(x->tw);
	explicit_bzero(x->sn, sizeof(x->sn));
	free(x);
}

/* Little-endian 64-bit loads and stores that compile to one instruction. */
static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline void st64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

/* 16 bytes as one value (GCC/clang vector extension: one SSE register on x86). */
typedef uint64_t block_t __attribute__((vector_size(16)));

static inline block_t ldb(const uint8_t *p)
{
	block_t v;

	memcpy(&v, p, 16);
	return v;
}

static inline void stb(uint8_t *p, block_t v)
{
	memcpy(p, &v, 16);
}

/* The block holding the little-endian 128-bit number hi:lo. */
static inline block_t mkb(uint64_t lo, uint64_t hi)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (block_t){ lo, hi };
#else
	uint8_t b[16];

	st64(b, lo);
	st64(b + 8, hi);
	return ldb(b);
#endif
}

/* p ^= q over n bytes (a multiple of 16). */
static void xor_blocks(uint8_t *p, const uint8_t *q, size_t n)
{
	for (size_t i = 0; i < n; i += 16)
		stb(p + i, ldb(p + i) ^ ldb(q + i));
}

/* One chunk: n bytes (whole sectors) at payload offset off. */
static int crypt_chunk(struct xts *x, uint8_t *p, size_t n, uint64_t off)
{
	size_t ns = n / x->sector_size, blocks = x->sector_size / 16;
	int outl;

	/* 1. each sector's tweak: its 512-byte sector number, encrypted with the tweak key */
	memset(x->sn, 0, ns * 16);
	for (size_t i = 0; i < ns; i++)
		put_le64(x->sn + 16 * i, (off + i * x->sector_size) / 512);
	if (EVP_EncryptUpdate(x->tweak, x->sn, &outl, x->sn, (int)(ns * 16)) != 1 || outl != (int)(ns * 16))
		return -EIO;
	/* 2. every block's tweak, T * alpha^j, kept in x->tw and XORed in */
	for (size_t i = 0; i < ns; i++) {
		uint64_t lo = ld64(x->sn + 16 * i), hi = ld64(x->sn + 16 * i + 8);
		uint8_t *t = x->tw + i * x->sector_size, *q = p + i * x->sector_size;

		for (size_t j = 0; j < blocks; j++, t += 16, q += 16) {
			uint64_t carry = (uint64_t)((int64_t)hi >> 63) & 0x87;
			block_t tb = mkb(lo, hi);

			stb(t, tb);
			stb(q, ldb(q) ^ tb);
			hi = (hi << 1) | (lo >> 63);
			lo = (lo << 1) ^ carry;
		}
	}
	/* 3. the blocks themselves, then the same tweaks once more */
	if (EVP_CipherUpdate(x->data, p, &outl, p, (int)n) != 1 || outl != (int)n)
		return -EIO;
	xor_blocks(p, x->tw, n);
	return 0;
}

int xts_crypt(struct xts *x, uint8_t *buf, size_t len, uint64_t off)
{
	if (len % x->sector_size || off % x->sector_size)
		return -EINVAL;
	for (size_t done = 0; done < len; done += XTS_CHUNK) {
		size_t n = len - done < XTS_CHUNK ? len - done : XTS_CHUNK;
		int r = crypt_chunk(x, buf + done, n, off + done);

		if (r < 0)
			return r;
	}
	return 0;
}
