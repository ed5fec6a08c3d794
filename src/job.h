/*
 * One run of convert: what it opened, the keys it holds, the plan, and the
 * steps both modes share (job.c): the new key, the checks of the filesystem
 * and the state store, the new header, the state store, the first record
 * and the engine. The modes are plaintext to LUKS (convert.c, which also
 * resumes) and LUKS to LUKS (reencrypt.c). Functions return 0 or an error
 * code for main and log their refusals.
 */
#ifndef LUKSIPC_JOB_H
#define LUKSIPC_JOB_H

#include "dev.h"
#include "engine.h"
#include "geometry.h"
#include "keys.h"
#include "luksipc.h"
#include "opts.h"
#include "probe.h"
#include "state.h"

/* The largest step a mode picks by default: larger ones are no faster and hold more memory. */
#define JOB_STEP_MAX (16 * MIB)

struct job {
	const struct convert_opts *o;
	struct dev dev;
	struct state st;
	int state_exists;
	struct key key; /* of the new header: wiped once the header is made or opened */
	uint8_t *vk;    /* the new volume key: wiped once the engine's contexts hold it */
	size_t vk_len;
	uint8_t *image;
	struct geometry geo;
	struct state_rec first; /* record 1: frontier P, the first step's source as prepared */
	/* LUKS to LUKS (the keys wiped as above) */
	struct key old_key;
	uint8_t *old_vk;
	size_t old_vk_len;
	uint8_t *old_image;
	const char *keep_uuid; /* LUKS to LUKS: the old UUID, unless --uuid */
	struct dev readdev;    /* --readdev: the open mapping of the old header */
	int have_readdev;
	/* --header: the detached header's file or partition (fd -1 until opened or created) */
	struct dev hdr;
	uint64_t hdr_len;      /* the detached header's size; 0 without --header */
	/* the engine and its contexts (job.c alone starts and stops it) */
	struct engine eng;
	struct xts *enc, *dec;
	struct progress prog;
};

/* Zeroes j for the options o, every descriptor closed. */
void job_init(struct job *j, const struct convert_opts *o);
/* Stops the engine, wipes the keys still held (after an error) and closes what j opened. */
void job_free(struct job *j);

/*
 * The new header's size: --header-size, else the default for the LUKS
 * version. With --header that is the detached header's size; the data
 * offset (geometry's H) is then 0.
 */
uint64_t job_header_size(const struct job *j);
/*
 * --header on a fresh start, every check passed: creates the header file
 * (mode 0600, zero-filled, its directory entry flushed) when it does not
 * exist, or grows a shorter all-zero file, to j->hdr_len bytes. Nothing is
 * written to it again until the last step is done.
 */
int job_prepare_header(struct job *j);
/* Asks for YES on the terminal before a fresh start writes to device. */
int job_confirm(const char *device);
/* The new key: generated, from a key file, or prompted (twice if confirm). */
int job_get_key(struct job *j, int confirm);
/* The filesystem on plain (plaintext view of the device) must end by p. */
int job_check_filesystem(struct job *j, struct dev *plain, uint64_t p, struct state_sb *sb);
/* An existing store must carry no signature (unless --force-state) and, a partition, hold need bytes. */
int job_check_state_store(struct job *j, uint64_t need);
/*
 * A fresh start must not meet a device half converted by a run whose state
 * is lost: checks the filesystem's spread-out copies through rd (a view of
 * size bytes) and takes extra, when not empty, as a sign found by the
 * caller. Refuses (E_REFUSED, logged) on a sign unless --no-seatbelt.
 */
int job_check_half_converted(struct job *j, probe_read_fn rd, void *ctx, uint64_t size, const char *fs_type, const char *extra);
/*
 * Starts a conversion that every check has allowed, j->key in hand and sb
 * filled by the mode (mode, geometry, sizes, filesystem, old header): a new
 * random volume key and a header image for it in j->image; then sb is
 * completed (state UUID, hashes, layout), the store created, the first
 * record committed and the engine run. For plaintext to LUKS the engine
 * starts reading (only reading) the first steps before the header is
 * made, so that they are ready once the state store is.
 */
int job_start(struct job *j, struct state_sb *sb);
/*
 * --decrypt: job_start with the header that exists (j->image, unlocked to
 * j->vk) instead of a new one: the store, the first record, the engine.
 */
int job_start_existing(struct job *j, struct state_sb *sb);
/* The record that starts the conversion, from the device as it is now, in j->first. */
int job_make_first_record(struct job *j);
/* Commits j->first once the store is verified; data moves only after it. */
int job_first_record(struct job *j);
/* Runs the engine with the keys in j and logs the outcome. */
int job_run_engine(struct job *j);

#endif
