/* The step loop: read, encrypt, write, flush, record, flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "luksipc.h"
#include "testhooks.h"

/*
 * Evidence is a sample, not the whole step: the top EVIDENCE_MAX bytes of the
 * next source and the first EVIDENCE_MAX bytes of the last output. That is
 * enough for the argument in docs/format.md: anything a later step writes
 * below a stale frontier is a range ending at that frontier, so it always
 * hits the top of the ahead region. Hashing whole steps cost more time than
 * the I/O itself.
 */
#define EVIDENCE_MAX (1024 * 1024)
#define RING 3 /* step buffers: one being written, up to two read ahead */
#define QUEUE 8 /* written steps waiting for their flush and record */
#define PARTS 8     /* pieces a step is encrypted in, taken by whichever crypt thread is free */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Evidence for the source [a, f) of a step whose bytes are in buf. */
static void source_evidence(const struct state *s, const struct geometry *g, const uint8_t *buf, uint64_t a, uint64_t f,
			    struct evidence *ev)
{
	uint64_t len = min_u64(f - a, EVIDENCE_MAX);

	ev->off = g->src_offset + f - len;
	ev->len = len;
	state_evidence_mac(s, buf + (f - a - len), len, ev->sha256);
}

/*
 * Evidence for the output of [a, f) in buf: its first bytes, at H + a; with
 * runs (--used-only), the first bytes of the lowest run written, or none
 * when the step writes nothing.
 */
static void output_evidence(const struct geometry *g, const uint8_t *buf, uint64_t a, uint64_t f, const struct usedmap_extent *runs,
			    size_t nruns, struct evidence *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (runs && nruns == 0)
		return;
	if (runs) {
		buf += runs[0].start - a;
		a = runs[0].start;
		f = runs[0].end;
	}
	ev->off = g->header_size + a;
	ev->len = min_u64(f - a, EVIDENCE_MAX);
	SHA256(buf, ev->len, ev->sha256);
}

/*
 * --used-only: the evidence ahead of frontier f is the highest used bytes
 * below f, at most EVIDENCE_MAX of them in one extent (docs/format.md,
 * "--used-only"): if a later step overwrote any used byte below f, it
 * overwrote those. None (length 0) when nothing below f is used.
 */
static int used_evidence(struct dev *d, const struct state *s, const struct geometry *g, const struct usedmap *m, uint64_t f,
			 struct evidence *ev)
{
	struct usedmap_extent w;
	uint8_t *buf;
	int r;

	memset(ev, 0, sizeof(*ev));
	if (!usedmap_top_below(m, f, EVIDENCE_MAX, &w))
		return 0;
	buf = malloc(w.end - w.start);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(d, buf, w.end - w.start, g->src_offset + w.start);
	if (r == 0) {
		ev->off = g->src_offset + w.start;
		ev->len = w.end - w.start;
		state_evidence_mac(s, buf, ev->len, ev->sha256);
	}
	free(buf);
	return r;
}

int engine_first_record(struct dev *d, const struct state *s, const struct geometry *g, struct state_rec *ret)
{
	uint64_t p = g->data_size;
	uint64_t len = min_u64(p - geometry_step_start(g, p), EVIDENCE_MAX);
	uint8_t *buf;
	int r;

	memset(ret, 0, sizeof(*ret));
	ret->phase = PHASE_CONVERTING;
	ret->frontier = p;
	ret->time = (uint64_t)time(NULL);
	if (s->have_map)
		return used_evidence(d, s, g, &s->map, p, &ret->ahead);
	if (g->forward) /* the first step's source is the payload's start */
		len = min_u64(min_u64(g->step_size, p), EVIDENCE_MAX);
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(d, buf, len, g->src_offset + (g->forward ? 0 : p - len));
	if (r == 0 && g->forward) {
		ret->ahead.off = g->src_offset;
		ret->ahead.len = len;
		state_evidence_mac(s, buf, len, ret->ahead.sha256);
	} else if (r == 0) {
		source_evidence(s, g, buf, p - len, p, &ret->ahead);
	}
	free(buf);
	return r;
}

int engine_check_evidence(struct dev *d, const struct state *s, const struct evidence *ev, int keyed)
{
	uint8_t sum[32];
	uint8_t *buf;
	int r;

	if (ev->len == 0 || (keyed && !s->have_ev_key))
		return 0;
	if (ev->len > EVIDENCE_MAX || ev->len > d->size || ev->off > d->size - ev->len)
		return -ESTALE;
	buf = malloc(ev->len);
	if (!buf)
		return -ENOMEM;
	r = dev_pread_full(d, buf, ev->len, ev->off);
	if (r == 0) {
		if (keyed)
			state_evidence_mac(s, buf, ev->len, sum);
		else
			SHA256(buf, ev->len, sum);
		r = CRYPTO_memcmp(sum, ev->sha256, 32) == 0 ? 0 : -ESTALE;
	}
	free(buf);
	return r;
}

int engine_verify(struct dev *d, const struct state *s)
{
	int r = engine_check_evidence(d, s, &s->rec.ahead, 1);

	return r < 0 ? r : engine_check_evidence(d, s, &s->rec.behind, 0);
}

