/* --used-only: the allocation map of a clean filesystem (fsmap.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>

#include "fsmap.h"
#include "luksipc.h"

/*
 * What a filesystem must be for its bitmaps to tell the truth: cleanly
 * unmounted, no errors recorded, no journal to replay, no orphan inodes
 * whose blocks the next mount frees. NULL when clean, else what is wrong.
 */
static const char *ext_unclean(ext2_filsys fs)
{
	struct ext2_super_block *sb = fs->super;

	if (ext2fs_has_feature_journal_needs_recovery(sb))
		return "has a journal to replay";
	if (sb->s_state & EXT2_ERROR_FS)
		return "has errors recorded";
	if (!(sb->s_state & EXT2_VALID_FS))
		return "was not cleanly unmounted";
	if (sb->s_last_orphan || ext2fs_has_feature_orphan_present(sb))
		return "has an orphan list";
	return NULL;
}

/*
 * Every group's own metadata (superblock and descriptor copies, bitmaps,
 * inode table) is marked used on top of the bitmap, which libext2fs already
 * fills in for BLOCK_UNINIT groups: a byte counted twice costs nothing.
 */
static void ext_mark_metadata(ext2_filsys fs, ext2fs_block_bitmap bmap)
{
	for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
		blk64_t super = 0, old_desc = 0, new_desc = 0, b;
		blk_t used = 0;

		if (ext2fs_super_and_bgd_loc2(fs, g, &super, &old_desc, &new_desc, &used) == 0) {
			if (super || g == 0)
				ext2fs_mark_block_bitmap2(bmap, super);
			if (old_desc)
				ext2fs_mark_block_bitmap_range2(bmap, old_desc, fs->desc_blocks + fs->super->s_reserved_gdt_blocks);
			if (new_desc)
				ext2fs_mark_block_bitmap2(bmap, new_desc);
		}
		if ((b = ext2fs_block_bitmap_loc(fs, g)) && b < ext2fs_blocks_count(fs->super))
			ext2fs_mark_block_bitmap2(bmap, b);
		if ((b = ext2fs_inode_bitmap_loc(fs, g)) && b < ext2fs_blocks_count(fs->super))
			ext2fs_mark_block_bitmap2(bmap, b);
		if ((b = ext2fs_inode_table_loc(fs, g)) && b + fs->inode_blocks_per_group <= ext2fs_blocks_count(fs->super))
			ext2fs_mark_block_bitmap_range2(bmap, b, fs->inode_blocks_per_group);
	}
}

