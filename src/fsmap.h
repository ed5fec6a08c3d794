/*
 * --used-only: reads the allocation map of the filesystem on a device that
 * nothing has written yet (usedmap.h). ext2/3/4 through libext2fs, which
 * reads the device by path on its own, and only reads (like libblkid and
 * libcryptsetup, see dev.h); vfat through its first FAT, read here.
 */
#ifndef LUKSIPC_FSMAP_H
#define LUKSIPC_FSMAP_H

#include <stddef.h>

#include "usedmap.h"

/*
 * Fills m (usedmap_init'ed with the payload size) with what the filesystem
 * of type fs_type (as probe.c names it) on path uses. 0; E_REFUSED with the
 * reason logged (a filesystem that is not clean, or one whose map luksipc
 * cannot read); -errno.
 */
int fsmap_read(const char *path, const char *fs_type, struct usedmap *m);

#endif
