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

struct engine {
	struct dev *dev;
	struct state *state;
	const struct geometry *geo;
	struct xts *enc;              /* new volume key */
	struct xts *dec;              /* old volume key (LUKS to LUKS), or NULL */
	struct dev *readdev;          /* --readdev: plaintext source, or NULL */
	const uint8_t *header_image;  /* geo->header_size bytes, written last */
	struct progress *progress;
};

/* The record that starts a conversion: frontier P, evidence of the first source. */
int engine_first_record(struct engine *e, struct state_rec *ret);

/*
 * Checks that the device holds what the current record says (the source of
 * the next step still intact, the output of the last step in place).
 * 0, -ESTALE (mismatch: stale, replayed or foreign state), -errno.
 */
int engine_verify(struct engine *e);

/*
 * Converts from the current record to the end and commits PHASE_DONE.
 * 0; -EINTR when interrupted (after a committed step); -errno on I/O
 * failure (the state stays consistent: rerunning resumes).
 */
int engine_run(struct engine *e);

#endif
