/*
 * Progress on stderr: a human line like luksipc's, or one JSON object per
 * line for front ends. At most one line every two seconds, plus the last.
 */
#ifndef LUKSIPC_PROGRESS_H
#define LUKSIPC_PROGRESS_H

#include <stdint.h>

#define PROGRESS_SAMPLES 256

struct progress {
	int json;
	int quiet;
	int wipe_header;     /* --decrypt: the last act wipes the old header instead of writing a new one */
	uint64_t total;      /* bytes of the whole conversion */
	uint64_t start_done; /* bytes already done when this run started */
	uint64_t tail;       /* bytes written after the last step (the new header), counted in the ETA */
	double t_start, t_last;
	/* (time, done) samples, spaced by at least 1/128 of the elapsed time */
	double sample_t[PROGRESS_SAMPLES];
	uint64_t sample_done[PROGRESS_SAMPLES];
	unsigned samples; /* how many were taken; the newest is at (samples - 1) % PROGRESS_SAMPLES */
};

void progress_init(struct progress *p, uint64_t total, uint64_t done, int json, int quiet);
/* The ETA then covers done..total and `tail` more bytes written like a step's output. */
void progress_set_tail(struct progress *p, uint64_t tail);
/* Reports done bytes; prints if due (or always when force is set). */
void progress_update(struct progress *p, uint64_t done, int force);
/* Reports that every step is done and the new header is being written. */
void progress_header(struct progress *p);
/* Reports completion. */
void progress_done(struct progress *p);

/* The estimator behind the lines, open to the unit tests: record done bytes at time t (CLOCK_MONOTONIC s), */
void progress_sample(struct progress *p, uint64_t done, double t);
/* and the rate in bytes/s at t, over the second half of the time since init, */
double progress_rate(const struct progress *p, uint64_t done, double t);
/* and the seconds left at t (the tail included), or -1 while there is no rate. */
double progress_eta(const struct progress *p, uint64_t done, double t);

#endif