/*
 * The pipeline. A reader thread reads each step's source into a ring
 * buffer and takes its evidence; crypt threads (e->threads, else one per
 * CPU, at most ENGINE_THREADS_MAX) encrypt it, taking its PARTS pieces as
 * they come free; the main thread writes, and a committer thread flushes
 * and records. Reads may run ahead of writes because a step's output lies
 * above its own source and above every lower source (geometry.h), and the
 * reader has finished reading step j before the main thread can write step
 * j + 1, the first step whose output may cover step j's source.
 */
enum slot_state { SLOT_FREE, SLOT_READ, SLOT_READY };

struct slot {
	uint8_t *buf;
	uint8_t *raw; /* journal mode: the source as read, for the journal */
	uint64_t a, f;
	struct evidence src; /* evidence of the source, taken before encryption */
	struct evidence out; /* evidence of the output, taken after it */
	/* --used-only: the runs of [a, f) read (used) and written (used here or H above) */
	struct usedmap_extent *rd, *wr;
	size_t nrd, nwr;
	unsigned seq; /* the step's number in this run: which step the slot holds */
	unsigned next_part; /* the next piece a crypt thread may take */
	unsigned parts; /* pieces encrypted */
	int state;
	int err;
};

/* A written step whose output still has to be flushed and recorded. */
struct commit {
	uint64_t a;
	struct evidence ahead, behind;
};

