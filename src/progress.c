/* Rate and ETA of this run, printed on stderr. */
#include <stdio.h>
#include <time.h>

#include "luksipc.h"
#include "progress.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, uint64_t total, uint64_t done, int json, int quiet)
{
	p->json = json;
	p->quiet = quiet;
	p->total = total;
	p->start_done = done;
	p->tail = 0;
	p->t_start = now();
	p->t_last = 0;
	p->samples = 0;
}

void progress_set_tail(struct progress *p, uint64_t tail)
{
	p->tail = tail;
}

/* Keeps (t, done) when at least 1/128 of the elapsed time passed since the last one. */
void progress_sample(struct progress *p, uint64_t done, double t)
{
	double elapsed = t - p->t_start;

	if (p->samples > 0 && t - p->sample_t[(p->samples - 1) % PROGRESS_SAMPLES] < elapsed / 128)
		return;
	p->sample_t[p->samples % PROGRESS_SAMPLES] = t;
	p->sample_done[p->samples % PROGRESS_SAMPLES] = done;
	p->samples++;
}

/*
 * Bytes per second over the second half of the time so far: that leaves out
 * the start (setup, a disk still busy with earlier writes) and follows a
 * device whose speed changes (the inner tracks of a disk are slower), while
 * on a steady device it equals the average. The spacing of the samples
 * keeps one at or before the middle within the ring. The whole run's
 * average until there is half a second to look at.
 */
double progress_rate(const struct progress *p, uint64_t done, double t)
{
	double elapsed = t - p->t_start, mid = p->t_start + elapsed / 2;
	unsigned n = p->samples < PROGRESS_SAMPLES ? p->samples : PROGRESS_SAMPLES;

	for (unsigned k = 1; k <= n; k++) {
		unsigned i = (p->samples - k) % PROGRESS_SAMPLES;

		if (p->sample_t[i] <= mid) {
			if (t - p->sample_t[i] >= 0.5 && done >= p->sample_done[i])
				return (double)(done - p->sample_done[i]) / (t - p->sample_t[i]);
			break;
		}
	}
	return elapsed > 0 ? (double)(done - p->start_done) / elapsed : 0;
}

/*
 * What is left: the payload not yet converted, then the new header. The
 * header is only written, but the pipeline's pace is its writes (reads
 * overlap them), so its bytes count like a step's. Without them the ETA
 * of a 128 MiB disk was 13% short at 10% (bench/qemu-eta).
 */
double progress_eta(const struct progress *p, uint64_t done, double t)
{
	double left = (double)(p->total - done) + (double)p->tail;
	double rate = progress_rate(p, done, t);

	return rate > 0 ? left / rate : -1;
}

static void print_line(const struct progress *p, const char *phase, uint64_t done, double t)
{
	double elapsed = t - p->t_start;
	double rate = progress_rate(p, done, t);
	double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
	double eta = progress_eta(p, done, t);
	int e = (int)elapsed, l = eta < 0 ? 0 : (int)(eta + 0.5);

	if (p->json) {
		fprintf(stderr,
			"{\"phase\":\"%s\",\"done\":%llu,\"total\":%llu,\"percent\":%.1f,"
			"\"rate_mib_s\":%.1f,\"elapsed_s\":%.1f,\"eta_s\":%.1f}\n",
			phase, (unsigned long long)done, (unsigned long long)p->total, pct,
			rate / MIB, elapsed, eta < 0 ? -1.0 : eta);
	} else {
		fprintf(stderr, "luksipc: %3d:%02d %5.1f%% %7llu MiB / %llu MiB %7.1f MiB/s  ETA %d:%02d\n",
			e / 60, e % 60, pct, (unsigned long long)(done / MIB),
			(unsigned long long)(p->total / MIB), rate / MIB, l / 60, l % 60);
	}
	fflush(stderr);
}

void progress_update(struct progress *p, uint64_t done, int force)
{
	double t = now();

	progress_sample(p, done, t);
	if (p->quiet || (!force && t - p->t_last < 2.0))
		return;
	p->t_last = t;
	print_line(p, "convert", done, t);
}

void progress_header(struct progress *p)
{
	if (p->quiet)
		return;
	if (p->json)
		print_line(p, "header", p->total, now());
	else
		fprintf(stderr, p->wipe_header ? "luksipc: all data decrypted; wiping the old LUKS header\n"
					       : "luksipc: all data converted; writing the new LUKS header\n");
	fflush(stderr);
}

void progress_done(struct progress *p)
{
	p->tail = 0; /* the header is written: nothing is left */
	if (!p->quiet)
		print_line(p, "done", p->total, now());
}
