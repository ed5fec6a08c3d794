/*
 * The conversion loop. This is the one place that orders writes and
 * flushes; see WRITE ORDER in engine.c (above commit_step) and the
 * recovery argument in docs/format.md.
 */
#ifndef LUKSIPC_ENGINE_H
#define LUKSIPC_ENGINE_H

#include <stdint.h>

#include "dev.h"
#include "geometry.h"
#include "progress.h"
#include "state.h"
#include "usedmap.h"
#include "xts.h"

/* Crypt threads at most: one per online CPU up to this, or as LUKSIPC_CRYPT_THREADS asks. */
#define ENGINE_THREADS_MAX 4

struct pipeline;

struct engine {
	struct dev *dev;
	struct state *state;
	const struct geometry *geo;
	struct xts *enc;              /* new volume key, or NULL: --decrypt (the output is plaintext) */
	struct xts *dec;              /* old volume key (LUKS to LUKS), or NULL */
	struct dev *readdev;          /* --readdev: plaintext source, or NULL */
	const uint8_t *header_image;  /* geo->header_size bytes (header_len when detached), written last */
	struct dev *header_dev;       /* a detached header's file or partition, or NULL: the header goes at [0, H);
	                                 with header_image NULL (--decrypt) it is overwritten with zeros instead */
	uint64_t header_len;          /* with header_dev: the header's size */
	struct progress *progress;
	unsigned threads;             /* crypt threads, 1 to ENGINE_THREADS_MAX; 0: one per online CPU */
	const struct usedmap *map;    /* --used-only: read only what it counts as used, or NULL */
	int wipe;                     /* with map: write every free byte too (ciphertext of zeros) */
	uint64_t marker_off;          /* the device-side marker (src/marker.h), overwritten after the header; 0: none */
	struct usedmap_cursor work;   /* --used-only without wipe: progress counts the used bytes converted */
	struct pipeline *pipe;        /* started by engine_prefetch, or NULL */
};

/*
 * Evidence (docs/format.md): samples of the device that tie a record to
 * what is on it. These read d and need from s only its evidence key.
 */

/*
 * The record that starts a conversion on d: frontier P, evidence of the
 * first source (of the highest used bytes when s holds a map).
 */
int engine_first_record(struct dev *d, const struct state *s, const struct geometry *g, struct state_rec *ret);
/*
 * Checks that d holds what ev says: keyed evidence ("ahead") only when s
 * has the evidence key (never in status), else it passes; plain SHA-256
 * otherwise. 0, -ESTALE (mismatch), -errno.
 */
int engine_check_evidence(struct dev *d, const struct state *s, const struct evidence *ev, int keyed);
/*
 * Checks that d holds what the current record s->rec says (the source of
 * the next step still intact, the output of the last step in place).
 * 0, -ESTALE (mismatch: stale, replayed or foreign state), -errno.
 */
int engine_verify(struct dev *d, const struct state *s);

/*
 * The lifecycle: engine_prefetch (optional), then engine_run, which takes
 * over or stops what engine_prefetch started; engine_cancel only when
 * engine_run is not reached. One owner calls them (job.c).
 *
 * engine_prefetch starts reading (and encrypting, with e->enc and e->dec)
 * the steps below frontier f before the state store exists, so that the
 * first steps are ready when engine_run starts writing. Only reads the
 * device. Needs e->dev, e->geo, e->enc, e->dec, e->readdev and e->state
 * with its evidence key (state_set_evidence_key), which must not change
 * until engine_run or engine_cancel. 0, -EBUSY (already started), -errno
 * (then nothing was started).
 */
int engine_prefetch(struct engine *e, uint64_t f);
/* Stops and frees what engine_prefetch started, if anything. */
void engine_cancel(struct engine *e);

/*
 * Converts from the current record to the end and commits PHASE_DONE.
 * Nothing engine_prefetch started is left running after it. 0; -EINTR
 * when interrupted (after a committed step); -errno on I/O failure (the
 * state stays consistent: rerunning resumes).
 */
int engine_run(struct engine *e);

#endif
