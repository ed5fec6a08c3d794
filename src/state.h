/*
 * The state store: a small raw partition or a regular file, never on the
 * converted device. Layout and field-by-field format: docs/format.md.
 *
 *   0       superblock, copy A  (identity and parameters; written once)
 *   4 KiB   superblock, copy B
 *   8 KiB   record slot 0       (progress; slots alternate by sequence)
 *   12 KiB  record slot 1
 *   64 KiB  admin notes         (text, written at completion)
 *   1 MiB   new LUKS header image, H bytes (written and verified first)
 *   then    LUKS to LUKS only: the old header (H_old bytes); then the
 *           journal (S bytes, when the geometry needs one: LUKS to LUKS
 *           with little header growth, and every detached header)
 *   then    --used-only: the allocation map (at a 4 KiB boundary)
 *   end     superblock, copy C, in the last whole 4 KiB of the store, so that
 *           zeroing or losing the start of the store leaves a copy
 */
#ifndef LUKSIPC_STATE_H
#define LUKSIPC_STATE_H

#include <stdint.h>

#include "dev.h"
#include "geometry.h"
#include "luks.h"
#include "usedmap.h"

#define STATE_SB_SIZE 4096
#define STATE_REC_SIZE 512
#define STATE_REC_SLOT0 (8 * 1024)
#define STATE_REC_SLOT1 (12 * 1024)
#define STATE_NOTES_OFF (64 * 1024)
#define STATE_NOTES_MAX (64 * 1024)
#define STATE_HEADER_OFF (1024 * 1024)

/*
 * The store's newest format version (docs/format.md): 6 only for a
 * detached header, 7 only for the forward walk (--decrypt of a header on
 * the device, --reencrypt --header); every other superblock, and every
 * record, is 5.
 */
#define STATE_FORMAT 7
#define STATE_FORMAT_DETACHED 6
#define STATE_FORMAT_PLAIN 5

#define MODE_ENCRYPT 1
#define MODE_REENCRYPT 2
#define MODE_DECRYPT 3 /* LUKS to plaintext; the header image is the header being removed */

enum phase { PHASE_NEW = 0, PHASE_CONVERTING = 1, PHASE_DONE = 2 };

/*
 * A region of the converted device and a digest of what must be there:
 * "ahead" (the next source, plaintext when encrypting) is an HMAC-SHA256
 * under the evidence key, so the store reveals nothing about the data;
 * "behind" (new ciphertext) is a plain SHA-256, so that status can check it
 * without the key. See docs/format.md.
 */
struct evidence {
	uint64_t off, len;
	uint8_t sha256[32];
};

struct state_sb {
	uint8_t state_uuid[16];
	uint32_t mode;
	struct geometry geo;
	uint32_t key_bytes;
	uint32_t luks_version;
	uint64_t header_off, header_len;
	uint8_t header_sha256[32];
	char luks_uuid[LUKS_UUID_LEN + 1];
	char device_path[256];
	char fs_type[16];
	uint64_t fs_size;
	uint64_t created;
	/* LUKS to LUKS: the old header, backed up before anything moves */
	uint32_t old_sector_size;
	uint32_t old_key_bytes;
	uint32_t old_luks_version;
	uint64_t old_header_off, old_header_len;
	uint8_t old_header_sha256[32];
	char old_luks_uuid[LUKS_UUID_LEN + 1];
	uint64_t journal_off, journal_len;
	uint32_t sector_size; /* the new encryption sector size (geo's is the larger of old and new) */
	uint64_t store_size;  /* bytes of the store when it was made; copy C ends there */
	struct evidence first; /* the first step's source as it was prepared (record 1's ahead) */
	/* --used-only: the allocation map, taken once at the start */
	uint32_t used_only;     /* USED_ONLY_* */
	uint64_t map_off, map_len; /* map_len: bytes of the encoded extents, 0 without a map */
	uint64_t map_used;      /* bytes the map counts as used */
	uint8_t map_sha256[32]; /* SHA-256 of the encoded map */
	uint8_t map_mac[32];    /* HMAC-SHA-256 of it under the map key (from the volume key) */
	/*
	 * 1 once record 1 is durable, written to every copy before the first
	 * write to the device: a store that says so but has no record left is
	 * damaged, never a preparation cut short (docs/format.md).
	 */
	uint32_t started;
	/*
	 * Plaintext to LUKS, when the filesystem leaves room: the raw offset of
	 * the device-side marker (src/marker.h), the device's last whole 4 KiB;
	 * the payload then ends below it (P = marker_off - H). 0: no marker.
	 */
	uint64_t marker_off;
	/*
	 * convert --header: the LUKS header goes to header_path (a file or a
	 * partition), not onto the device; geo.header_size is 0, header_len
	 * the detached header's size, and the journal holds new ciphertext.
	 */
	uint32_t detached;
	char header_path[256];
};

#define USED_ONLY_OFF 0  /* the whole payload */
#define USED_ONLY_ON 1   /* only what the map counts as used, and what must be overwritten */
#define USED_ONLY_WIPE 2 /* also every free byte, as ciphertext of zeros */

struct state_rec {
	uint32_t phase;
	uint64_t seq;
	uint64_t frontier; /* payload [frontier, P) is converted */
	struct evidence ahead;  /* payload still to convert, next step's source */
	struct evidence behind; /* output of the last step */
	uint64_t time;
	/* journal_f > 0: the journal holds the old source of step [journal_a, journal_f) */
	uint64_t journal_a, journal_f;
	uint8_t journal_sha256[32];
	/* --used-only: the map's SHA-256 (the superblock's), so that each record's HMAC covers the map */
	uint8_t map_sha256[32];
};