/* Seconds each stage spent working or waiting, for the debug log. */
struct stage_times {
	double read, crypt, write, write_wait, commit;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct pipeline;

/* A crypt thread: its own contexts (OpenSSL's are not shared between threads). */
struct crypt_worker {
	struct pipeline *p;
	unsigned index;
	struct xts *enc, *dec;
	double busy;
	pthread_t thread;
	int started;
};

struct pipeline {
	struct engine *e;
	struct stage_times t; /* each field written by one thread only */
	struct crypt_worker crypt[ENGINE_THREADS_MAX];
	unsigned ncrypt;
	unsigned active; /* crypt threads allowed to work: fewer while the header is made */
	int last_taken;  /* the last piece of the last step is taken: no more work */
	struct slot slot[RING];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	uint64_t start; /* frontier where the reader begins */
	struct evidence ev_cache; /* --used-only: the last evidence read outside its step */
	pthread_t reader;
	int have_reader;
	/* the committer thread's queue, in step order */
	struct commit queue[QUEUE];
	unsigned q_head, q_tail;
	int q_closed;
	uint64_t durable; /* frontier of the newest durable record */
	int commit_err;
};

static void slot_set(struct pipeline *p, struct slot *s, int state, int err)
{
	pthread_mutex_lock(&p->lock);
	s->state = state;
	s->err = err;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Waits until slot s reaches state (or a reader error). Returns its error. */
static int slot_wait(struct pipeline *p, struct slot *s, int state)
{
	int err;

	pthread_mutex_lock(&p->lock);
	while (s->state < state && !s->err)
		pthread_cond_wait(&p->cond, &p->lock);
	err = s->err;
	pthread_mutex_unlock(&p->lock);
	return err;
}

/*
 * Payload [a, f) in buf becomes new ciphertext; raw says buf holds the
 * bytes of the device (old ciphertext, to decrypt first when there is an old
 * key), not plaintext read through --readdev.
 */
static int transform(struct xts *enc, struct xts *dec, uint8_t *buf, uint64_t a, uint64_t f, int raw)
{
	int r = raw && dec ? xts_crypt(dec, buf, f - a, a) : 0;

	/* no new key: --decrypt, the output is the plaintext */
	return r < 0 || !enc ? r : xts_crypt(enc, buf, f - a, a);
}

/*
 * --readdev: the plaintext of [a, f) comes from the mapping; the evidence
 * (and, journaled, the copy for the journal) still from the raw device.
 */
static int read_through(struct engine *e, struct slot *s, uint64_t a, uint64_t f)
{
	uint64_t len = min_u64(f - a, EVIDENCE_MAX);
	uint8_t *tmp = s->raw ? s->raw : malloc(len);
	int r = tmp ? 0 : -ENOMEM;

	if (r == 0)
		r = dev_pread_full(e->readdev, s->buf, f - a, a);
	if (r == 0 && s->raw)
		r = dev_pread_full(e->dev, s->raw, f - a, e->geo->src_offset + a);
	else if (r == 0)
		r = dev_pread_full(e->dev, tmp, len, e->geo->src_offset + f - len);
	if (r == 0) {
		s->src.off = e->geo->src_offset + f - len;
		s->src.len = len;
		state_evidence_mac(e->state, s->raw ? s->raw + (f - a - len) : tmp, len, s->src.sha256);
	}
	if (tmp != s->raw)
		free(tmp);
	return r;
}

/* Transforms the runs of a step that lie in [lo, hi). */
static int transform_runs(struct xts *enc, struct xts *dec, const struct slot *s, uint64_t lo, uint64_t hi, int raw)
{
	int r = 0;

	for (size_t i = 0; i < s->nwr && r == 0; i++) {
		uint64_t x = s->wr[i].start > lo ? s->wr[i].start : lo;
		uint64_t y = s->wr[i].end < hi ? s->wr[i].end : hi;

		if (x < y)
			r = transform(enc, dec, s->buf + (x - s->a), x, y, raw);
	}
	return r;
}

/*
 * --used-only: reads the used runs of [a, f) into the slot, zeroes the rest
 * (a free byte that must be overwritten becomes ciphertext of zeros), and
 * takes the evidence of the highest used bytes below f, from the buffer
 * when they lie in this step.
 */
static int read_used(struct pipeline *p, struct slot *s, uint64_t a, uint64_t f)
{
	struct engine *e = p->e;
	const struct geometry *g = e->geo;
	size_t cap = (size_t)(g->step_size / USEDMAP_UNIT + 2);
	struct usedmap_extent w;
	uint64_t pos = a;
	int r = 0;

	s->nrd = usedmap_runs(e->map, a, f, 0, s->rd, cap);
	if (e->wipe) {
		s->wr[0].start = a;
		s->wr[0].end = f;
		s->nwr = 1;
	} else {
		s->nwr = usedmap_runs(e->map, a, f, g->header_size - g->src_offset, s->wr, cap);
	}
	for (size_t i = 0; i < s->nrd && r == 0; i++) {
		memset(s->buf + (pos - a), 0, s->rd[i].start - pos);
		r = dev_pread_full(e->dev, s->buf + (s->rd[i].start - a), s->rd[i].end - s->rd[i].start, g->src_offset + s->rd[i].start);
		pos = s->rd[i].end;
	}
	if (r < 0)
		return r;
	memset(s->buf + (pos - a), 0, f - pos);
	if (!usedmap_top_below(e->map, f, EVIDENCE_MAX, &w)) {
		memset(&s->src, 0, sizeof(s->src));
	} else if (w.start >= a) {
		s->src.off = g->src_offset + w.start;
		s->src.len = w.end - w.start;
		state_evidence_mac(e->state, s->buf + (w.start - a), s->src.len, s->src.sha256);
	} else if (p->ev_cache.len && p->ev_cache.off == g->src_offset + w.start && p->ev_cache.len == w.end - w.start) {
		/* the same bytes as for the step above: nothing wrote below its frontier since */
		s->src = p->ev_cache;
	} else {
		r = used_evidence(e->dev, e->state, g, e->map, f, &s->src);
		p->ev_cache = s->src;
	}
	return r;
}

static void *reader_main(void *arg)
{
	struct pipeline *p = arg;
	struct engine *e = p->e;
	uint64_t f = p->start;

	for (unsigned j = 0; f > 0; j++) {
		struct slot *s = &p->slot[j % RING];
		uint64_t a = geometry_step_start(e->geo, f);
		double t0;
		int r, stop;

		pthread_mutex_lock(&p->lock);
		while (s->state != SLOT_FREE && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		stop = p->stop;
		s->seq = j;
		s->next_part = 0;
		s->parts = 0;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		s->a = a;
		s->f = f;
		t0 = now_s();
		if (e->map)
			r = read_used(p, s, a, f);
		else
			r = e->readdev ? read_through(e, s, a, f) : dev_pread_full(e->dev, s->buf, f - a, e->geo->src_offset + a);
		if (r == 0 && !e->readdev && !e->map)
			source_evidence(e->state, e->geo, s->buf, a, f, &s->src);
		if (r == 0 && s->raw && !e->readdev)
			memcpy(s->raw, s->buf, f - a);
		p->t.read += now_s() - t0;
		slot_set(p, s, SLOT_READ, r);
		if (r < 0)
			break;
		f = a;
	}
	return NULL;
}

/*
 * The crypt threads encrypt each step once the reader has read it. A step
 * is cut into PARTS pieces (on 4 KiB, so on sector boundaries); a free
 * thread takes the next piece of the oldest step read, so threads share the
 * work whatever their number and however the scheduler treats them, and
 * the reader goes straight on to the next read. The thread that finishes a
 * step's last piece takes the output's evidence and hands the step to the
 * writer. Threads numbered p->active and up wait (see engine_prefetch).
 */

/* The slot with the oldest step that has a piece left, or NULL. Under the lock. */
static struct slot *next_work(struct pipeline *p)
{
	struct slot *best = NULL;

	for (int i = 0; i < RING; i++) {
		struct slot *s = &p->slot[i];

		if (s->state == SLOT_READ && !s->err && s->next_part < PARTS && (!best || s->seq < best->seq))
			best = s;
	}
	return best;
}

static void *crypt_main(void *arg)
{
	struct crypt_worker *w = arg;
	struct pipeline *p = w->p;
	struct engine *e = p->e;

	for (;;) {
		struct slot *s = NULL;
		uint64_t a, f, part, lo, hi;
		unsigned k;
		double t0;
		int r, last;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && !p->last_taken && (w->index >= p->active || !(s = next_work(p))))
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop || !s) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		/* copies: once the step is handed on, the slot is refilled */
		a = s->a;
		f = s->f;
		k = s->next_part++;
		if (a == 0 && k == PARTS - 1)
			p->last_taken = 1;
		pthread_mutex_unlock(&p->lock);
		t0 = now_s();
		part = (f - a) / PARTS / DEV_ALIGN * DEV_ALIGN;
		lo = a + k * part;
		hi = k == PARTS - 1 ? f : lo + part;
		if (e->map)
			r = transform_runs(w->enc, w->dec, s, lo, hi, 1);
		else
			r = lo < hi ? transform(w->enc, w->dec, s->buf + (lo - a), lo, hi, !e->readdev) : 0;
		/* An error is recorded before the count, so the last one sees it. */
		pthread_mutex_lock(&p->lock);
		if (r < 0 && !s->err)
			s->err = r;
		last = ++s->parts == PARTS && !s->err;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (last) {
			output_evidence(e->geo, s->buf, a, f, e->map ? s->wr : NULL, s->nwr, &s->out);
			slot_set(p, s, SLOT_READY, 0);
		}
		w->busy += now_s() - t0;
	}
	return NULL;
}

/*
 * WRITE ORDER, the crash-safety argument (docs/format.md, "The order of
 * writes"). For every step [a, f):
 *   1. write its output to [H + a, H + f)            (write_step)
 *   2. flush the device, so the output is durable    (commit_step)
 *   3. commit the record "frontier = a" and flush it (commit_step)
 * and a step's output is written only once the durable frontier is at or
 * below geometry_write_limit(a): every source that output overlaps is then
 * converted and recorded. With S = H that is the previous step's record, so
 * the steps run strictly one after the other (the default S = min(H, 16 MiB)
 * is H for the default header sizes). With S = H/m (--step-size H/2, or
 * the default 16 MiB under a 32 MiB header) up to m steps can be in
 * flight: the main thread writes step k while the committer thread flushes
 * and records step k - 1. A crash leaves the newest durable record in
 * force; every write after it went to a region that record no longer needs
 * (output of converted sources), and the sources of the steps after it are
 * untouched, so resuming redoes them.
 * Only the main thread writes payload; only the committer (or, serially,
 * the main thread) writes records.
 */
/*
 * Makes a written step durable and records it: flush the device, then
 * commit "frontier = a" to the state store and flush it. Nothing else
 * records progress.
 */
static int commit_step(struct engine *e, const struct commit *c)
{
	struct state_rec rec;
	int r = dev_flush(e->dev);

	if (r < 0)
		return r;
	memset(&rec, 0, sizeof(rec));
	rec.phase = PHASE_CONVERTING;
	rec.frontier = c->a;
	rec.ahead = c->ahead;
	rec.behind = c->behind;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

/*
 * Writes the output of [a, f) and fills in the commit that will record it.
 * behind is the output's evidence if already taken (the crypt thread takes
 * it, off the writer's path), else NULL. With runs (--used-only), only
 * those parts of [a, f) are written.
 */
static int write_step(struct engine *e, const uint8_t *buf, uint64_t a, uint64_t f, const struct usedmap_extent *runs, size_t nruns,
		      const struct evidence *ahead, const struct evidence *behind, struct commit *ret)
{
	int r = 0;

	if (!runs)
		r = dev_pwrite_full(e->dev, buf, f - a, e->geo->header_size + a);
	for (size_t i = 0; runs && i < nruns && r == 0; i++)
		r = dev_pwrite_full(e->dev, buf + (runs[i].start - a), runs[i].end - runs[i].start, e->geo->header_size + runs[i].start);

	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->a = a;
	if (ahead)
		ret->ahead = *ahead;
	if (behind)
		ret->behind = *behind;
	else
		output_evidence(e->geo, buf, a, f, runs, nruns, &ret->behind);
	return 0;
}

/* The serial form: write, flush, record. */
static int write_output(struct engine *e, const uint8_t *buf, uint64_t a, uint64_t f, const struct evidence *ahead)
{
	struct commit c;
	int r = write_step(e, buf, a, f, NULL, 0, ahead, NULL, &c);

	return r < 0 ? r : commit_step(e, &c);
}

/*
 * Journal mode (output overlapping its own source): before step 1 above, a
 * copy of the step goes to the journal on the state store, is flushed, and
 * a record naming it (with its SHA-256) is committed. A crash while the
 * output is being written then leaves the step redoable from the journal.
 * The journal never holds plaintext: LUKS to LUKS journals the source (old
 * ciphertext), and the resume transforms it again; plaintext to LUKS (a
 * detached header, H = 0) journals the output (new ciphertext), and the
 * resume writes it as it is.
 */
static int journal_output(const struct engine *e)
{
	return e->dec == NULL;
}

static int journal_step(struct engine *e, const struct slot *s, const struct evidence *ahead)
{
	struct state_rec rec = e->state->rec;
	const uint8_t *copy = journal_output(e) ? s->buf : s->raw;
	int r = state_write_journal(e->state, copy, s->f - s->a);

	if (r < 0)
		return r;
	rec.journal_a = s->a;
	rec.journal_f = s->f;
	SHA256(copy, s->f - s->a, rec.journal_sha256);
	memset(&rec.ahead, 0, sizeof(rec.ahead));
	if (ahead)
		rec.ahead = *ahead;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

static int engine_step(struct engine *e, const struct slot *s, const struct evidence *ahead)
{
	if (e->geo->journal) {
		int r = journal_step(e, s, ahead);
		if (r < 0)
			return r;
	}
	return write_output(e, s->buf, s->a, s->f, ahead);
}

/* Resume inside a journaled step: redo it from the journal's copy. */
static int replay_journal(struct engine *e)
{
	struct state_rec rec = e->state->rec;
	uint64_t a = rec.journal_a, f = rec.journal_f;
	uint8_t *buf = dev_buf_alloc(e->geo->step_size);
	int r = buf ? 0 : -ENOMEM;

	if (r == 0 && f - a > e->geo->step_size)
		r = -EBADMSG;
	if (r == 0)
		r = state_read_journal(e->state, buf);
	if (r == 0 && !journal_output(e))
		r = transform(e->enc, e->dec, buf, a, f, 1);
	if (r == 0)
		r = write_output(e, buf, a, f, rec.ahead.len ? &rec.ahead : NULL);
	free(buf);
	return r;
}

/*
 * The device-side marker and the payload's few bytes above it, [marker,
 * H + (N - H) rounded down to a sector): ciphertext of zeros, so that the
 * data area holds no marker and no plaintext once the header is there.
 */
static int wipe_marker(struct engine *e)
{
	const struct geometry *g = e->geo;
	uint64_t end = g->header_size + (g->device_size - g->header_size) / g->sector_size * g->sector_size;
	uint64_t len = end > e->marker_off ? end - e->marker_off : 0;
	uint8_t *buf;
	int r;

	if (!len || len > 2 * 4096)
		return -EINVAL;
	buf = dev_buf_alloc(len);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0, len);
	r = transform(e->enc, NULL, buf, e->marker_off - g->header_size, end - g->header_size, 0);
	if (r == 0)
		r = dev_pwrite_full(e->dev, buf, len, e->marker_off);
	free(buf);
	if (r == 0)
		r = dev_flush(e->dev);
	if (r == 0)
		log_debug("in-progress marker overwritten");
	return r;
}

/*
 * After the last step: the header image goes over [0, H), which now holds
 * only payload that has been moved (detached: to the header's own file or
 * partition, flushed there); then the marker is overwritten. Then the
 * record says done. A crash before "done" is durable makes the resume
 * write the same header (and marker, and its overwrite) again.
 */
/* The new header, flushed: over [0, H) of the device, or to a detached header's file or partition. */
static int write_header(struct engine *e)
{
	int r;

	if (e->header_dev && !e->header_image) { /* --decrypt: the old header goes, its keyslots with it */
		uint8_t *zeros = dev_buf_alloc(e->header_len);

		if (!zeros)
			return -ENOMEM;
		memset(zeros, 0, e->header_len);
		r = dev_pwrite_full(e->header_dev, zeros, e->header_len, 0);
		free(zeros);
		return r < 0 ? r : dev_flush(e->header_dev);
	}
	if (e->header_dev) {
		r = dev_pwrite_full(e->header_dev, e->header_image, e->header_len, 0);
		return r < 0 ? r : dev_flush(e->header_dev);
	}
	r = dev_pwrite_full(e->dev, e->header_image, e->geo->header_size, 0);
	return r < 0 ? r : dev_flush(e->dev);
}

static int forward_wipe_tail(struct engine *e);

static int engine_finish(struct engine *e)
{
	struct state_rec rec = e->state->rec;
	int r;

	progress_header(e->progress);
	r = e->geo->forward ? forward_wipe_tail(e) : write_header(e);
	if (r == 0 && e->geo->forward && e->header_dev) /* --reencrypt --header: the new detached header, last */
		r = write_header(e);
	if (r == 0 && e->marker_off)
		r = wipe_marker(e);
	if (r < 0)
		return r;
	log_debug("LUKS header written");
	/* lets the QEMU tests cut the power between the header and "done" */
	test_hook_delay(TEST_DELAY_HEADER);
	rec.phase = PHASE_DONE;
	rec.time = (uint64_t)time(NULL);
	return state_commit(e->state, &rec);
}

static void *committer_main(void *arg)
{
	struct pipeline *p = arg;

	for (;;) {
		struct commit c;
		double t0;
		int r;

		pthread_mutex_lock(&p->lock);
		while (p->q_head == p->q_tail && !p->q_closed)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->q_head == p->q_tail) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		c = p->queue[p->q_head % QUEUE];
		pthread_mutex_unlock(&p->lock);
		t0 = now_s();
		r = commit_step(p->e, &c);
		p->t.commit += now_s() - t0;
		pthread_mutex_lock(&p->lock);
		if (r < 0)
			p->commit_err = r;
		else {
			p->durable = c.a;
			p->q_head++;
		}
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (r < 0)
			break;
	}
	return NULL;
}

/* Pipelined step: write once allowed, hand the flush and record to the committer. */
static int pipelined_step(struct pipeline *p, const struct slot *s, const struct evidence *ahead)
{
	struct engine *e = p->e;
	uint64_t limit = geometry_write_limit(e->geo, s->a);
	struct commit c;
	int r;

	pthread_mutex_lock(&p->lock);
	while (!p->commit_err && p->durable > limit)
		pthread_cond_wait(&p->cond, &p->lock);
	r = p->commit_err;
	pthread_mutex_unlock(&p->lock);
	if (r == 0) {
		double t0 = now_s();
		r = write_step(e, s->buf, s->a, s->f, e->map ? s->wr : NULL, s->nwr, ahead, &s->out, &c);
		p->t.write += now_s() - t0;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	while (!p->commit_err && p->q_tail - p->q_head >= QUEUE)
		pthread_cond_wait(&p->cond, &p->lock);
	p->queue[p->q_tail++ % QUEUE] = c;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Waits until every queued step is recorded (or the committer failed). */
static int drain_commits(struct pipeline *p)
{
	int r;

	pthread_mutex_lock(&p->lock);
	p->q_closed = 1;
	pthread_cond_broadcast(&p->cond);
	while (!p->commit_err && p->q_head != p->q_tail)
		pthread_cond_wait(&p->cond, &p->lock);
	r = p->commit_err;
	pthread_mutex_unlock(&p->lock);
	return r;
}

static uint64_t durable_frontier(struct pipeline *p)
{
	uint64_t f;

	pthread_mutex_lock(&p->lock);
	f = p->durable;
	pthread_mutex_unlock(&p->lock);
	return f;
}

/* The main thread's side of the pipeline: the writes, in order. */
/*
 * Progress in units of work. The whole payload is read and written, so work
 * is position; --used-only (without wipe) reads and writes in proportion
 * to the used bytes, so work is the used bytes at or above the frontier,
 * of all the map counts (an ETA by position would run fast through empty
 * steps and stall in full ones).
 */
static int work_by_use(const struct engine *e)
{
	return e->map && !e->wipe && e->map->used > 0;
}

static uint64_t work_total(const struct engine *e)
{
	return work_by_use(e) ? e->map->used : e->geo->data_size;
}

static uint64_t work_done(struct engine *e, uint64_t f)
{
	return work_by_use(e) ? usedmap_used_from(e->map, &e->work, f) : e->geo->data_size - f;
}

static int write_steps(struct pipeline *p)
{
	struct engine *e = p->e;
	uint64_t f = p->start;

	for (unsigned j = 0; f > 0; j++) {
		struct slot *s = &p->slot[j % RING], *next = &p->slot[(j + 1) % RING];
		const struct evidence *ahead = NULL;
		double t0 = now_s();
		int r = slot_wait(p, s, SLOT_READY);

		if (r == 0 && s->a > 0 && (r = slot_wait(p, next, SLOT_READ)) == 0)
			ahead = &next->src;
		p->t.write_wait += now_s() - t0;
		if (r == 0)
			r = e->geo->journal ? engine_step(e, s, ahead) : pipelined_step(p, s, ahead);
		if (r < 0)
			return r;
		f = s->a;
		slot_set(p, s, SLOT_FREE, 0);
		progress_update(e->progress, work_done(e, e->geo->journal ? f : durable_frontier(p)), 0);
		test_hook_delay(TEST_DELAY_STEP);
		if (interrupted && f > 0)
			return -EINTR;
	}
	return 0;
}

/* Stops and joins the reader and the crypt threads that were started. */
static void stop_reader(struct pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->have_reader)
		pthread_join(p->reader, NULL);
	p->have_reader = 0;
	for (unsigned i = 0; i < p->ncrypt; i++) {
		if (p->crypt[i].started)
			pthread_join(p->crypt[i].thread, NULL);
		p->crypt[i].started = 0;
		p->t.crypt += p->crypt[i].busy;
		p->crypt[i].busy = 0;
	}
}

/* e->threads crypt threads, else one per CPU, at most ENGINE_THREADS_MAX; contexts duplicated from e's. */
static int start_crypt(struct pipeline *p)
{
	struct engine *e = p->e;
	long cpus = e->threads ? (long)e->threads : sysconf(_SC_NPROCESSORS_ONLN);
	int r = 0;

	p->ncrypt = cpus < 1 ? 1 : cpus > ENGINE_THREADS_MAX ? ENGINE_THREADS_MAX : (unsigned)cpus;
	p->active = p->ncrypt;
	for (unsigned i = 0; i < p->ncrypt && r == 0; i++) {
		struct crypt_worker *w = &p->crypt[i];

		w->p = p;
		w->index = i;
		w->enc = i ? NULL : e->enc;
		w->dec = i ? NULL : e->dec;
		if (i > 0 && e->enc)
			r = xts_dup(&w->enc, e->enc);
		if (i > 0 && r == 0 && e->dec)
			r = xts_dup(&w->dec, e->dec);
	}
	for (unsigned i = 0; i < p->ncrypt && r == 0; i++) {
		if (pthread_create(&p->crypt[i].thread, NULL, crypt_main, &p->crypt[i]) != 0)
			r = -EAGAIN;
		else
			p->crypt[i].started = 1;
	}
	return r;
}

static void free_crypt(struct pipeline *p)
{
	for (unsigned i = 1; i < p->ncrypt; i++) {
		xts_free(p->crypt[i].enc);
		xts_free(p->crypt[i].dec);
	}
}

static void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	stop_reader(p);
	free_crypt(p);
	for (int i = 0; i < RING; i++) {
		free(p->slot[i].buf);
		free(p->slot[i].raw);
		free(p->slot[i].rd);
		free(p->slot[i].wr);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Allocates the ring and starts the reader and crypt threads at frontier f. */
static int pipeline_start(struct engine *e, uint64_t f, struct pipeline **ret)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	int r = 0;

	if (!p)
		return -ENOMEM;
	p->e = e;
	p->start = f;
	p->durable = f;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (int i = 0; i < RING && r == 0; i++) {
		if (!(p->slot[i].buf = dev_buf_alloc(e->geo->step_size)))
			r = -ENOMEM;
		else if (e->geo->journal && !journal_output(e) && !(p->slot[i].raw = dev_buf_alloc(e->geo->step_size)))
			r = -ENOMEM;
		else if (e->map && (!(p->slot[i].rd = calloc(e->geo->step_size / USEDMAP_UNIT + 2, sizeof(struct usedmap_extent))) ||
				    !(p->slot[i].wr = calloc(e->geo->step_size / USEDMAP_UNIT + 2, sizeof(struct usedmap_extent)))))
			r = -ENOMEM;
	}
	if (r == 0 && pthread_create(&p->reader, NULL, reader_main, p) != 0)
		r = -EAGAIN;
	else if (r == 0)
		p->have_reader = 1;
	if (r == 0)
		r = start_crypt(p);
	if (r < 0) {
		pipeline_free(p);
		return r;
	}
	*ret = p;
	return 0;
}

/*
 * While the header is made (one busy thread of ours), one crypt thread
 * fewer works, so that making the header, which everything waits for,
 * keeps a CPU of its own. run_pipeline lets them all work.
 */
int engine_prefetch(struct engine *e, uint64_t f)
{
	int r;

	if (e->pipe)
		return -EBUSY;
	r = f > 0 ? pipeline_start(e, f, &e->pipe) : 0;
	if (r == 0 && e->pipe) {
		pthread_mutex_lock(&e->pipe->lock);
		e->pipe->active = e->pipe->ncrypt > 1 ? e->pipe->ncrypt - 1 : 1;
		pthread_mutex_unlock(&e->pipe->lock);
	}
	return r;
}

void engine_cancel(struct engine *e)
{
	pipeline_free(e->pipe);
	e->pipe = NULL;
}

/*
 * What engine_prefetch started, taken out of e: kept when this run starts
 * where it started reading (a fresh start), else stopped and NULL.
 */
static struct pipeline *take_read_ahead(struct engine *e)
{
	struct pipeline *p = e->pipe;
	const struct state_rec *rec = &e->state->rec;

	e->pipe = NULL;
	if (p && (rec->phase == PHASE_DONE || rec->journal_f || p->start != rec->frontier)) {
		pipeline_free(p);
		p = NULL;
	}
	return p;
}

/* The steps from frontier f, with p (taken and freed here) when it was read ahead. */
static int run_pipeline(struct engine *e, struct pipeline *p, uint64_t f)
{
	pthread_t committer;
	double t0 = now_s();
	int r = 0, rc;

	if (p)
		log_debug("the first steps were read ahead while the header and state store were made");
	else if ((r = pipeline_start(e, f, &p)) < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	p->active = p->ncrypt;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (pthread_create(&committer, NULL, committer_main, p) != 0) {
		pipeline_free(p);
		return -EAGAIN;
	}
	r = write_steps(p);
	/* Also after an error or an interrupt: record what was written. */
	rc = drain_commits(p);
	if (rc < 0 && (r == 0 || r == -EINTR))
		r = rc;
	pthread_join(committer, NULL);
	stop_reader(p);
	log_debug("pipeline: %.2f s; busy: read %.2f s, encrypt %.2f s (%u thread%s), write %.2f s, flush+record %.2f s; "
		  "writer waited for data %.2f s", now_s() - t0, p->t.read, p->t.crypt, p->ncrypt, p->ncrypt == 1 ? "" : "s",
		  p->t.write, p->t.commit, p->t.write_wait);
	pipeline_free(p);
	return r;
}

/*
 * The forward walk (geometry.h, forward; docs/format.md, "Decrypting a
 * header on the device"): --decrypt of a header on the device moves the
 * payload down by src_offset into the header's place. Serial, step by step,
 * so the crash-safety argument stays that of the serial form above:
 *   1. read the source [src + a, src + b) (read before the previous step's
 *      write: it lies above that output, b - a <= S <= src),
 *   2. decrypt it, write it to [a, b),
 *   3. flush, record "frontier = P - b" with the evidence of the next
 *      source's first bytes (keyed) and of this output's last bytes, flush.
 * The output [a, b) overwrites only sources of steps already recorded (and,
 * in the first steps, the old header, which the state store holds). A
 * crash leaves the newest record in force; the next step's source is
 * untouched until that step is recorded, so the resume redoes from there.
 * A stale record is caught by its ahead evidence: the outputs after it
 * cover [b, c) contiguously, so once any of them reaches the source region
 * at src + b, it has overwritten src + b itself.
 */
static int forward_evidence(struct engine *e, const uint8_t *buf, uint64_t src_off, uint64_t len, struct evidence *ev)
{
	ev->off = src_off;
	ev->len = min_u64(len, EVIDENCE_MAX);
	state_evidence_mac(e->state, buf, ev->len, ev->sha256);
	return 0;
}

/* After the last step: [P, N), the old ciphertext's tail and any keyslot the data did not cover, becomes zeros. */
static int forward_wipe_tail(struct engine *e)
{
	const struct geometry *g = e->geo;
	uint64_t off = g->data_size, len = g->device_size - off;
	uint8_t *zeros;
	int r = 0;

	if (len == 0)
		return 0;
	zeros = dev_buf_alloc(min_u64(len, g->step_size));
	if (!zeros)
		return -ENOMEM;
	memset(zeros, 0, min_u64(len, g->step_size));
	while (r == 0 && len > 0) {
		uint64_t n = min_u64(len, g->step_size);

		r = dev_pwrite_full(e->dev, zeros, n, off);
		off += n;
		len -= n;
	}
	free(zeros);
	return r < 0 ? r : dev_flush(e->dev);
}

static int forward_steps(struct engine *e)
{
	const struct geometry *g = e->geo;
	uint64_t p = g->data_size, s = g->step_size, f = e->state->rec.frontier, a = p - f;
	uint8_t *cur = dev_buf_alloc(s), *next = dev_buf_alloc(s);
	int r = cur && next ? 0 : -ENOMEM;

	if (r == 0 && (f > p || (a % s && f > 0)))
		r = -EBADMSG;
	if (r == 0 && a < p)
		r = dev_pread_full(e->dev, cur, min_u64(s, p - a), g->src_offset + a);
	while (r == 0 && a < p) {
		uint64_t b = min_u64(a + s, p);
		struct commit c;
		uint8_t *t;

		memset(&c, 0, sizeof(c));
		c.a = p - b;
		if (b < p) { /* the next source, before this output is written (it lies below) */
			r = dev_pread_full(e->dev, next, min_u64(s, p - b), g->src_offset + b);
			if (r == 0)
				r = forward_evidence(e, next, g->src_offset + b, min_u64(s, p - b), &c.ahead);
		}
		if (r == 0) /* --decrypt: no new key, the output is the plaintext */
			r = transform(e->enc, e->dec, cur, a, b, 1);
		if (r == 0) {
			c.behind.len = min_u64(b - a, EVIDENCE_MAX);
			c.behind.off = b - c.behind.len;
			SHA256(cur + (b - a - c.behind.len), c.behind.len, c.behind.sha256);
			r = dev_pwrite_full(e->dev, cur, b - a, a);
		}
		if (r == 0)
			r = commit_step(e, &c);
		if (r < 0)
			break;
		t = cur;
		cur = next;
		next = t;
		a = b;
		progress_update(e->progress, a, 0);
		test_hook_delay(TEST_DELAY_STEP);
		if (interrupted && a < p)
			r = -EINTR;
	}
	if (cur)
		explicit_bzero(cur, s);
	if (next)
		explicit_bzero(next, s);
	free(cur);
	free(next);
	return r;
}

int engine_run(struct engine *e)
{
	uint64_t f = e->state->rec.frontier;
	struct pipeline *ahead = take_read_ahead(e);
	int r;

	if (e->state->rec.phase == PHASE_DONE)
		return 0;
	log_debug("converting: %llu bytes left", (unsigned long long)f);
	memset(&e->work, 0, sizeof(e->work));
	progress_init(e->progress, work_total(e), work_done(e, f), e->progress->json, e->progress->quiet);
	progress_set_tail(e->progress, e->geo->forward ? e->geo->device_size - e->geo->data_size : e->geo->header_size);
	if (e->geo->forward) {
		pipeline_free(ahead);
		r = e->state->rec.journal_f ? -EBADMSG : forward_steps(e);
	} else {
		/* A journaled step is redone first (nothing was read ahead then). */
		r = e->state->rec.journal_f ? replay_journal(e) : 0;
		f = e->state->rec.frontier;
		if (r == 0 && f > 0)
			r = run_pipeline(e, ahead, f);
		else
			pipeline_free(ahead);
	}
	if (r == 0)
		r = engine_finish(e);
	if (r == 0)
		progress_done(e->progress);
	else if (r == -EINTR)
		progress_update(e->progress, work_done(e, e->state->rec.frontier), 1);
	return r;
}
