/* Logging, signal flag, number parsing and the YES question. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "luksipc.h"

int log_level = LOG_INFO;
int log_errors;
volatile sig_atomic_t interrupted;

void log_msg(int level, const char *fmt, ...)
{
	static const char *const prefix[] = { "error: ", "warning: ", "", "", "debug: " };
	va_list ap;

	if (level == LOG_ERR)
		log_errors++;
	if (level > log_level)
		return;
	fprintf(stderr, "luksipc: %s", prefix[level]);
	if (level == LOG_DEBUG) { /* seconds since the first message: where the time goes */
		static struct timespec t0;
		struct timespec t;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t0.tv_sec == 0 && t0.tv_nsec == 0)
			t0 = t;
		fprintf(stderr, "[%.3f] ", (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9);
	}
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

void signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9') /* strtoull would skip blanks and take a sign */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	char num[32];
	size_t n = s ? strlen(s) : 0;
	uint64_t v, mul = 1;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K': mul = KIB; break;
	case 'm': case 'M': mul = MIB; break;
	case 'g': case 'G': mul = MIB * KIB; break;
	default: break;
	}
	if (mul != 1)
		num[n - 1] = '\0';
	if (parse_u64(num, &v) < 0 || v > UINT64_MAX / mul)
		return -EINVAL;
	*ret = v * mul;
	return 0;
}

const char *fmt_size(uint64_t bytes, char *buf, size_t len)
{
	if (bytes % MIB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes / MIB));
	else if (bytes % KIB == 0)
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes / KIB));
	else
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	return buf;
}

const char *path_split(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
	return slash ? slash + 1 : path;
}

int ask_yes(const char *fmt, ...)
{
	char answer[16] = "";
	FILE *tty = fopen("/dev/tty", "r+e");
	va_list ap;

	if (!tty)
		return -errno;
	va_start(ap, fmt);
	vfprintf(tty, fmt, ap);
	va_end(ap);
	fflush(tty);
	if (!fgets(answer, sizeof(answer), tty))
		answer[0] = '\0';
	fclose(tty);
	return strcmp(answer, "YES\n") == 0;
}
