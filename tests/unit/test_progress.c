/* The progress estimator: the rate behind the ETA, on simulated timelines. */
#include <math.h>
#include <string.h>

#include "progress.h"
#include "unit.h"

#define MB 1000000.0

/* Steps of 16 MiB at `rate` bytes/s from t0 for `secs`, sampled as the engine does. */
static double run(struct progress *p, double *t, uint64_t *done, double rate, double secs)
{
	double end = *t + secs, step = 16777216.0 / rate;

	while (*t + step <= end) {
		*t += step;
		*done += 16777216;
		progress_sample(p, *done, *t);
	}
	return progress_rate(p, *done, *t);
}

/* A new run of total bytes with start_done already done; returns its start time. */
static double fresh(struct progress *p, uint64_t *done, uint64_t total, uint64_t start_done)
{
	memset(p, 0, sizeof(*p));
	*done = start_done;
	progress_init(p, total, start_done, 1, 1);
	return p->t_start;
}

static int near(double a, double b, double tol)
{
	return fabs(a - b) <= tol * b;
}

int main(void)
{
	struct progress p;
	uint64_t done = 0;
	double t;

	/* the ETA counts the new header (the tail) like a step's output: a
	   128 MiB payload at 10 MB/s with a 16 MiB header, at 25% (without
	   the tail it would be 14% short) */
	t = fresh(&p, &done, 128ull << 20, 0);
	progress_set_tail(&p, 16ull << 20);
	run(&p, &t, &done, 10 * MB, 3.4);
	CHECK(done == 32ull << 20);
	CHECK(near(progress_eta(&p, done, t), (double)((96ull + 16) << 20) / (10 * MB), 0.02));
	/* and only the tail is left once every step is done */
	done = 128ull << 20;
	CHECK(near(progress_eta(&p, done, t + 10.0), (16ull << 20) / progress_rate(&p, done, t + 10.0), 0.001));
	CHECK(progress_eta(&p, done, t + 10.0) > 0);
	/* no rate yet: no estimate */
	t = fresh(&p, &done, 1ull << 30, 0);
	CHECK(progress_eta(&p, done, t) < 0);

	/* a steady device: the rate is its speed, early and late */
	t = fresh(&p, &done, 1ull << 40, 0);
	CHECK(near(run(&p, &t, &done, 1500 * MB, 2.0), 1500 * MB, 0.02));
	CHECK(near(run(&p, &t, &done, 1500 * MB, 60.0), 1500 * MB, 0.02));

	/* 0.3 s of setup before the first step: at 2 s the average since the
	   start would be 15% low; the second half of the time is not */
	t = fresh(&p, &done, 1ull << 40, 0) + 0.3;
	CHECK(near(run(&p, &t, &done, 1500 * MB, 1.7), 1500 * MB, 0.03));

	/* the device slows to half (inner tracks): after as long again the
	   estimate has moved most of the way, unlike a run average */
	t = fresh(&p, &done, 1ull << 40, 0);
	run(&p, &t, &done, 200 * MB, 100.0);
	CHECK(near(run(&p, &t, &done, 100 * MB, 100.0), 100 * MB, 0.03));

	/* a resumed run: bytes done before it do not count */
	t = fresh(&p, &done, 1ull << 40, 5ull << 30);
	CHECK(near(run(&p, &t, &done, 800 * MB, 3.0), 800 * MB, 0.03));

	/* hours: the ring of samples still reaches back to the middle */
	t = fresh(&p, &done, 1ull << 50, 0);
	run(&p, &t, &done, 400 * MB, 3600.0);
	CHECK(near(run(&p, &t, &done, 300 * MB, 3600.0), 300 * MB, 0.05));
	UNIT_DONE("progress");
}
