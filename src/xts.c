/* aes-xts-plain64 on top of OpenSSL's EVP interface. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "luksipc.h"
#include "xts.h"

struct xts {
	EVP_CIPHER_CTX *ctx;
	uint32_t sector_size;
	int encrypt;
};

int xts_new(struct xts **ret, const uint8_t *key, size_t key_len, uint32_t sector_size, int encrypt)
{
	const EVP_CIPHER *cipher = key_len == 64 ? EVP_aes_256_xts() : key_len == 32 ? EVP_aes_128_xts() : NULL;
	struct xts *x;

	if (!cipher)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->ctx = EVP_CIPHER_CTX_new();
	x->sector_size = sector_size;
	x->encrypt = encrypt;
	if (!x->ctx || EVP_CipherInit_ex(x->ctx, cipher, NULL, key, NULL, encrypt) != 1) {
		xts_free(x);
		return -EINVAL;
	}
	*ret = x;
	return 0;
}

int xts_dup(struct xts **ret, const struct xts *x)
{
	struct xts *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->ctx = EVP_CIPHER_CTX_new();
	d->sector_size = x->sector_size;
	d->encrypt = x->encrypt;
	if (!d->ctx || EVP_CIPHER_CTX_copy(d->ctx, x->ctx) != 1) {
		xts_free(d);
		return -EINVAL;
	}
	*ret = d;
	return 0;
}

void xts_free(struct xts *x)
{
	if (!x)
		return;
	EVP_CIPHER_CTX_free(x->ctx); /* cleanses the expanded key */
	free(x);
}

int xts_crypt(struct xts *x, uint8_t *buf, size_t len, uint64_t off)
{
	uint8_t iv[16];
	int outl;

	if (len % x->sector_size || off % x->sector_size)
		return -EINVAL;
	for (size_t done = 0; done < len; done += x->sector_size) {
		memset(iv, 0, sizeof(iv));
		put_le64(iv, (off + done) / 512);
		if (EVP_CipherInit_ex(x->ctx, NULL, NULL, NULL, iv, x->encrypt) != 1 ||
		    EVP_CipherUpdate(x->ctx, buf + done, &outl, buf + done, (int)x->sector_size) != 1)
			return -EIO;
	}
	return 0;
}
