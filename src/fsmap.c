/* --used-only: the allocation map of a clean filesystem (fsmap.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

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

int fsmap_read(const char *path, const char *fs_type, struct usedmap *m)
{
	if (!strcmp(fs_type, "ext2") || !strcmp(fs_type, "ext3") || !strcmp(fs_type, "ext4"))
		return ext_map(path, fs_type, m);
	log_error("--used-only reads the allocation map of ext2, ext3 and ext4 only, not of the %s filesystem on '%s'; run without --used-only for a full conversion (nothing was written)",
		  fs_type[0] ? fs_type : "unknown", path);
	return E_REFUSED;
}
