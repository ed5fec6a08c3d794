/*
 * The conversion loop. This is the one place that orders writes and
 * flushes; see the comment above engine_step in engine.c and the recovery
 * argument in docs/format.md.
 */
#ifndef LUKSIPC_ENGINE_H
#define LUKSIPC_ENGINE_H

#include <stdint.h>

#include "dev.h"
#include "geometry.h"
#include "progress.h"
#include "state.h"
#include "xts.h"

struct pipeline;

struct engine {
	struct dev *dev;
	struct state *state;
	const struct geometry *geo;
	struct xts *enc;              /* new volume key */
	struct xts *dec;              /* old volume key (LUKS to LUKS), or NULL */
	struct dev *readdev;          /* --readdev: plaintext source, or NULL */
	const uint8_t *header_image;  /* geo->header_size bytes, written last */
	struct progress *progress;
	struct pipeline *pipe;        /* started by engine_prefetch, or NULL */
};

/* The record that starts a conversion: frontier P, evidence of the first source. */
int engine_first_record(struct engine *e, struct state_rec *ret);

/*
 * Checks that the device holds what the current record says (the source of
 * the next step still intact, the output of the last step in place). The
 * source only when the state has its evidence key (not in status).
 * 0, -ESTALE (mismatch: stale, replayed or foreign state), -errno.
 */
int engine_verify(struct engine *e);

/*
 * Starts reading (and encrypting, with e->enc and e->dec) the steps below
 * frontier f before the state store exists, so that the first steps are
 * ready when engine_run starts writing. Only reads the device. Needs e->dev,
 * e->geo, e->enc, e->dec, e->readdev and e->state with its evidence key
 * (state_set_evidence_key), which must not change until
 * engine_run or engine_cancel. 0 or -errno (then nothing was started).
 */
int engine_prefetch(struct engine *e, uint64_t f);
/* Stops and frees what engine_prefetch started, if anything. */
void engine_cancel(struct engine *e);

/*
 * Converts from the current record to the end and commits PHASE_DONE.
 * 0; -EINTR when interrupted (after a committed step); -errno on I/O
 * failure (the state stays consistent: rerunning resumes).
 */
int engine_run(struct engine *e);

#endif
