/*
 * Key material from a key file, a terminal prompt or a generated file. The
 * bytes live in locked memory (secmem) and are wiped by key_free. These
 * functions log their own failures, which are key errors (E_KEY).
 */
#ifndef LUKSIPC_KEYS_H
#define LUKSIPC_KEYS_H

#include <stddef.h>

#define KEY_MAX (8u * 1024 * 1024) /* cryptsetup's default key file limit */

struct key {
	char *data;
	size_t len;
};

/* The whole content of path ("-": standard input). 0 or E_KEY. */
int key_from_file(const char *path, struct key *ret);
/* A passphrase typed on /dev/tty, asked twice when confirm is set. 0 or E_KEY. */
int key_prompt(const char *what, int confirm, struct key *ret);
/*
 * path's content when it exists; otherwise 4096 random bytes written to a
 * new file of mode 0600, made durable (file and directory) before return.
 * 0 or E_KEY.
 */
int key_generate_file(const char *path, struct key *ret);
void key_free(struct key *k);

/* Fills buf with len random bytes from the kernel. 0 or -errno. */
int random_bytes(void *buf, size_t len);

#endif
