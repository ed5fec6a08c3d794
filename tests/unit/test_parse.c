/* Number and size parsing, filesystem superblock parsers, xts tweak layout. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "luksipc.h"
#include "probe.h"
#include "unit.h"
#include "xts.h"

static void test_sizes(void)
{
	uint64_t v;

	CHECK(parse_size("4096", &v) == 0 && v == 4096);
	CHECK(parse_size("16M", &v) == 0 && v == 16 * MIB);
	CHECK(parse_size("2g", &v) == 0 && v == 2048 * MIB);
	CHECK(parse_size("512K", &v) == 0 && v == 512 * KIB);
	CHECK(parse_size("", &v) == -EINVAL);
	CHECK(parse_size("M", &v) == -EINVAL);
	CHECK(parse_size("-1", &v) == -EINVAL);
	CHECK(parse_size("12x", &v) == -EINVAL);
	CHECK(parse_size("99999999999999999999", &v) == -EINVAL);
	CHECK(parse_size("18014398509481984K", &v) == -EINVAL); /* overflows */
	CHECK(parse_u64("0", &v) == 0 && v == 0);
	CHECK(parse_u64("1 ", &v) == -EINVAL);
	CHECK(parse_u64("+1", &v) == -EINVAL);
	CHECK(parse_u64(" 1", &v) == -EINVAL);
	CHECK(parse_u64(" -1", &v) == -EINVAL); /* strtoull would wrap it to 2^64 - 1 */
	CHECK(parse_size(" -4096", &v) == -EINVAL);
	CHECK(parse_u64("", &v) == -EINVAL);
}

static void test_fs(void)
{
	static uint8_t buf[0x10000 + 4096];
	uint64_t size;

	memset(buf, 0, sizeof(buf));
	/* ext4: 64bit, 4 KiB blocks, 2^32 + 5 blocks */
	buf[1024 + 56] = 0x53;
	buf[1024 + 57] = 0xEF;
	put_le32(buf + 1024 + 4, 5);
	put_le32(buf + 1024 + 24, 2);
	put_le32(buf + 1024 + 0x60, 0x80);
	put_le32(buf + 1024 + 0x150, 1);
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "ext4", &size) == 0);
	CHECK(size == ((UINT64_C(1) << 32) + 5) * 4096);
	put_le32(buf + 1024 + 0x60, 0); /* not 64bit: the high word is ignored */
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "ext2", &size) == 0 && size == 5 * 4096);
	buf[1024 + 56] = 0;
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "ext3", &size) == -EINVAL);

	memset(buf, 0, sizeof(buf));
	memcpy(buf, "XFSB", 4);
	buf[6] = 0x10; /* blocksize 4096, big endian */
	buf[15] = 100; /* dblocks 100 */
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "xfs", &size) == 0 && size == 409600);

	memset(buf, 0, sizeof(buf));
	memcpy(buf + 0x10000 + 0x40, "_BHRfS_M", 8);
	put_le64(buf + 0x10000 + 0xc9 + 8, 123 * MIB);
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "btrfs", &size) == 0 && size == 123 * MIB);

	memset(buf, 0, sizeof(buf));
	buf[11] = 0x00;
	buf[12] = 0x02; /* 512 bytes per sector */
	put_le32(buf + 32, 204800);
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "vfat", &size) == 0 && size == 100 * MIB);
	buf[19] = 0x10; /* a 16-bit count wins when set */
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "vfat", &size) == 0 && size == 16 * 512);
	CHECK(probe_parse_fs_size(buf, sizeof(buf), "swap", &size) == -ENOTSUP);
}

/* One 4096-byte XTS unit through OpenSSL directly, with the given 64-bit tweak. */
static void ref_xts(const uint8_t *key, uint8_t *buf, uint64_t tweak)
{
	uint8_t iv[16] = { 0 };
	int outl;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	put_le64(iv, tweak);
	EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), NULL, key, iv);
	EVP_EncryptUpdate(ctx, buf, &outl, buf, 4096);
	EVP_CIPHER_CTX_free(ctx);
}

/* One data unit of len bytes through OpenSSL's own aes-xts, with the given tweak. */
static void ref_unit(const uint8_t *key, size_t key_len, uint8_t *buf, size_t len, uint64_t tweak, int enc)
{
	uint8_t iv[16] = { 0 };
	int outl = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	put_le64(iv, tweak);
	CHECK(EVP_CipherInit_ex(ctx, key_len == 64 ? EVP_aes_256_xts() : EVP_aes_128_xts(), NULL, key, iv, enc) == 1);
	CHECK(EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) == 1 && outl == (int)len);
	EVP_CIPHER_CTX_free(ctx);
}

/*
 * xts_crypt (ECB passes with tweaks computed in C) against OpenSSL's aes-xts
 * one sector at a time: both key sizes, every sector size, a buffer of
 * several chunks plus a part, an offset far from 0 (tweaks with high bits
 * and the GF(2^128) carry), both directions.
 */
