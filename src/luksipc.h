/* Shared definitions: error codes, logging, small helpers. */
#ifndef LUKSIPC_H
#define LUKSIPC_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>

#define LUKSIPC_VERSION "0.1.0"

#define KIB (UINT64_C(1024))
#define MIB (UINT64_C(1024) * 1024)

/*
 * Functions below main return 0 or a negative errno. These extra codes tell
 * main which exit code applies; the function that returns one has already
 * logged the reason.
 */
#define E_REFUSED (-10001) /* a safety check failed; nothing was written */
#define E_KEY (-10002)     /* key unreadable or wrong; nothing was written */
#define E_USAGE (-10003)   /* bad option or argument */

/* Exit codes, documented in README.md and docs/interface.md. */
enum exit_code {
	EXIT_OK = 0,
	EXIT_INTERNAL = 1,
	EXIT_USAGE = 2,
	EXIT_REFUSED = 3,
	EXIT_KEY = 4,
	EXIT_IO = 5,
	EXIT_INTERRUPTED = 6,
};

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_VERBOSE = 3, LOG_DEBUG = 4 };

extern int log_level;
extern int log_errors; /* error lines printed so far */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_verbose(...) log_msg(LOG_VERBOSE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Set by the SIGINT/SIGTERM/SIGHUP handler; long loops turn it into -EINTR. */
extern volatile sig_atomic_t interrupted;
void signals_install(void);

/* Parse "123", "4096", "16M", "2G", "512K" (binary units). 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *ret);
/* Parse a plain unsigned decimal number (digits only). 0 or -EINVAL. */
int parse_u64(const char *s, uint64_t *ret);

/*
 * Prints the question (printf-style) on /dev/tty and reads one line: 1 when
 * it is YES, 0 when it is anything else, -errno when there is no terminal.
 */
int ask_yes(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Format bytes as a short human string like "16 MiB" or "12345 bytes". */
const char *fmt_size(uint64_t bytes, char *buf, size_t len);
/* The directory part of path ("." for a bare name, "/" for a top-level one) into buf; returns the last component. */
const char *path_split(const char *path, char *buf, size_t len);

/* Load/store little-endian integers. */
static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

#endif
