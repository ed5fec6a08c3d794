/*
 * LUKS headers through libcryptsetup. luksipc never lets libcryptsetup
 * write to the device being converted: headers are made and opened as
 * in-memory images, which the engine writes to the device itself, last.
 * libcryptsetup reads the device only to find the current header's data
 * offset (luks_device_data_offset).
 */
#ifndef LUKSIPC_LUKS_H
#define LUKSIPC_LUKS_H

#include <stddef.h>
#include <stdint.h>

#define LUKS_UUID_LEN 40

/* The one cipher luksipc writes and re-encrypts (xts.c implements it). */
#define LUKS_CIPHER "aes"
#define LUKS_CIPHER_MODE "xts-plain64"
#define LUKS_CIPHER_SPEC LUKS_CIPHER "-" LUKS_CIPHER_MODE /* as cryptsetup names it */

/* The header size (data offset) without --header-size, as cryptsetup's. */
#define LUKS1_HEADER_SIZE_DEFAULT (UINT64_C(2) * 1024 * 1024)
#define LUKS2_HEADER_SIZE_DEFAULT (UINT64_C(16) * 1024 * 1024)

struct luks_params {
	int version;              /* 1 or 2 */
	uint32_t key_bytes;       /* 32 or 64 (aes-xts 256 or 512 bits) */
	uint32_t sector_size;     /* 512 or 4096 */
	uint64_t header_size;     /* data offset in bytes */
	const char *pbkdf;        /* NULL: argon2id for LUKS2, pbkdf2 for LUKS1 */
	uint32_t pbkdf_iterations; /* 0: benchmark for iter_time_ms */
	uint32_t iter_time_ms;    /* 0: libcryptsetup default */
	uint32_t pbkdf_memory_kib; /* 0: default */
	const char *label;        /* LUKS2 only, may be NULL */
	const char *uuid;         /* may be NULL: random */
	int detached;             /* header_size is the header's own size; data offset 0 */
};

/* LUKS2's JSON metadata area (each of its two copies) in a detached header luksipc makes. */
#define LUKS2_METADATA_SIZE (UINT64_C(16) * 1024)

/*
 * Formats a LUKS header for volume key vk with one keyslot opened by key.
 * *ret_image gets exactly header_size bytes (malloc'ed, caller frees) and
 * ret_uuid the header's UUID. 0, -EINVAL (parameters rejected), -errno.
 */
int luks_format_image(const struct luks_params *p, const uint8_t *vk, size_t vk_len,
		      const char *key, size_t key_len, uint8_t **ret_image,
		      char ret_uuid[LUKS_UUID_LEN + 1]);

/*
 * Opens a keyslot of the header image with key and copies the volume key to
 * vk (capacity *vk_len, updated). 0, -EPERM (no keyslot accepts the key),
 * -EINVAL (not a LUKS header), -errno.
 */
int luks_unlock_image(const uint8_t *image, size_t len, const char *key, size_t key_len,
		      uint8_t *vk, size_t *vk_len);

struct luks_info {
	int version;
	char cipher[32], cipher_mode[32];
	uint32_t key_bytes;
	uint32_t sector_size;
	uint64_t data_offset; /* bytes */
	char uuid[LUKS_UUID_LEN + 1];
	int unsupported;      /* reencryption in progress, integrity, detached header... */
};

/*
 * Reads the LUKS header on the device at path (read-only) and returns its
 * data offset in bytes. 0, -EINVAL (not LUKS), -errno.
 */
int luks_device_data_offset(const char *path, uint64_t *ret);

/* Describes a header image. 0, -EINVAL (not LUKS), -errno. */
int luks_inspect_image(const uint8_t *image, size_t len, struct luks_info *ret);

/*
 * Reads the LUKS header at path (a detached header's file or partition,
 * read-only, through libcryptsetup's header backup): *ret_image gets the
 * header's bytes (malloc'ed), *ret_len their count, *ret_dynamic 0 when a
 * LUKS2 data segment has a fixed size (1 for LUKS1). 0, -EINVAL (not
 * LUKS), -errno.
 */
int luks_read_detached(const char *path, uint8_t **ret_image, size_t *ret_len, int *ret_dynamic);

/* The last message libcryptsetup logged (for error reports), or "". */
const char *luks_last_error(void);

#endif
