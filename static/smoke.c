/*
 * Smoke test for the static dependency set of `make static`: libcryptsetup
 * (with libdevmapper, json-c, argon2, uuid, OpenSSL backend), libblkid and
 * libcrypto, all linked statically. It formats a 16 MiB memfd as LUKS2,
 * adds a pbkdf2 keyslot, reloads the header, unlocks the volume key with the
 * passphrase, probes the result with blkid and does one AES-256-XTS
 * encryption with EVP. Prints "static-smoke: ok" and exits 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <blkid/blkid.h>
#include <libcryptsetup.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define DEV_SIZE (16 * 1024 * 1024)
#define DATA_OFFSET_SECTORS 8192 /* 4 MiB header */
#define VK_SIZE 64

static int fail(const char *what, int r)
{
	fprintf(stderr, "static-smoke: %s failed: %d (%s)\n", what, r, strerror(r < 0 ? -r : r));
	return 1;
}

static void cs_log(int level, const char *msg, void *usrptr)
{
	(void)usrptr;
	if (level == CRYPT_LOG_ERROR)
		fprintf(stderr, "static-smoke: libcryptsetup: %s", msg);
}

static int test_cryptsetup(const char *path, int fd)
{
	static const char pass[] = "smoke-passphrase";
	char vk[VK_SIZE], vk2[VK_SIZE];
	size_t vk2_size = sizeof(vk2);
	struct crypt_device *cd = NULL;
	struct crypt_pbkdf_type pbkdf = {
		.type = CRYPT_KDF_PBKDF2,
		.hash = "sha256",
		.iterations = 1000,
		.flags = CRYPT_PBKDF_NO_BENCHMARK,
	};
	struct crypt_params_luks2 params = { .sector_size = 512 };
	int r, slot;

	if (RAND_bytes((unsigned char *)vk, sizeof(vk)) != 1)
		return fail("RAND_bytes", -EIO);

	r = crypt_init(&cd, path);
	if (r < 0)
		return fail("crypt_init", r);
	r = crypt_set_data_offset(cd, DATA_OFFSET_SECTORS);
	if (r < 0)
		return fail("crypt_set_data_offset", r);
	r = crypt_set_pbkdf_type(cd, &pbkdf);
	if (r < 0)
		return fail("crypt_set_pbkdf_type", r);
	r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, vk, sizeof(vk), &params);
	if (r < 0)
		return fail("crypt_format", r);
	slot = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, vk, sizeof(vk), pass, strlen(pass));
	if (slot < 0)
		return fail("crypt_keyslot_add_by_volume_key", slot);
	crypt_free(cd);
	cd = NULL;

	r = crypt_init(&cd, path);
	if (r < 0)
		return fail("crypt_init (reload)", r);
	r = crypt_load(cd, CRYPT_LUKS2, NULL);
	if (r < 0)
		return fail("crypt_load", r);
	if (crypt_get_data_offset(cd) != DATA_OFFSET_SECTORS)
		return fail("crypt_get_data_offset", -EINVAL);
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, vk2, &vk2_size, pass, strlen(pass));
	if (r < 0)
		return fail("crypt_volume_key_get", r);
	if (r != slot || vk2_size != sizeof(vk) || memcmp(vk, vk2, sizeof(vk)) != 0)
		return fail("volume key compare", -EINVAL);
	r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, vk2, &vk2_size, "wrong", 5);
	if (r != -EPERM)
		return fail("wrong passphrase rejected", r);
	printf("static-smoke: libcryptsetup: %s %s-%s, %d-byte key, slot %d ok\n", crypt_get_type(cd),
	       crypt_get_cipher(cd), crypt_get_cipher_mode(cd), crypt_get_volume_key_size(cd), slot);
	crypt_free(cd);
	(void)fd;
	return 0;
}

static int test_blkid(int fd)
{
	blkid_probe pr = blkid_new_probe();
	const char *type = NULL;
	int r;

	if (!pr)
		return fail("blkid_new_probe", -ENOMEM);
	r = blkid_probe_set_device(pr, fd, 0, 0);
	if (r < 0)
		return fail("blkid_probe_set_device", r);
	r = blkid_do_safeprobe(pr);
	if (r != 0)
		return fail("blkid_do_safeprobe", r);
	if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) != 0 || strcmp(type, "crypto_LUKS") != 0)
		return fail("blkid TYPE=crypto_LUKS", -EINVAL);
	printf("static-smoke: blkid sees TYPE=%s\n", type);
	blkid_free_probe(pr);
	return 0;
}

static int test_evp(void)
{
	unsigned char key[64], iv[16] = { 0 }, in[512], out[512], back[512];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok;

	memset(key, 0x11, 32);
	memset(key + 32, 0x22, 32); /* XTS refuses equal key halves */
	memset(in, 0xa5, sizeof(in));
	ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_xts(), NULL, key, iv) == 1 &&
	     EVP_EncryptUpdate(ctx, out, &len, in, sizeof(in)) == 1 && len == (int)sizeof(in) &&
	     EVP_DecryptInit_ex(ctx, EVP_aes_256_xts(), NULL, key, iv) == 1 &&
	     EVP_DecryptUpdate(ctx, back, &len, out, sizeof(out)) == 1 && len == (int)sizeof(in) &&
	     memcmp(in, out, sizeof(in)) != 0 && memcmp(in, back, sizeof(in)) == 0;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return fail("EVP aes-256-xts", -EIO);
	printf("static-smoke: EVP aes-256-xts ok\n");
	return 0;
}

/* A static binary maps no shared object; dlopen would show up here. */
static int test_no_shared_objects(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int bad = 0;

	if (!f)
		return fail("open /proc/self/maps", -errno);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, ".so")) {
			fprintf(stderr, "static-smoke: shared object mapped: %s", line);
			bad = 1;
		}
	fclose(f);
	if (bad)
		return 1;
	printf("static-smoke: no shared object mapped\n");
	return 0;
}

int main(void)
{
	char path[64];
	int fd;

	/* no openssl.cnf: a host config could name providers to dlopen */
	if (OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL) != 1)
		return fail("OPENSSL_init_crypto", -EIO);
	crypt_set_log_callback(NULL, cs_log, NULL);
	fd = memfd_create("luksipc-smoke", MFD_CLOEXEC);
	if (fd < 0)
		return fail("memfd_create", -errno);
	if (ftruncate(fd, DEV_SIZE) < 0)
		return fail("ftruncate", -errno);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	if (test_cryptsetup(path, fd) || test_blkid(fd) || test_evp() || test_no_shared_objects())
		return 1;
	close(fd);
	printf("static-smoke: ok\n");
	return 0;
}