struct state {
	struct dev dev;
	struct state_sb sb;
	int have_sb;
	int sb_copies;    /* bit 0: copy A valid, bit 1: B, bit 2: C (the tail) */
	struct state_rec rec;
	int have_rec;
	int rec_hmac_bad;  /* a newer record had a good checksum but a bad HMAC */
	uint8_t hmac_key[32];
	int have_key;
	uint8_t ev_key[32]; /* keys the "ahead" evidence; wiped with hmac_key */
	int have_ev_key;
	uint32_t found_format; /* state_read_sb: -EPROTO, the version found */
	uint8_t map_key[32]; /* keys the allocation map; wiped with hmac_key */
	/* --used-only: the map in force (built at the start, or read from the store) */
	struct usedmap map;
	int have_map;
	int map_wipe;
	uint8_t *map_buf; /* the encoded map, for state_create */
};

/* Pure encoding, unit-tested. decode: 0, or -EINVAL if magic/checksum bad. */
void state_sb_encode(const struct state_sb *sb, uint8_t out[STATE_SB_SIZE]);
int state_sb_decode(const uint8_t in[STATE_SB_SIZE], struct state_sb *ret);
/* hmac_key may be NULL when encoding for tests; decode checks it if given. */
void state_rec_encode(const struct state_rec *rec, const uint8_t state_uuid[16],
		      const uint8_t *hmac_key, uint8_t out[STATE_REC_SIZE]);
/* 0; -EINVAL bad magic/checksum/uuid; -EBADMSG bad HMAC. */
int state_rec_decode(const uint8_t in[STATE_REC_SIZE], const uint8_t state_uuid[16],
		     const uint8_t *hmac_key, struct state_rec *ret);

/*
 * Places the header image(s) and the journal in the store: sets header_off,
 * old_header_off and journal_off from header_len, old_header_len and
 * journal_len. Returns the bytes the store needs, copy C included.
 */
uint64_t state_plan(struct state_sb *sb);

/* Offset of superblock copy C in a store of size bytes (its last whole 4 KiB). */
uint64_t state_tail_sb_off(uint64_t size);
/*
 * Reads the superblock of an opened store: copy A, else B, else C (at the
 * tail of the store as it is now). 0, -ENOENT (no valid copy), -EPROTO (a
 * valid copy of another format version, in s->found_format), -errno.
 */
int state_read_sb(struct state *s);
/*
 * With no valid superblock: looks for anything a conversion leaves on the
 * store (a superblock copy of any version or checksum, a record, the admin
 * notes, the header image) and describes the first found in what.
 * 1 found; 2 only superblock copies that fail their checksum (what a cut
 * during the very first write leaves); 0 nothing (an empty store); -errno.
 */
int state_find_remnants(struct state *s, char *what, size_t len);
/* Derives the record HMAC key and the evidence key from the volume key. */
void state_set_key(struct state *s, const uint8_t *vk, size_t vk_len);
/*
 * Derives only the evidence key (from the volume key alone: the engine reads
 * ahead before the store, and its UUID, exist).
 */
void state_set_evidence_key(struct state *s, const uint8_t *vk, size_t vk_len);
/*
 * --used-only: encodes s->map for the store and fills sb's map fields
 * (map_len, map_used, digests; the map key must be set). 0 or -ENOMEM.
 */
int state_set_map(struct state *s, struct state_sb *sb);
/*
 * Reads the map sb places on the store into s->map: -EBADMSG when it fails
 * its SHA-256 or does not decode, -EKEYREJECTED when the map key is set and
 * its MAC fails, -errno.
 */
int state_read_map(struct state *s);
/* The keyed digest of an "ahead" evidence sample: HMAC-SHA256 under ev_key. */
void state_evidence_mac(const struct state *s, const uint8_t *buf, size_t len, uint8_t out[32]);
/*
 * Loads the newest valid record into s->rec (HMAC checked when the key is
 * set). 0, -ENOENT (none: nothing was ever written to the device), -errno.
 */
int state_load_records(struct state *s);
/* Reads and verifies the header image. *ret is malloc'ed. 0, -EBADMSG, -errno. */
int state_read_header(struct state *s, uint8_t **ret);
/* The same for the backup of the old header (LUKS to LUKS). */
int state_read_old_header(struct state *s, uint8_t **ret);
/* Writes len bytes to the journal area and flushes. 0 or -errno. */
int state_write_journal(struct state *s, const uint8_t *buf, uint64_t len);
/* Reads the journal for the current record and checks its hash. 0, -EBADMSG, -errno. */
int state_read_journal(struct state *s, uint8_t *buf);
/*
 * Initialises the store: the three superblock copies (sb->store_size set
 * here), flush, then the header image(s) and the map (state_set_map),
 * flush, read back and verify. Nothing on the device may be written
 * before this returns 0 and the first record is committed.
 */
int state_create(struct state *s, const struct state_sb *sb, const uint8_t *header_image,
		 const uint8_t *old_header_image);
/*
 * Sets sb.started and rewrites the three superblock copies with it, then
 * flushes. Called with record 1 durable, before the device is written.
 */
int state_mark_started(struct state *s);
/* Writes rec with the next sequence number into its slot, then flushes. */
int state_commit(struct state *s, struct state_rec *rec);
int state_write_notes(struct state *s, const char *text);
/* *ret is malloc'ed and NUL-terminated; "" if none. */
int state_read_notes(struct state *s, char **ret);
/* Overwrites the superblocks (copy C too), records, notes and header images with zeros. */
int state_wipe(struct state *s);

#endif