static void test_xts_reference(void)
{
	const size_t len = 5 * 64 * 1024 + 3 * 4096;
	uint8_t *orig = malloc(len), *mine = malloc(len), *ref = malloc(len);
	uint8_t key[64];
	const uint32_t sizes[] = { 512, 1024, 2048, 4096 };

	for (size_t i = 0; i < len; i++)
		orig[i] = (uint8_t)(i * 131 + (i >> 9) * 7 + 5);
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 29 + 3);
	for (size_t kl = 32; kl <= 64; kl += 32) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			uint32_t ss = sizes[k];
			uint64_t off = (0x123456789ull * 4096) + ss * 3;
			struct xts *enc = NULL, *dec = NULL;

			CHECK(xts_new(&enc, key, kl, ss, 1) == 0);
			CHECK(xts_new(&dec, key, kl, ss, 0) == 0);
			memcpy(mine, orig, len);
			memcpy(ref, orig, len);
			CHECK(xts_crypt(enc, mine, len, off) == 0);
			for (size_t d = 0; d < len; d += ss)
				ref_unit(key, kl, ref + d, ss, (off + d) / 512, 1);
			CHECK(memcmp(mine, ref, len) == 0);
			CHECK(xts_crypt(dec, mine, len, off) == 0);
			CHECK(memcmp(mine, orig, len) == 0);
			/* OpenSSL's decryption of our ciphertext, too */
			CHECK(xts_crypt(enc, mine, len, off) == 0);
			for (size_t d = 0; d < len; d += ss)
				ref_unit(key, kl, mine + d, ss, (off + d) / 512, 0);
			CHECK(memcmp(mine, orig, len) == 0);
			xts_free(enc);
			xts_free(dec);
		}
	}
	/* equal key halves and odd sector sizes are refused */
	struct xts *bad = NULL;
	uint8_t same[64];
	memset(same, 0x5a, sizeof(same));
	CHECK(xts_new(&bad, same, 64, 512, 1) == -EINVAL);
	CHECK(xts_new(&bad, key, 64, 520, 1) == -EINVAL);
	free(orig);
	free(mine);
	free(ref);
}

/* Round trips, and the tweak counting 512-byte sectors for every sector size. */
static void test_xts(void)
{
	uint8_t key[64], buf[4096], ref[4096], one4k[4096];
	struct xts *enc = NULL, *dec = NULL, *big = NULL;

	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 4096; i++)
		buf[i] = (uint8_t)i;
	memcpy(ref, buf, sizeof(buf));
	CHECK(xts_new(&enc, key, 64, 512, 1) == 0);
	CHECK(xts_new(&dec, key, 64, 512, 0) == 0);
	CHECK(xts_new(&big, key, 64, 4096, 1) == 0);
	CHECK(xts_crypt(enc, buf, 4096, 8 * 512) == 0);
	CHECK(memcmp(buf, ref, 512) != 0);
	CHECK(xts_crypt(dec, buf, 4096, 8 * 512) == 0);
	CHECK(memcmp(buf, ref, sizeof(buf)) == 0);
	/* sector n of a 512-byte run equals a lone sector at offset n*512 */
	uint8_t one[512];
	memcpy(one, ref + 512, 512);
	CHECK(xts_crypt(enc, buf, 4096, 0) == 0);
	CHECK(xts_crypt(enc, one, 512, 512) == 0);
	CHECK(memcmp(one, buf + 512, 512) == 0);
	/* a 4096-byte sector at offset 4096 uses tweak 8 (512-byte units), not 1 */
	memcpy(buf, ref, sizeof(buf));
	CHECK(xts_crypt(big, buf, 4096, 4096) == 0);
	memcpy(one4k, ref, sizeof(one4k));
	ref_xts(key, one4k, 8);
	CHECK(memcmp(one4k, buf, 4096) == 0);
	memcpy(one4k, ref, sizeof(one4k));
	ref_xts(key, one4k, 1); /* iv_large_sectors would do this: must differ */
	CHECK(memcmp(one4k, buf, 4096) != 0);
	CHECK(xts_crypt(enc, one, 512, 1) == -EINVAL); /* misaligned offsets are refused */
	/* a duplicate (one per crypt thread) encrypts exactly like the original */
	struct xts *twin = NULL;
	uint8_t a[4096], b[4096];
	CHECK(xts_dup(&twin, enc) == 0);
	memcpy(a, ref, sizeof(a));
	memcpy(b, ref, sizeof(b));
	CHECK(xts_crypt(enc, a, 4096, 3 * 4096) == 0);
	CHECK(xts_crypt(twin, b, 4096, 3 * 4096) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0 && memcmp(a, ref, sizeof(a)) != 0);
	/* and so does each half of a buffer split between two contexts */
	memcpy(b, ref, sizeof(b));
	CHECK(xts_crypt(twin, b, 2048, 3 * 4096) == 0);
	CHECK(xts_crypt(enc, b + 2048, 2048, 3 * 4096 + 2048) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	xts_free(twin);
	xts_free(enc);
	xts_free(dec);
	xts_free(big);
}

/* path_split: the directory a file is created in, and its name */
static void test_path_split(void)
{
	char d[64];

	CHECK(strcmp(path_split("/boot/luks.hdr", d, sizeof(d)), "luks.hdr") == 0 && strcmp(d, "/boot") == 0);
	CHECK(strcmp(path_split("/hdr", d, sizeof(d)), "hdr") == 0 && strcmp(d, "/") == 0);
	CHECK(strcmp(path_split("hdr", d, sizeof(d)), "hdr") == 0 && strcmp(d, ".") == 0);
	CHECK(strcmp(path_split("a/b/c", d, sizeof(d)), "c") == 0 && strcmp(d, "a/b") == 0);
	CHECK(strcmp(path_split("dir/", d, sizeof(d)), "") == 0 && strcmp(d, "dir") == 0);
}

int main(void)
{
	test_path_split();
	test_sizes();
	test_fs();
	test_xts();
	test_xts_reference();
	UNIT_DONE("parse");
}
