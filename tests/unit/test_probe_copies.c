/* The signs of a conversion in progress: filesystem copies and the noise test, on images in memory. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "luksipc.h"
#include "probe.h"
#include "unit.h"

struct mem {
	uint8_t *p;
	uint64_t size;
};

static int mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off + len > m->size)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* An ext4 superblock (1 KiB blocks, 1024 blocks per group, sparse_super) at off. */
static void ext_sb(uint8_t *p, uint32_t blocks, uint16_t group)
{
	memset(p, 0, 1024);
	put_le32(p + 4, blocks);
	put_le32(p + 20, 1);    /* first data block */
	put_le32(p + 24, 0);    /* 1 KiB blocks */
	put_le32(p + 32, 1024); /* blocks per group */
	put_le16(p + 56, 0xEF53);
	put_le16(p + 0x5a, group);
	put_le32(p + 0x64, 1); /* sparse_super */
	memset(p + 0x68, 0xab, 16);
}

static void test_ext(void)
{
	struct mem m = { calloc(1, 8 << 20), 8 << 20 };
	char why[256];

	ext_sb(m.p + 1024, 8192, 0);
	/* groups 1, 3, 5, 7 hold backups at (1 + g * 1024) KiB */
	for (int g = 1; g < 8; g += 2)
		ext_sb(m.p + (1 + (uint64_t)g * 1024) * 1024, 8192, (uint16_t)g);
	CHECK(probe_fs_copies(mem_read, &m, m.size, "ext4", why, sizeof(why)) == 0);
	/* group 2 is no backup group: noise there is no sign */
	memset(m.p + (1 + 2 * 1024) * 1024, 0x5a, 1024);
	CHECK(probe_fs_copies(mem_read, &m, m.size, "ext4", why, sizeof(why)) == 0);
	/* ciphertext over group 7's backup is */
	memset(m.p + (1 + 7 * 1024) * 1024, 0x5a, 1024);
	CHECK(probe_fs_copies(mem_read, &m, m.size, "ext4", why, sizeof(why)) == 1);
	CHECK(strstr(why, "group 7") != NULL);
	/* a view that ends before group 7 does not look there */
	CHECK(probe_fs_copies(mem_read, &m, 7 << 20, "ext4", why, sizeof(why)) == 0);
	free(m.p);
}

static void test_fat(void)
{
	struct mem m = { calloc(1, 1 << 20), 1 << 20 };
	char why[256];

	put_le16(m.p + 11, 512);
	put_le16(m.p + 14, 4); /* reserved sectors */
	m.p[16] = 2;
	put_le16(m.p + 22, 8); /* sectors per FAT */
	memset(m.p + 4 * 512 + 8, 0x11, 8 * 512 - 8);
	memset(m.p + 12 * 512 + 8, 0x11, 8 * 512 - 8);
	m.p[4 * 512] = 0xf8;   /* entry 0 may differ */
	CHECK(probe_fs_copies(mem_read, &m, m.size, "vfat", why, sizeof(why)) == 0);
	m.p[12 * 512 + 3000] ^= 1;
	CHECK(probe_fs_copies(mem_read, &m, m.size, "vfat", why, sizeof(why)) == 1);
	free(m.p);
}

static void test_noise(void)
{
	uint8_t buf[4096];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	CHECK(probe_random_looking(buf, sizeof(buf)) == 1);
	memset(buf, 0, 512);
	CHECK(probe_random_looking(buf, sizeof(buf)) == 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)"the quick brown fox jumps over the lazy dog\n"[i % 44];
	CHECK(probe_random_looking(buf, sizeof(buf)) == 0);
}

int main(void)
{
	test_ext();
	test_fat();
	test_noise();
	UNIT_DONE("probe copies");
}
