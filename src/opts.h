/* What the command line and the environment ask of convert (main.c fills it; job.h carries it). */
#ifndef LUKSIPC_OPTS_H
#define LUKSIPC_OPTS_H

#include <stdint.h>

struct convert_opts {
	const char *device;
	const char *state;
	int luks_version;       /* 1 or 2 */
	uint32_t key_bits;      /* 256 or 512 */
	uint32_t sector_size;   /* 512 or 4096 */
	uint64_t header_size;   /* 0: default for the LUKS version */
	const char *header;     /* --header: the LUKS header goes to this file or partition, not onto the device */
	uint64_t step_size;     /* 0: the mode's default (plaintext: min(H, 16 MiB)) */
	const char *pbkdf;
	uint32_t pbkdf_iterations;
	uint32_t iter_time_ms;
	uint32_t pbkdf_memory_kib;
	const char *label;
	const char *uuid;
	const char *key_file;
	const char *generate_key_file;
	int reencrypt;               /* LUKS to LUKS */
	int decrypt;                 /* LUKS to plaintext (with --header only, so far) */
	int used_only;               /* 0; 1 --used-only; 2 --used-only=wipe (USED_ONLY_* of state.h) */
	const char *old_key_file;    /* key of the current header; default: key_file */
	const char *old_header;      /* --reencrypt --old-header: the current header is detached, in this file or partition */
	const char *readdev;         /* LUKS to LUKS: read the plaintext from this open mapping */
	int batch;
	int no_seatbelt;
	int force_state;
	int progress_json;
	unsigned crypt_threads; /* LUKSIPC_CRYPT_THREADS, 1 to ENGINE_THREADS_MAX; 0: one per online CPU */
	const char *note_name;  /* mapper name for the admin notes; default luks-<UUID> */
	const char *note_key;   /* key file path for the admin notes; default the key file */
	const char *note_header; /* --header: DEVICE[:/PATH] of the header for the admin notes (the boot flag) */
	const char *note_framework; /* the boot framework converting: initramfs-tools, dracut or other */
};

#endif