static int ext_map(const char *path, const char *type, struct usedmap *m)
{
	ext2_filsys fs = NULL;
	errcode_t err = ext2fs_open2(path, NULL, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	const char *why;
	uint64_t bs;
	blk64_t first, last, b;
	int r = 0;

	if (err) {
		log_error("cannot read the %s filesystem on '%s' for --used-only: %s; run e2fsck -f %s, or convert without --used-only", type, path,
			  error_message(err), path);
		return E_REFUSED;
	}
	if ((why = ext_unclean(fs))) {
		log_error("the %s filesystem on '%s' %s, so its allocation map cannot be trusted; run e2fsck -f %s, then run again (nothing was written)",
			  type, path, why, path);
		ext2fs_close_free(&fs);
		return E_REFUSED;
	}
	err = ext2fs_read_block_bitmap(fs);
	if (err) {
		log_error("cannot read the block bitmaps of the %s filesystem on '%s': %s; run e2fsck -f %s, or convert without --used-only", type,
			  path, error_message(err), path);
		ext2fs_close_free(&fs);
		return E_REFUSED;
	}
	ext_mark_metadata(fs, fs->block_map);
	bs = fs->blocksize;
	first = fs->super->s_first_data_block;
	last = ext2fs_blocks_count(fs->super) - 1;
	/* the boot block and the primary superblock, which lie before block 1 of a 1 KiB-block filesystem */
	r = usedmap_add(m, 0, 2048 + first * bs);
	for (b = first; r == 0 && b <= last;) {
		blk64_t s, e;

		if (ext2fs_find_first_set_block_bitmap2(fs->block_map, b, last, &s) != 0)
			break;
		if (ext2fs_find_first_zero_block_bitmap2(fs->block_map, s, last, &e) != 0)
			e = last + 1;
		r = usedmap_add(m, s * bs, e * bs);
		b = e;
	}
	ext2fs_close_free(&fs);
	if (r < 0)
		return r;
	usedmap_finish(m);
	return 0;
}

static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/*
 * vfat: the reserved sectors, the FATs and the FAT12/16 root directory are
 * used, and every cluster whose entry in the first FAT is not 0 (free) nor
 * the bad-cluster mark. Clean means the boot sector's dirty bit (set by
 * Linux while mounted) is clear and, on FAT16/32, the FAT's own "clean
 * shutdown" bit is set and its "hard error" bit clear.
 */
static int fat_map(const char *path, struct usedmap *m)
{
	uint8_t bs[512];
	uint8_t *fat = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r = fd < 0 ? -errno : read_full(fd, bs, sizeof(bs), 0);
	uint32_t bps, spc, reserved, nfats, root_entries, total, fatsz, root_secs, first_data, clusters, bits;
	uint64_t fat_bytes;
	const char *why = NULL;

	if (r < 0)
		goto out;
	bps = get_le16(bs + 11);
	spc = bs[13];
	reserved = get_le16(bs + 14);
	nfats = bs[16];
	root_entries = get_le16(bs + 17);
	total = get_le16(bs + 19) ? get_le16(bs + 19) : get_le32(bs + 32);
	fatsz = get_le16(bs + 22) ? get_le16(bs + 22) : get_le32(bs + 36);
	if ((bps != 512 && bps != 1024 && bps != 2048 && bps != 4096) || !spc || (spc & (spc - 1)) || !reserved || !nfats || !fatsz) {
		log_error("the vfat filesystem on '%s' has a boot sector luksipc cannot read; run fsck.vfat on it, or convert without --used-only", path);
		r = E_REFUSED;
		goto out;
	}
	root_secs = (root_entries * 32 + bps - 1) / bps;
	first_data = reserved + nfats * fatsz + root_secs;
	clusters = total > first_data ? (total - first_data) / spc : 0;
	bits = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
	fat_bytes = (uint64_t)fatsz * bps;
	if (fat_bytes < ((uint64_t)clusters + 2) * bits / 8 + 2) {
		log_error("the vfat filesystem on '%s' has a FAT too small for its clusters; run fsck.vfat on it, or convert without --used-only", path);
		r = E_REFUSED;
		goto out;
	}
	fat = malloc(fat_bytes);
	if (!fat) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = read_full(fd, fat, fat_bytes, (uint64_t)reserved * bps)) < 0)
		goto out;
	if (bs[bits == 32 ? 65 : 37] & 1)
		why = "is marked dirty (it was not cleanly unmounted)";
	else if (bits == 16 && (get_le16(fat + 2) & 0xc000) != 0xc000)
		why = "records an unclean shutdown or a disk error in its FAT";
	else if (bits == 32 && (get_le32(fat + 4) & 0x0c000000) != 0x0c000000)
		why = "records an unclean shutdown or a disk error in its FAT";
	if (why) {
		log_error("the vfat filesystem on '%s' %s, so its allocation map cannot be trusted; run fsck.vfat -a %s, then run again (nothing was written)", path, why, path);
		r = E_REFUSED;
		goto out;
	}
	r = usedmap_add(m, 0, (uint64_t)first_data * bps);
	for (uint32_t c = 2; r == 0 && c < clusters + 2; c++) {
		uint32_t e, bad;

		if (bits == 12) {
			e = get_le16(fat + c + c / 2);
			e = c & 1 ? e >> 4 : e & 0xfff;
			bad = 0xff7;
		} else if (bits == 16) {
			e = get_le16(fat + 2 * c);
			bad = 0xfff7;
		} else {
			e = get_le32(fat + 4 * c) & 0x0fffffff;
			bad = 0x0ffffff7;
		}
		if (e && e != bad)
			r = usedmap_add(m, ((uint64_t)first_data + (uint64_t)(c - 2) * spc) * bps,
					((uint64_t)first_data + (uint64_t)(c - 1) * spc) * bps);
	}
	if (r == 0)
		usedmap_finish(m);
out:
	if (r < 0 && r != E_REFUSED)
		log_error("cannot read the vfat filesystem on '%s' for --used-only: %s; convert without --used-only", path, strerror(-r));
	free(fat);
	if (fd >= 0)
		close(fd);
	return r < 0 ? E_REFUSED : 0;
}

int fsmap_read(const char *path, const char *fs_type, struct usedmap *m)
{
	if (!strcmp(fs_type, "ext2") || !strcmp(fs_type, "ext3") || !strcmp(fs_type, "ext4"))
		return ext_map(path, fs_type, m);
	if (!strcmp(fs_type, "vfat"))
		return fat_map(path, m);
	log_error("--used-only reads the allocation map of ext2, ext3, ext4 and vfat only, not of the %s filesystem on '%s'; run without --used-only for a full conversion (nothing was written)",
		  fs_type[0] ? fs_type : "unknown", path);
	return E_REFUSED;
}
