/* The step loop: read, encrypt, write, flush, record, flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "luksipc.h"

/* Reads the source of the step [a, a+len) and records its evidence. */
static int read_source(struct engine *e, uint8_t *buf, uint64_t a, uint64_t len, struct evidence *ev)
{
	int r = dev_pread_full(e->dev, buf, len, e->geo->src_offset + a);

	if (r < 0)
		return r;
	ev->off = e->geo->src_offset + a;
	ev->len = len;
	SHA256(buf, len, ev->sha256);
	return 0;
}

int engine_first_record(struct engine *e, struct state_rec *ret)
{
	uint64_t p = e->geo->data_size;
	uint64_t a = geometry_step_start(e->geo, p);
	uint8_t *buf = malloc(p - a);
	int r;

	if (!buf)
		return -ENOMEM;
	memset(ret, 0, sizeof(*ret));
	ret->phase = PHASE_CONVERTING;
	ret->frontier = p;
	ret->time = (uint64_t)time(NULL);
	r = read_source(e, buf, a, p - a, &ret->ahead);
	free(buf);
	return r;
}

static int check_evidence(struct engine *e, const struct evidence *ev)
{
	uint8_t sum[32];
	uint8_t *buf;
	int r;

	if (ev->len == 0)
		return 0;
	if (ev->off + ev->len > e->dev->size)
		return -ESTALE;
	buf = malloc(ev->len);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(e->dev, buf, ev->len, ev->off);
	if (r == 0) {
		SHA256(buf, ev->len, sum);
		r = memcmp(sum, ev->sha256, 32) == 0 ? 0 : -ESTALE;
	}
	free(buf);
	return r;
}

int engine_verify(struct engine *e)
{
	int r = check_evidence(e, &e->state->rec.ahead);

	return r < 0 ? r : check_evidence(e, &e->state->rec.behind);
}

/*
 * One step: payload [a, f) moves from src_offset + a to H + a, encrypted.
 * cur holds its source (already read); nxt receives the next step's source.
 *
 * WRITE ORDER, the crash-safety argument (docs/format.md, "Recovery"):
 *   1. read the next step's source (reads may run ahead; they never
 *      conflict with this step's write, whose target lies above a + H);
 *   2. write this step's output to [H + a, H + f);
 *   3. flush the device, so the output is durable;
 *   4. commit the record "frontier = a" to the state store and flush it.
 * Only after 4 may the next step write: its output overlaps this step's
 * source, which the durable record now says is no longer needed. A crash
 * anywhere before 4 completes leaves the previous record in force and this
 * step's source untouched, so resuming simply redoes the step.
 */
static int engine_step(struct engine *e, uint8_t *cur, uint8_t *nxt, uint64_t a, uint64_t f)
{
	const struct geometry *g = e->geo;
	struct state_rec rec;
	int r;

	memset(&rec, 0, sizeof(rec));
	r = xts_crypt(e->enc, cur, f - a, a);
	if (r < 0)
		return r;
	if (a > 0) {
		uint64_t a2 = geometry_step_start(g, a);
		r = read_source(e, nxt, a2, a - a2, &rec.ahead);
		if (r < 0)
			return r;
	}
	r = dev_pwrite_full(e->dev, cur, f - a, g->header_size + a);
	if (r == 0)
		r = dev_flush(e->dev);
	if (r < 0)
		return r;
	rec.phase = PHASE_CONVERTING;
	rec.frontier = a;
	rec.behind.off = g->header_size + a;
	rec.behind.len = f - a;
	SHA256(cur, f - a, rec.behind.sha256);
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

/*
 * After the last step: the header image goes over [0, H), which now holds
 * only payload that has been moved. Then the record says done. A crash
 * before "done" is durable makes the resume write the same header again.
 */
static int engine_finish(struct engine *e)
{
	struct state_rec rec = e->state->rec;
	int r = dev_pwrite_full(e->dev, e->header_image, e->geo->header_size, 0);

	if (r == 0)
		r = dev_flush(e->dev);
	if (r < 0)
		return r;
	rec.phase = PHASE_DONE;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

int engine_run(struct engine *e)
{
	const struct geometry *g = e->geo;
	uint64_t f = e->state->rec.frontier;
	uint8_t *cur = NULL, *nxt = NULL, *tmp;
	int r = 0;

	if (e->state->rec.phase == PHASE_DONE)
		return 0;
	cur = malloc(g->step_size);
	nxt = malloc(g->step_size);
	if (!cur || !nxt) {
		r = -ENOMEM;
		goto out;
	}
	progress_init(e->progress, g->data_size, g->data_size - f, e->progress->json, e->progress->quiet);
	if (f > 0) {
		struct evidence ev;
		r = read_source(e, cur, geometry_step_start(g, f), f - geometry_step_start(g, f), &ev);
	}
	while (r == 0 && f > 0) {
		uint64_t a = geometry_step_start(g, f);
		r = engine_step(e, cur, nxt, a, f);
		if (r < 0)
			break;
		f = a;
		tmp = cur;
		cur = nxt;
		nxt = tmp;
		progress_update(e->progress, g->data_size - f, 0);
		dev_test_delay();
		if (interrupted && f > 0)
			r = -EINTR;
	}
	if (r == 0)
		r = engine_finish(e);
	if (r == 0)
		progress_done(e->progress);
	else if (r == -EINTR)
		progress_update(e->progress, g->data_size - f, 1);
out:
	free(cur);
	free(nxt);
	return r;
}
