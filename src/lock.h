/*
 * Locks that keep two runs off one device and one state store. A run takes
 * flock(LOCK_EX | LOCK_NB) on the device, then on the state store, and holds
 * both until it exits (the kernel drops them with the descriptors, so a kill
 * or a power cut leaves nothing stale). Nothing waits for a lock, so two
 * runs cannot deadlock whatever order they meet in; the fixed order only
 * makes the refusal name the device when both are shared. Block devices
 * are also opened O_EXCL (dev.h), which the kernel enforces for every
 * opener. `status` takes no lock: it only reads. See docs/interface.md.
 */
#ifndef LUKSIPC_LOCK_H
#define LUKSIPC_LOCK_H

#include <stddef.h>

#include "dev.h"

/*
 * Locks d (opened) for as long as it stays open. 0, or E_REFUSED after one
 * error line naming what ("device", "state store") and, when /proc/locks
 * tells, the pid and name of the holder.
 */
int lock_dev(const struct dev *d, const char *what);

/*
 * A loop device: also locks the file behind it (/sys/dev/block/M:m/loop/
 * backing_file), so that a run on the file and a run on its loop device
 * exclude each other. The lock is held until the process exits. 0 (also
 * when d is not a loop device), or E_REFUSED after one error line.
 */
int lock_loop_backing(const struct dev *d, const char *what);

/* " by pid N (name)" for whoever holds a lock on path, or "" if unknown. */
void lock_holder(const char *path, char *ret, size_t len);

#endif
