/*
 * LUKS to LUKS in place (reencrypt.c), the second mode over job.c. The
 * functions return 0 or an error code for main and log their refusals.
 */
#ifndef LUKSIPC_REENCRYPT_H
#define LUKSIPC_REENCRYPT_H

#include "job.h"

/* A fresh start: checks the LUKS device, then plans, prepares and runs it. */
int reencrypt_start(struct job *j);
/* --decrypt, or --reencrypt --header, of a device that carries its header: reads it into j->old_image (its data offset's bytes) and describes it; refuses what luksipc cannot read. */
int reencrypt_read_device_header(struct job *j, struct luks_info *info, int decrypt);
/* The old key (--old-key-file, --key-file or a prompt) opens the header read by reencrypt_read_device_header: j->old_vk. */
int reencrypt_unlock_device_old(struct job *j, const struct luks_info *old);
/*
 * --decrypt shares the check of what the header's key decrypts to: a
 * filesystem that fits j->geo.data_size, and no sign of a run that already
 * converted part of it (its filesystem's copies, a top that decrypts to
 * noise). Reads only; refusals logged (E_REFUSED) unless --no-seatbelt.
 */
int reencrypt_check_decrypted(struct job *j, const uint8_t *vk, size_t vk_len, const struct luks_info *hdr, struct state_sb *sb);
/*
 * Resume: opens the old header backup in the state store with the old key,
 * or, with --readdev and no journal, only the mapping.
 */
int reencrypt_unlock_old(struct job *j);
/* --readdev: opens the mapping and checks it sits on the device. */
int reencrypt_open_readdev(struct job *j);

#endif
