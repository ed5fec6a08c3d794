/* Format and unlock LUKS header images in a memory file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libcryptsetup.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dev.h"
#include "luks.h"
#include "luksipc.h"

static char last_error[256];

const char *luks_last_error(void)
{
	return last_error;
}

static void on_crypt_log(int level, const char *msg, void *usrptr)
{
	size_t n;

	(void)usrptr;
	if (level == CRYPT_LOG_ERROR) {
		snprintf(last_error, sizeof(last_error), "%s", msg);
		n = strlen(last_error);
		if (n && last_error[n - 1] == '\n')
			last_error[n - 1] = '\0';
	}
	log_debug("libcryptsetup: %s", msg);
}

/* A scratch file holding len bytes: a memfd, or an unlinked temp file. */
static int scratch_open(uint64_t len, char path[64])
{
	int fd = memfd_create("luksipc-header", MFD_CLOEXEC);

	if (fd >= 0) {
		snprintf(path, 64, "/proc/self/fd/%d", fd);
		if (access(path, R_OK) < 0) { /* no /proc in this initramfs */
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(path, 64, "%.40s/luksipc-hdr-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	if (ftruncate(fd, (off_t)len) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void scratch_close(int fd, const char *path)
{
	if (fd < 0)
		return;
	if (strncmp(path, "/proc/", 6) != 0)
		unlink(path);
	close(fd);
}

/* data_path NULL: the header and the data share path. */
static int init_cd_data(struct crypt_device **cd, const char *path, const char *data_path)
{
	crypt_set_log_callback(NULL, on_crypt_log, NULL);
	crypt_metadata_locking(NULL, 0); /* private image: no lock files in /run */
	last_error[0] = '\0';
	int r = data_path ? crypt_init_data_device(cd, path, data_path) : crypt_init(cd, path);
	if (r == 0)
		crypt_set_log_callback(*cd, on_crypt_log, NULL);
	return r;
}

static int init_cd(struct crypt_device **cd, const char *path)
{
	return init_cd_data(cd, path, NULL);
}

static int set_pbkdf(struct crypt_device *cd, const struct luks_params *p)
{
	struct crypt_pbkdf_type pbkdf;
	const struct crypt_pbkdf_type *def;
	const char *type = p->pbkdf ? p->pbkdf : p->version == 1 ? CRYPT_KDF_PBKDF2 : CRYPT_KDF_ARGON2ID;

	def = crypt_get_pbkdf_default(p->version == 1 ? CRYPT_LUKS1 : CRYPT_LUKS2);
	if (!def)
		return -EINVAL;
	memset(&pbkdf, 0, sizeof(pbkdf));
	pbkdf.type = type;
	pbkdf.hash = def->hash ? def->hash : "sha256";
	pbkdf.time_ms = p->iter_time_ms ? p->iter_time_ms : def->time_ms;
	pbkdf.max_memory_kb = p->pbkdf_memory_kib ? p->pbkdf_memory_kib : def->max_memory_kb;
	pbkdf.parallel_threads = def->parallel_threads ? def->parallel_threads : 4;
	if (strcmp(type, CRYPT_KDF_PBKDF2) == 0) {
		pbkdf.max_memory_kb = 0;
		pbkdf.parallel_threads = 0;
	}
	if (p->pbkdf_iterations) {
		pbkdf.iterations = p->pbkdf_iterations;
		pbkdf.flags = CRYPT_PBKDF_NO_BENCHMARK;
	}
	return crypt_set_pbkdf_type(cd, &pbkdf);
}

static int format_cd(struct crypt_device *cd, const struct luks_params *p, const uint8_t *vk, size_t vk_len)
{
	int r = crypt_set_data_offset(cd, p->detached ? 0 : p->header_size / 512);

	/* detached: the header's own size is not implied by a data offset */
	if (r == 0 && p->detached && p->version == 2)
		r = crypt_set_metadata_size(cd, LUKS2_METADATA_SIZE, p->header_size - 2 * LUKS2_METADATA_SIZE);
	if (r < 0)
		return r;
	r = set_pbkdf(cd, p);
	if (r < 0)
		return r;
	if (p->version == 1) {
		struct crypt_params_luks1 params = { .hash = "sha256" };
		return crypt_format(cd, CRYPT_LUKS1, LUKS_CIPHER, LUKS_CIPHER_MODE, p->uuid, (const char *)vk,
				    vk_len, &params);
	}
	struct crypt_params_luks2 params = {
		.sector_size = p->sector_size,
		.label = p->label,
	};
	return crypt_format(cd, CRYPT_LUKS2, LUKS_CIPHER, LUKS_CIPHER_MODE, p->uuid, (const char *)vk, vk_len,
			    &params);
}

int luks_format_image(const struct luks_params *p, const uint8_t *vk, size_t vk_len,
		      const char *key, size_t key_len, uint8_t **ret_image,
		      char ret_uuid[LUKS_UUID_LEN + 1])
{
	struct crypt_device *cd = NULL;
	uint8_t *image = NULL;
	char path[64], data_path[64];
	int fd, data_fd = -1, r;

	if (p->detached && p->version == 2 && p->header_size < 4 * LUKS2_METADATA_SIZE)
		return -EINVAL;
	fd = scratch_open(p->header_size, path);
	if (fd < 0)
		return fd;
	/*
	 * Detached: libcryptsetup is given a stand-in for the data device (a
	 * 4 KiB scratch file), so that it accepts data offset 0 and never
	 * learns, let alone touches, the real one.
	 */
	if (p->detached && (data_fd = scratch_open(4096, data_path)) < 0) {
		r = data_fd;
		goto out;
	}
	r = p->detached ? init_cd_data(&cd, path, data_path) : init_cd(&cd, path);
	if (r < 0)
		goto out;
	r = format_cd(cd, p, vk, vk_len);
	if (r < 0)
		goto out;
	r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, (const char *)vk, vk_len, key, key_len);
	if (r < 0)
		goto out;
	snprintf(ret_uuid, LUKS_UUID_LEN + 1, "%s", crypt_get_uuid(cd));
	crypt_free(cd);
	cd = NULL;
	image = dev_buf_alloc(p->header_size);
	if (!image) {
		r = -ENOMEM;
		goto out;
	}
	if (pread(fd, image, p->header_size, 0) != (ssize_t)p->header_size) {
		r = -EIO;
		goto out;
	}
	*ret_image = image;
	image = NULL;
	r = 0;
out:
	free(image);
	crypt_free(cd);
	scratch_close(fd, path);
	if (data_fd >= 0)
		scratch_close(data_fd, data_path);
	return r;
}

static int load_image(const uint8_t *image, size_t len, struct crypt_device **cd, int *fd, char path[64]);

int luks_unlock_image(const uint8_t *image, size_t len, const char *key, size_t key_len,
		      uint8_t *vk, size_t *vk_len)
{
	struct crypt_device *cd = NULL;
	char path[64];
	int fd = -1;
	int r = load_image(image, len, &cd, &fd, path);

	if (r == 0)
		r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, (char *)vk, vk_len, key, key_len);
	if (r > 0)
		r = 0;
	crypt_free(cd);
	scratch_close(fd, path);
	return r;
}

int luks_device_data_offset(const char *path, uint64_t *ret)
{
	struct crypt_device *cd = NULL;
	int r = init_cd(&cd, path);

	if (r == 0)
		r = crypt_load(cd, CRYPT_LUKS, NULL) < 0 ? -EINVAL : 0;
	if (r == 0)
		*ret = crypt_get_data_offset(cd) * 512;
	crypt_free(cd);
	return r;
}

static int load_image(const uint8_t *image, size_t len, struct crypt_device **cd, int *fd, char path[64])
{
	int r;

	*fd = scratch_open(len, path);
	if (*fd < 0)
		return *fd;
	if (pwrite(*fd, image, len, 0) != (ssize_t)len)
		return -EIO;
	r = init_cd(cd, path);
	if (r == 0 && crypt_load(*cd, CRYPT_LUKS, NULL) < 0)
		r = -EINVAL;
	return r;
}

int luks_inspect_image(const uint8_t *image, size_t len, struct luks_info *ret)
{
	struct crypt_device *cd = NULL;
	uint32_t flags = 0;
	char path[64];
	int fd = -1;
	int r = load_image(image, len, &cd, &fd, path);

	if (r == 0) {
		memset(ret, 0, sizeof(*ret));
		ret->version = strcmp(crypt_get_type(cd), CRYPT_LUKS1) == 0 ? 1 : 2;
		snprintf(ret->cipher, sizeof(ret->cipher), "%s", crypt_get_cipher(cd));
		snprintf(ret->cipher_mode, sizeof(ret->cipher_mode), "%s", crypt_get_cipher_mode(cd));
		ret->key_bytes = (uint32_t)crypt_get_volume_key_size(cd);
		ret->sector_size = (uint32_t)crypt_get_sector_size(cd);
		ret->data_offset = crypt_get_data_offset(cd) * 512;
		snprintf(ret->uuid, sizeof(ret->uuid), "%s", crypt_get_uuid(cd) ? crypt_get_uuid(cd) : "");
		if (ret->version == 2 && crypt_persistent_flags_get(cd, CRYPT_FLAGS_REQUIREMENTS, &flags) == 0 && flags)
			ret->unsupported = 1;
		struct crypt_params_integrity ip;
		memset(&ip, 0, sizeof(ip));
		if (crypt_get_integrity_info(cd, &ip) == 0 && ip.tag_size > 0)
			ret->unsupported = 1;
	}
	crypt_free(cd);
	scratch_close(fd, path);
	return r;
}

int luks_read_detached(const char *path, uint8_t **ret_image, size_t *ret_len, int *ret_dynamic)
{
	struct crypt_device *cd = NULL;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmpdir[128], file[160];
	uint8_t *image = NULL;
	struct stat st;
	int fd = -1, r;

	*ret_dynamic = 1;
	snprintf(tmpdir, sizeof(tmpdir), "%.100s/luksipc-XXXXXX", dir);
	if (!mkdtemp(tmpdir))
		return -errno;
	snprintf(file, sizeof(file), "%s/header", tmpdir);
	r = init_cd(&cd, path);
	if (r == 0)
		r = crypt_load(cd, CRYPT_LUKS, NULL) < 0 ? -EINVAL : 0;
	if (r == 0 && strcmp(crypt_get_type(cd), CRYPT_LUKS2) == 0) {
		const char *json = NULL, *seg, *size;

		/* segment 0's size: cryptsetup writes "dynamic" for a segment that runs to the device's end */
		if (crypt_dump_json(cd, &json, 0) < 0 || !json || !(seg = strstr(json, "\"segments\"")) || !(size = strstr(seg, "\"size\":\"")))
			r = -EINVAL;
		else
			*ret_dynamic = strncmp(size + 8, "dynamic\"", 8) == 0;
	}
	if (r == 0)
		r = crypt_header_backup(cd, NULL, file);
	crypt_free(cd);
	if (r == 0 && ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0))
		r = -errno;
	if (r == 0 && (st.st_size <= 0 || st.st_size > 256 * 1024 * 1024))
		r = -EINVAL;
	if (r == 0 && !(image = dev_buf_alloc((size_t)st.st_size)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, image, (size_t)st.st_size, 0) != st.st_size)
		r = -EIO;
	if (fd >= 0)
		close(fd);
	unlink(file);
	rmdir(tmpdir);
	if (r < 0) {
		free(image);
		return r;
	}
	*ret_image = image;
	*ret_len = (size_t)st.st_size;
	return 0;
}
