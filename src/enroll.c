/* Keyslots on the converted device's own header (enroll.h). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "enroll.h"
#include "keys.h"
#include "luksipc.h"
#include "secmem.h"
#include "testhooks.h"

extern char **environ;

static const char modhex[] = "cbdefghijklnrtuv";

int enroll_recovery_key(char *out)
{
	unsigned char raw[32];
	size_t o = 0;
	int r = random_bytes(raw, sizeof(raw));

	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(raw); i++) {
		if (i && i % 4 == 0)
			out[o++] = '-';
		out[o++] = modhex[raw[i] >> 4];
		out[o++] = modhex[raw[i] & 15];
	}
	out[o] = '\0';
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

int enroll_recovery_matches(const char *key, const char *typed, size_t typed_len)
{
	size_t k = 0;
	int ok = 1;

	for (size_t i = 0; i < typed_len; i++) {
		int c = tolower((unsigned char)typed[i]);

		if (c == '-' || c == ' ' || c == '\t')
			continue;
		while (key[k] == '-')
			k++;
		if (!key[k] || key[k] != c)
			ok = 0;
		if (key[k])
			k++;
	}
	while (key[k] == '-')
		k++;
	return ok && !key[k];
}

static int load(const char *device, struct crypt_device **cd)
{
	int r = crypt_init(cd, device);

	if (r < 0)
		return r;
	if (crypt_load(*cd, CRYPT_LUKS, NULL) < 0) {
		crypt_free(*cd);
		*cd = NULL;
		return -EINVAL;
	}
	return 0;
}

int enroll_find_slot(const char *device, const struct key *key)
{
	struct crypt_device *cd;
	int r = load(device, &cd);

	if (r < 0)
		return r;
	r = crypt_activate_by_passphrase(cd, NULL, CRYPT_ANY_SLOT, key->data, key->len, 0);
	crypt_free(cd);
	return r >= 0 ? r : r == -EPERM || r == -ENOENT ? -EPERM : r;
}

int enroll_slot_active(const char *device, int slot)
{
	struct crypt_device *cd;
	crypt_keyslot_info ki;
	int r = load(device, &cd);

	if (r < 0)
		return r;
	ki = crypt_keyslot_status(cd, slot);
	crypt_free(cd);
	if (ki == CRYPT_SLOT_INVALID)
		return -EINVAL;
	return ki == CRYPT_SLOT_ACTIVE || ki == CRYPT_SLOT_ACTIVE_LAST;
}

int enroll_free_slot(const char *device)
{
	struct crypt_device *cd;
	int r = load(device, &cd), n;

	if (r < 0)
		return r;
	n = crypt_keyslot_max(crypt_get_type(cd));
	r = -ENOSPC;
	for (int i = 0; i < n; i++)
		if (crypt_keyslot_status(cd, i) == CRYPT_SLOT_INACTIVE) {
			r = i;
			break;
		}
	crypt_free(cd);
	return r;
}

int enroll_active_count(const char *device)
{
	struct crypt_device *cd;
	int r = load(device, &cd), n, count = 0;

	if (r < 0)
		return r;
	n = crypt_keyslot_max(crypt_get_type(cd));
	for (int i = 0; i < n; i++) {
		crypt_keyslot_info ki = crypt_keyslot_status(cd, i);

		count += ki == CRYPT_SLOT_ACTIVE || ki == CRYPT_SLOT_ACTIVE_LAST;
	}
	crypt_free(cd);
	return count;
}

int enroll_verify(const char *device, int slot, const char *secret, size_t secret_len)
{
	struct crypt_device *cd;
	int r = load(device, &cd);

	if (r < 0)
		return r;
	r = crypt_activate_by_passphrase(cd, NULL, slot, secret, secret_len, 0);
	crypt_free(cd);
	return r == slot ? 0 : r < 0 && r != -EPERM && r != -ENOENT ? r : -EPERM;
}

int enroll_add(const char *device, const struct key *unlock, int slot, const char *secret, size_t secret_len)
{
	struct crypt_device *cd;
	int r = load(device, &cd);

	if (r < 0)
		return r;
	if (test_hook_fast_pbkdf()) {
		struct crypt_pbkdf_type fast = { .type = CRYPT_KDF_PBKDF2, .hash = "sha256", .iterations = 1000,
						 .flags = CRYPT_PBKDF_NO_BENCHMARK };

		crypt_set_pbkdf_type(cd, &fast);
	}
	r = crypt_keyslot_add_by_passphrase(cd, slot, unlock->data, unlock->len, secret, secret_len);
	crypt_free(cd);
	if (r == -EPERM || r == -ENOENT)
		return -EPERM;
	if (r < 0)
		return r;
	return enroll_verify(device, slot, secret, secret_len) == 0 ? 0 : -EBADMSG;
}

int enroll_destroy(const char *device, int slot)
{
	struct crypt_device *cd;
	int r = load(device, &cd);

	if (r < 0)
		return r;
	if (crypt_keyslot_status(cd, slot) == CRYPT_SLOT_INACTIVE)
		r = 0;
	else
		r = crypt_keyslot_destroy(cd, slot);
	crypt_free(cd);
	return r;
}

/* 1 when the keyslots array of a token's JSON names slot. */
static int token_names_slot(const char *json, int slot)
{
	const char *k = strstr(json, "\"keyslots\"");
	char want[16];
	const char *end;

	if (!k || !(k = strchr(k, '[')) || !(end = strchr(k, ']')))
		return 0;
	snprintf(want, sizeof(want), "\"%d\"", slot);
	k = strstr(k, want);
	return k && k < end;
}

