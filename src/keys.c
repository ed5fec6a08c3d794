/* Key files, passphrase prompts and generated key files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "dev.h"
#include "keys.h"
#include "luksipc.h"
#include "secmem.h"

#define GENERATED_KEY_BYTES 4096

int random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void key_free(struct key *k)
{
	if (!k)
		return;
	secmem_free(k->data);
	k->data = NULL;
	k->len = 0;
}

/*
 * Reads the whole key from fd into locked memory. A regular file gets a
 * buffer of its own size (plus one byte that proves the end), not the
 * largest allowed key: locking and wiping 8 MiB costs more than a 4 KiB key.
 */
static int read_all(int fd, struct key *ret)
{
	struct stat st;
	size_t cap = KEY_MAX + 1, len = 0;
	char *buf;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 && (uint64_t)st.st_size < KEY_MAX)
		cap = (size_t)st.st_size + 1;
	buf = secmem_alloc(cap);
	if (!buf)
		return -ENOMEM;
	while (len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = -errno;
			secmem_free(buf);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == cap) { /* larger than the limit, or grew while being read */
		secmem_free(buf);
		return cap == KEY_MAX + 1 ? -EFBIG : -EAGAIN;
	}
	ret->data = buf;
	ret->len = len;
	return 0;
}

int key_from_file(const char *path, struct key *ret)
{
	int stdin_key = strcmp(path, "-") == 0;
	int fd = stdin_key ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0) {
		log_error("cannot read key file '%s': %s", path, strerror(errno));
		return E_KEY;
	}
	r = read_all(fd, ret);
	if (!stdin_key)
		close(fd);
	if (r == -EFBIG)
		log_error("key file '%s' is larger than %u bytes; use a smaller key file", path, KEY_MAX);
	else if (r == -EAGAIN)
		log_error("key file '%s' changed while it was read; run again once it no longer changes", path);
	else if (r < 0)
		log_error("cannot read key file '%s': %s", path, strerror(-r));
	else if (ret->len == 0) {
		key_free(ret);
		log_error("key file '%s' is empty; give a key file with content", path);
		return E_KEY;
	}
	return r < 0 ? E_KEY : 0;
}

static int read_line_noecho(int fd, const char *prompt, struct key *ret)
{
	struct termios old, quiet;
	int have_tty = tcgetattr(fd, &old) == 0;
	char *buf = secmem_alloc(1024);
	size_t len = 0;
	char c;

	if (!buf)
		return -ENOMEM;
	if (write(fd, prompt, strlen(prompt)) < 0)
		log_debug("cannot write prompt");
	if (have_tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	while (read(fd, &c, 1) == 1 && c != '\n' && len < 1023)
		buf[len++] = c;
	if (have_tty)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		log_debug("cannot write newline");
	ret->data = buf;
	ret->len = len;
	return 0;
}

int key_prompt(const char *what, int confirm, struct key *ret)
{
	struct key again = { 0 };
	char prompt[256];
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0) {
		log_error("cannot ask for a passphrase: no terminal; use --key-file");
		return E_KEY;
	}
	snprintf(prompt, sizeof(prompt), "Enter passphrase for %s: ", what);
	r = read_line_noecho(fd, prompt, ret);
	if (r == 0 && confirm)
		r = read_line_noecho(fd, "Verify passphrase: ", &again);
	close(fd);
	if (r < 0) {
		log_error("cannot read the passphrase: %s", strerror(-r));
		key_free(ret);
		return E_KEY;
	}
	if (ret->len == 0)
		log_error("the passphrase is empty; type a passphrase or use --key-file");
	else if (confirm && (again.len != ret->len || memcmp(again.data, ret->data, ret->len)))
		log_error("the passphrases do not match; run again and type the same passphrase twice");
	else {
		key_free(&again);
		return 0;
	}
	key_free(&again);
	key_free(ret);
	return E_KEY;
}

/* Makes a new directory entry durable. */
static int sync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, r = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return r;
}

int key_generate_file(const char *path, struct key *ret)
{
	struct dev kf;
	char *buf;
	int r;

	if (access(path, F_OK) == 0) {
		log_info("using the existing key file '%s'", path);
		return key_from_file(path, ret);
	}
	buf = secmem_alloc(GENERATED_KEY_BYTES);
	if (!buf)
		return -ENOMEM;
	r = random_bytes(buf, GENERATED_KEY_BYTES);
	if (r == 0)
		r = dev_open(&kf, path, TARGET_KEYFILE, DEV_RDWR | DEV_CREATE);
	if (r == 0) {
		fchmod(kf.fd, 0600);
		r = dev_pwrite_full(&kf, buf, GENERATED_KEY_BYTES, 0);
		if (r == 0)
			r = dev_flush(&kf);
		dev_close(&kf);
		if (r == 0)
			r = sync_parent(path);
		if (r < 0)
			unlink(path); /* a partial key file must not be reused */
	}
	if (r < 0) {
		log_error("cannot create key file '%s': %s", path, strerror(-r));
		secmem_free(buf);
		return E_KEY;
	}
	log_info("generated key file '%s' (4096 random bytes, mode 0600); keep it safe", path);
	ret->data = buf;
	ret->len = GENERATED_KEY_BYTES;
	return 0;
}
