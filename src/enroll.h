/*
 * Key handover after the conversion (luksipc finalize on an armed system,
 * docs/lifecycle.md): new keyslots in the converted device's LUKS2 header,
 * added with the bootstrap key, each verified by opening the header with
 * its own secret, and the bootstrap keyslot destroyed at the end.
 *
 * This is the one place where libcryptsetup writes the header on the
 * device itself (luks.c works on images only): the conversion is over and
 * the header is libcryptsetup's own from here on. Secrets live in locked
 * memory (struct key, secmem) and never reach a log or the journal.
 */
#ifndef LUKSIPC_ENROLL_H
#define LUKSIPC_ENROLL_H

#include <stddef.h>

#include "keys.h"

/* A systemd-style recovery key: 64 modhex characters in 8 dash-separated groups. */
#define ENROLL_RECOVERY_LEN (64 + 7)

/*
 * Fills out (ENROLL_RECOVERY_LEN + 1 bytes) with a new recovery key: 256
 * random bits in systemd-cryptenroll's modhex format. 0 or -errno.
 */
int enroll_recovery_key(char *out);
/* 1 when typed is the recovery key key, ignoring case, spaces and dashes. */
int enroll_recovery_matches(const char *key, const char *typed, size_t typed_len);

/* The keyslot of device that key opens, or -EPERM (none), -EINVAL (not LUKS), -errno. */
int enroll_find_slot(const char *device, const struct key *key);
/* 1 active, 0 inactive, -errno. */
int enroll_slot_active(const char *device, int slot);
/* The first inactive keyslot, or -ENOSPC, -errno. */
int enroll_free_slot(const char *device);
/*
 * Adds keyslot slot opened by secret, unlocking the volume key with unlock.
 * Then verifies, with a fresh load of the header, that secret opens slot.
 * 0; -EPERM (unlock opens nothing); -EBADMSG (the new slot did not verify);
 * -errno.
 */
int enroll_add(const char *device, const struct key *unlock, int slot, const char *secret, size_t secret_len);
/* 0 when secret opens keyslot slot of device (header only, nothing activated), -EPERM, -errno. */
int enroll_verify(const char *device, int slot, const char *secret, size_t secret_len);
/* Destroys keyslot slot (idempotent: an inactive slot is 0). 0 or -errno. */
int enroll_destroy(const char *device, int slot);
/*
 * The token of type type (e.g. "systemd-tpm2") whose keyslots name slot, or
 * -ENOENT, -errno.
 */
int enroll_token_of_slot(const char *device, int slot, const char *type);
/*
 * Removes every token whose keyslots name slot (what systemd-cryptenroll
 * leaves beside a keyslot it added). The number removed, or -errno.
 */
int enroll_drop_tokens(const char *device, int slot);
/* The number of active keyslots, or -errno. */
int enroll_active_count(const char *device);

/*
 * Asks for a secret through systemd-ask-password (its console agent at
 * boot, the terminal otherwise). 0, or E_KEY with the reason logged.
 */
int enroll_ask(const char *prompt, struct key *ret);

#endif