int enroll_token_of_slot(const char *device, int slot, const char *type)
{
	struct crypt_device *cd;
	int r = load(device, &cd), found = -ENOENT;

	if (r < 0)
		return r;
	for (int t = 0; t < 32; t++) {
		const char *json = NULL, *ty = NULL;

		if (crypt_token_status(cd, t, &ty) == CRYPT_TOKEN_INACTIVE || !ty || strcmp(ty, type))
			continue;
		if (crypt_token_json_get(cd, t, &json) >= 0 && json && token_names_slot(json, slot)) {
			found = t;
			break;
		}
	}
	crypt_free(cd);
	return found;
}

int enroll_drop_tokens(const char *device, int slot)
{
	struct crypt_device *cd;
	int r = load(device, &cd), dropped = 0;

	if (r < 0)
		return r;
	if (strcmp(crypt_get_type(cd), CRYPT_LUKS2)) {
		crypt_free(cd);
		return 0;
	}
	for (int t = 0; t < 32; t++) {
		const char *json = NULL;

		if (crypt_token_status(cd, t, NULL) == CRYPT_TOKEN_INACTIVE)
			continue;
		if (crypt_token_json_get(cd, t, &json) < 0 || !json || !token_names_slot(json, slot))
			continue;
		if ((r = crypt_token_json_set(cd, t, NULL)) < 0) {
			crypt_free(cd);
			return r;
		}
		dropped++;
	}
	crypt_free(cd);
	return dropped;
}

int enroll_ask(const char *prompt, struct key *ret)
{
	char *argv[] = { "systemd-ask-password", "--timeout=0", (char *)prompt, NULL };
	posix_spawn_file_actions_t fa;
	int pfd[2], st, r;
	size_t cap = 1024;
	pid_t pid;

	ret->data = secmem_alloc(cap);
	ret->len = 0;
	if (!ret->data || pipe2(pfd, O_CLOEXEC) < 0) {
		key_free(ret);
		log_error("cannot ask for a secret: %s", strerror(errno ? errno : ENOMEM));
		return E_KEY;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	fflush(stdout);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r) {
		close(pfd[0]);
		key_free(ret);
		log_error("cannot run systemd-ask-password: %s; install systemd or run luksipc finalize from a terminal", strerror(r));
		return E_KEY;
	}
	for (;;) {
		ssize_t n = read(pfd[0], ret->data + ret->len, cap - 1 - ret->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ret->len += (size_t)n;
		if (ret->len == cap - 1)
			break; /* longer than any passphrase we take: cut, and refused below */
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (ret->len && ret->data[ret->len - 1] == '\n')
		ret->data[--ret->len] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || ret->len == 0 || ret->len >= cap - 2) {
		key_free(ret);
		log_error("no answer to '%s' (systemd-ask-password failed or the answer was empty or too long)", prompt);
		return E_KEY;
	}
	return 0;
}
