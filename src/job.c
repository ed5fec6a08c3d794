/*
 * The steps both modes of convert share (job.h): the checks before a fresh
 * start, the new key and header, the state store, the first record, and
 * the engine's lifecycle. Every refusal happens before the first byte is
 * written to the device or the state store.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "lock.h"
#include "luks.h"
#include "luksipc.h"
#include "marker.h"
#include "notes.h"
#include "secmem.h"

void job_init(struct job *j, const struct convert_opts *o)
{
	memset(j, 0, sizeof(*j));
	j->o = o;
	j->dev.fd = j->dev.dfd = -1;
	j->st.dev.fd = j->st.dev.dfd = -1;
	j->readdev.fd = j->readdev.dfd = -1;
	j->hdr.fd = j->hdr.dfd = -1;
}

/* Flushes the directory that holds path, so that a file just created there survives a crash. */
static int flush_dir_of(const char *path)
{
	char dir[4096];
	int fd, r = 0;

	path_split(path, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int job_prepare_header(struct job *j)
{
	const char *path = j->o->header;
	int created = j->hdr.fd < 0;
	int r = 0;

	if (created) {
		r = dev_open(&j->hdr, path, TARGET_HEADER, DEV_RDWR | DEV_CREATE | DEV_DIRECT);
		if (r < 0) {
			log_error("cannot create the header file '%s': %s; check --header", path, strerror(-r));
			return E_REFUSED;
		}
		if ((r = lock_dev(&j->hdr, "header file")) < 0)
			return r;
	}
	if (!j->hdr.is_block && j->hdr.size < j->hdr_len && (r = dev_set_size(&j->hdr, j->hdr_len)) < 0) {
		log_error("cannot grow the header file '%s' to %llu bytes: %s; free some space there or name another --header", path,
			  (unsigned long long)j->hdr_len, strerror(-r));
		return E_REFUSED;
	}
	if (!j->hdr.is_block && (r = dev_flush(&j->hdr)) == 0 && created)
		r = flush_dir_of(path);
	if (r < 0)
		log_error("cannot make the header file '%s' durable: %s; check --header", path, strerror(-r));
	return r < 0 ? E_REFUSED : 0;
}

uint64_t job_header_size(const struct job *j)
{
	if (j->o->header_size)
		return j->o->header_size;
	return j->o->luks_version == 1 ? LUKS1_HEADER_SIZE_DEFAULT : LUKS2_HEADER_SIZE_DEFAULT;
}

int job_confirm(const char *device)
{
	int r = ask_yes("This encrypts '%s' in place. Have a backup. Type YES to continue: ", device);

	if (r < 0) {
		log_error("no terminal to confirm the conversion of '%s'; use --batch", device);
		return E_REFUSED;
	}
	if (r == 0) {
		log_error("conversion of '%s' not confirmed; nothing was written", device);
		return E_REFUSED;
	}
	return 0;
}

int job_get_key(struct job *j, int confirm_prompt)
{
	if (j->o->generate_key_file)
		return key_generate_file(j->o->generate_key_file, &j->key);
	if (j->o->key_file)
		return key_from_file(j->o->key_file, &j->key);
	return key_prompt(j->o->device, confirm_prompt, &j->key);
}

/* The filesystem must end at or before P so that nothing of it is lost. */
int job_check_filesystem(struct job *j, struct dev *plain, uint64_t p, struct state_sb *sb)
{
	const char *dev = j->o->device;
	struct probe_result pr;
	uint64_t size;
	char a[32], b[32];
	int r = probe_signatures(plain, &pr);

	if (r < 0) {
		log_error("cannot probe device '%s' for filesystems: %s", dev, strerror(-r));
		return r;
	}
	if (pr.ambiguous) {
		log_error("device '%s' carries several conflicting signatures; remove the stale ones with wipefs, or use --no-seatbelt", dev);
		return j->o->no_seatbelt ? 0 : E_REFUSED;
	}
	snprintf(sb->fs_type, sizeof(sb->fs_type), "%.15s", pr.type);
	if (!pr.type[0] && pr.pttype[0]) {
		log_error("device '%s' holds a %s partition table; convert a partition instead, or use --no-seatbelt", dev, pr.pttype);
		return j->o->no_seatbelt ? 0 : E_REFUSED;
	}
	if (!pr.type[0]) {
		if (j->o->no_seatbelt) {
			log_warn("no filesystem recognised on '%s'; converting its first %llu bytes, the last %s are lost", dev, (unsigned long long)p, fmt_size(j->dev.size - p, a, sizeof(a)));
			return 0;
		}
		if (j->o->decrypt)
			log_error("the header '%s' does not decrypt '%s' to a filesystem luksipc recognises: is it the header of this device? nothing was written (--no-seatbelt decrypts anyway)",
				  j->o->header, dev);
		else
			log_error("no filesystem recognised on '%s'; if it holds data that ends before byte %llu, use --no-seatbelt", dev, (unsigned long long)p);
		return E_REFUSED;
	}
	r = probe_fs_size(plain, pr.type, &size);
	if (r < 0 && r != -ENOTSUP && r != -EINVAL) {
		log_error("cannot read the %s superblock on '%s': %s", pr.type, dev, strerror(-r));
		return r;
	}
	if (r < 0) {
		log_error("cannot tell the size of the %s on '%s'; if it ends before byte %llu, use --no-seatbelt", pr.type, dev, (unsigned long long)p);
		return j->o->no_seatbelt ? 0 : E_REFUSED;
	}
	sb->fs_size = size;
	if (size > p) {
		log_error("the %s filesystem on '%s' is %llu bytes, %s too large for the LUKS header; shrink it to at most %llu bytes (%llu KiB), e.g. resize2fs %s %lluK for ext4, then run again",
			  pr.type, dev, (unsigned long long)size, fmt_size(size - p, a, sizeof(a)), (unsigned long long)p,
			  (unsigned long long)(p / 1024), dev, (unsigned long long)(p / 1024));
		return E_REFUSED;
	}
	log_verbose("%s filesystem of %s fits in %s", pr.type, fmt_size(size, a, sizeof(a)), fmt_size(p, b, sizeof(b)));
	return 0;
}

int job_check_state_store(struct job *j, uint64_t need)
{
	struct probe_result pr;
	char a[32];
	int r;

	if (!j->state_exists)
		return 0;
	r = probe_signatures(&j->st.dev, &pr);
	if (r < 0)
		return r;
	if ((pr.type[0] || pr.pttype[0] || pr.ambiguous) && !j->o->force_state) {
		log_error("state store '%s' carries a %s signature, so it is not an empty side partition; check --state, or wipe it (wipefs -a) or use --force-state",
			  j->o->state, pr.type[0] ? pr.type : pr.pttype[0] ? pr.pttype : "foreign");
		return E_REFUSED;
	}
	if (j->st.dev.is_block && j->st.dev.size < need) {
		log_error("state store '%s' is too small: it needs %s; use a larger partition", j->o->state, fmt_size(need, a, sizeof(a)));
		return E_REFUSED;
	}
	return 0;
}

int job_check_half_converted(struct job *j, probe_read_fn rd, void *ctx, uint64_t size, const char *fs_type, const char *extra)
{
	char why[256] = "";
	int r = fs_type[0] ? probe_fs_copies(rd, ctx, size, fs_type, why, sizeof(why)) : 0;

	if (r < 0) {
		log_error("cannot read device '%s' to check it for a conversion in progress: %s", j->o->device, strerror(-r));
		return r;
	}
	if (r == 0 && extra && extra[0]) {
		snprintf(why, sizeof(why), "%s", extra);
		r = 1;
	}
	if (r == 0) {
		log_verbose("no sign of a conversion in progress on '%s'", j->o->device);
		return 0;
	}
	if (j->o->no_seatbelt) {
		log_warn("device '%s' shows a sign of a conversion in progress (%s); --no-seatbelt: converting anyway", j->o->device, why);
		return 0;
	}
	log_error("device '%s' shows a sign of a conversion in progress whose state is lost: %s; nothing was written: give the state store of that conversion with --state, or, only if you know no conversion ever ran on '%s', use --no-seatbelt",
		  j->o->device, why, j->o->device);
	return E_REFUSED;
}

/*
 * The engine. Only the functions below start, run and stop it: it may
 * start reading early (engine_read_ahead, plaintext to LUKS), runs in
 * job_run_engine, and is stopped and its contexts freed by engine_release,
 * after the run or, when the run is never reached, by job_free.
 */

/* Its contexts for the keys in j, unless already made, and its devices. */
static int engine_setup(struct job *j, uint32_t sector_size, uint32_t old_sector_size)
{
	int r = 0;

	/* --decrypt: the header's key only decrypts, and nothing encrypts */
	if (j->st.sb.mode == MODE_DECRYPT && !j->dec)
		r = xts_new(&j->dec, j->vk, j->vk_len, sector_size, 0);
	else if (j->st.sb.mode != MODE_DECRYPT && !j->enc)
		r = xts_new(&j->enc, j->vk, j->vk_len, sector_size, 1);
	if (r == 0 && j->old_vk && !j->dec)
		r = xts_new(&j->dec, j->old_vk, j->old_vk_len, old_sector_size, 0);
	if (r < 0)
		return r;
	if (!j->eng.pipe) { /* a read-ahead uses them: they stay as they are */
		j->eng.dev = &j->dev;
		j->eng.geo = &j->geo;
		j->eng.enc = j->enc;
		j->eng.dec = j->dec;
		j->eng.readdev = j->have_readdev ? &j->readdev : NULL;
		j->eng.state = &j->st; /* its evidence key, for the read-ahead */
		j->eng.threads = j->o->crypt_threads;
		j->eng.map = j->st.have_map ? &j->st.map : NULL;
		j->eng.wipe = j->st.map_wipe;
	}
	return 0;
}

static void engine_release(struct job *j)
{
	engine_cancel(&j->eng);
	xts_free(j->enc);
	xts_free(j->dec);
	j->enc = j->dec = NULL;
}

/*
 * Plaintext to LUKS: read and encrypt the first steps while the header and
 * the state store are made. Reads only; if it cannot start, the engine
 * starts reading later, as on a resume.
 */
static void engine_read_ahead(struct job *j)
{
	if (engine_setup(j, j->geo.sector_size, 0) == 0 && engine_prefetch(&j->eng, j->geo.data_size) < 0)
		log_debug("cannot read ahead; the engine reads once the state store is made");
}

int job_run_engine(struct job *j)
{
	struct engine *e = &j->eng;
	char a[32];
	int r = engine_setup(j, j->st.sb.sector_size, j->st.sb.old_sector_size);

	if (r < 0) {
		engine_release(j);
		return r;
	}
	/* The contexts hold the volume keys now, and the store its keys: ours are wiped. */
	secmem_free(j->vk);
	secmem_free(j->old_vk);
	j->vk = j->old_vk = NULL;
	j->prog = (struct progress){ .json = j->o->progress_json, .quiet = log_level < LOG_INFO, .wipe_header = j->st.sb.mode == MODE_DECRYPT };
	e->header_image = j->st.sb.mode == MODE_DECRYPT ? NULL : j->image;
	e->header_dev = j->st.sb.detached ? &j->hdr : NULL;
	e->header_len = j->st.sb.header_len;
	e->marker_off = j->st.sb.marker_off; /* known once the store is made, after any read-ahead */
	e->progress = &j->prog;
	r = engine_run(e);
	engine_release(j);
	if (r == 0 && j->st.sb.mode == MODE_DECRYPT && !j->st.sb.detached)
		log_info("decrypted '%s' in place: it holds plaintext again from byte 0, where its LUKS header (UUID %s) was; the data moved down by %s",
			 j->o->device, j->st.sb.luks_uuid, fmt_size(j->geo.src_offset, a, sizeof(a)));
	else if (r == 0 && j->st.sb.mode == MODE_DECRYPT)
		log_info("decrypted '%s' in place: it holds plaintext again; the LUKS header in '%s' (UUID %s) is wiped", j->o->device,
			 j->o->header, j->st.sb.luks_uuid);
	else if (r == 0 && j->st.sb.detached)
		log_info("converted '%s' to LUKS%u (UUID %s) in place; its header is in '%s', without which the data cannot be opened: keep a copy elsewhere",
			 j->o->device, j->st.sb.luks_version, j->st.sb.luks_uuid, j->o->header);
	else if (r == 0)
		log_info("converted '%s' to LUKS%u (UUID %s); the data area is %s smaller than before", j->o->device, j->st.sb.luks_version,
			 j->st.sb.luks_uuid, fmt_size(j->dev.size - j->geo.src_offset - j->geo.data_size, a, sizeof(a)));
	else if (r == -EINTR)
		log_error("interrupted with %llu of %llu bytes converted; the state in '%s' is consistent: run the same command again to resume",
			  (unsigned long long)(j->geo.data_size - j->st.rec.frontier), (unsigned long long)j->geo.data_size, j->o->state);
	else
		log_error("I/O error while converting '%s': %s; the state in '%s' is consistent: fix the cause and run the same command again to resume",
			  j->o->device, strerror(-r), j->o->state);
	return r;
}

void job_free(struct job *j)
{
	engine_release(j); /* before the keys it uses are wiped */
	key_free(&j->key);
	key_free(&j->old_key);
	secmem_free(j->vk);
	secmem_free(j->old_vk);
	free(j->image);
	free(j->old_image);
	explicit_bzero(j->st.hmac_key, sizeof(j->st.hmac_key));
	explicit_bzero(j->st.ev_key, sizeof(j->st.ev_key));
	explicit_bzero(j->st.map_key, sizeof(j->st.map_key));
	usedmap_free(&j->st.map);
	free(j->st.map_buf);
	dev_close(&j->st.dev);
	dev_close(&j->readdev);
	dev_close(&j->hdr);
	dev_close(&j->dev);
}

/* A new random volume key in locked memory, and the evidence key derived from it. */
static int new_volume_key(struct job *j)
{
	int r;

	j->vk_len = j->o->key_bits / 8;
	j->vk = secmem_alloc(j->vk_len);
	if (!j->vk)
		return -ENOMEM;
	r = random_bytes(j->vk, j->vk_len);
	if (r == 0)
		state_set_evidence_key(&j->st, j->vk, j->vk_len);
	return r;
}

/* A header image for the volume key in j->image, with a keyslot for j->key, which is wiped then. */
static int format_header(struct job *j, struct state_sb *sb)
{
	const struct convert_opts *o = j->o;
	struct luks_params lp = {
		.version = o->luks_version, .key_bytes = (uint32_t)j->vk_len, .sector_size = o->sector_size,
		.header_size = j->hdr_len ? j->hdr_len : j->geo.header_size, .detached = j->hdr_len != 0, .pbkdf = o->pbkdf, .pbkdf_iterations = o->pbkdf_iterations,
		.iter_time_ms = o->iter_time_ms, .pbkdf_memory_kib = o->pbkdf_memory_kib, .label = o->label, .uuid = o->uuid ? o->uuid : j->keep_uuid,
	};
	int r = luks_format_image(&lp, j->vk, j->vk_len, j->key.data, j->key.len, &j->image, sb->luks_uuid);

	key_free(&j->key); /* its last use */
	if (r < 0) {
		log_error("cannot create the LUKS header: %s; check --type, --pbkdf, --uuid and the header size%s",
			  luks_last_error()[0] ? luks_last_error() : strerror(-r), j->hdr_len ? " (a detached LUKS2 header needs --header-size 64K at least, 1M to hold every keyslot)" : "");
		return E_USAGE;
	}
	log_debug("LUKS header image made");
	return 0;
}

/*
 * Record 1, then the started mark on every superblock copy, then the
 * device-side marker (when planned), all durable before the engine writes
 * the payload: from here on a store without a record is damaged, never
 * "prepared" (docs/format.md, "Started"), and a fresh start finds the
 * marker ("The device-side marker").
 */
int job_first_record(struct job *j)
{
	struct state_rec rec = j->first;
	int r = state_commit(&j->st, &rec);

	if (r == 0)
		r = state_mark_started(&j->st);
	if (r == 0 && j->st.sb.marker_off)
		r = marker_write(&j->dev, &j->st.sb, j->o->state);
	return r;
}

int job_make_first_record(struct job *j)
{
	return engine_first_record(&j->dev, &j->st, &j->geo, &j->first);
}

static int create_store(struct job *j, const struct state_sb *sb)
{
	struct state_sb plan = *sb;
	uint64_t need = state_plan(&plan);
	int r;

	if (!j->state_exists) {
		r = dev_open(&j->st.dev, j->o->state, TARGET_STATE, DEV_RDWR | DEV_CREATE | DEV_DIRECT);
		if (r == -EEXIST) {
			log_error("cannot create state file '%s': %s; another luksipc run may have created it just now: make sure none is running, then run again", j->o->state, strerror(-r));
			return E_REFUSED;
		}
		if (r < 0) {
			log_error("cannot create state file '%s': %s; check --state", j->o->state, strerror(-r));
			return E_REFUSED;
		}
		if ((r = lock_dev(&j->st.dev, "state store")) < 0)
			return r;
		j->state_exists = 1;
	}
	if (!j->st.dev.is_block && j->st.dev.size < need && (r = dev_set_size(&j->st.dev, need)) < 0) {
		log_error("cannot grow state file '%s' to %llu bytes: %s; free some space there or use another --state", j->o->state,
			  (unsigned long long)need, strerror(-r));
		return E_REFUSED;
	}
	r = state_create(&j->st, sb, j->image, j->old_image);
	if (r == 0)
		log_debug("state store written and read back");
	if (r == -EBADMSG) {
		log_error("state store '%s' does not read back what was written to it; use another partition or file", j->o->state);
		return E_REFUSED;
	}
	return r;
}

static void write_notes(struct job *j)
{
	const struct convert_opts *o = j->o;
	const char *kf = o->note_key ? o->note_key : o->generate_key_file ? o->generate_key_file : o->key_file;
	char name[128], text[4096], *abs = NULL;
	struct notes_facts f = {
		.device = o->device,
		.uuid = j->st.sb.luks_uuid,
		.luks_version = j->st.sb.luks_version,
		.reencrypt = j->st.sb.mode == MODE_REENCRYPT,
		.decrypt = j->st.sb.mode == MODE_DECRYPT,
		.name = name,
		.key = kf ? kf : "-",
		.framework = o->note_framework ? o->note_framework : "",
		.header = j->st.sb.detached ? j->st.sb.header_path : NULL,
		.header_spec = j->st.sb.detached ? o->note_header : NULL,
	};

	if (o->note_name)
		snprintf(name, sizeof(name), "%s", o->note_name);
	else
		snprintf(name, sizeof(name), "luks-%s", f.uuid);
	/* crypttab wants the key file by its absolute path */
	if (!o->note_key && kf && strcmp(kf, "-") && kf[0] != '/' && (abs = realpath(kf, NULL)))
		f.key = abs;
	if (notes_record(&f, text, sizeof(text)) < 0 || state_write_notes(&j->st, text) < 0)
		log_warn("cannot record the admin notes in '%s'", o->state);
	free(abs);
}

/*
 * Completes sb (state UUID, hashes, layout), creates the store, commits the
 * first record and runs the engine.
 */
static int begin(struct job *j, struct state_sb *sb)
{
	const struct convert_opts *o = j->o;
	int r = random_bytes(sb->state_uuid, sizeof(sb->state_uuid));

	if (r < 0)
		return r;
	sb->key_bytes = (uint32_t)j->vk_len;
	if (j->st.have_map && (r = state_set_map(&j->st, sb)) < 0)
		return r;
	state_plan(sb);
	SHA256(j->image, sb->header_len, sb->header_sha256);
	if (sb->old_header_len)
		SHA256(j->old_image, sb->old_header_len, sb->old_header_sha256);
	log_debug("header image hashed");
	snprintf(sb->device_path, sizeof(sb->device_path), "%s", o->device);
	sb->created = (uint64_t)time(NULL);
	/* The first step's source as it is now: a later run of this prepared state checks it. */
	if ((r = job_make_first_record(j)) < 0)
		return r;
	sb->first = j->first.ahead;
	if (j->hdr_len && (r = job_prepare_header(j)) < 0)
		return r;
	if ((r = create_store(j, sb)) < 0)
		return r;
	write_notes(j);
	state_set_key(&j->st, j->vk, j->vk_len);
	if ((r = job_first_record(j)) < 0)
		return r;
	log_debug("first record committed");
	if (sb->mode == MODE_DECRYPT)
		log_info("decrypting '%s' (%llu bytes of data) from LUKS%u; state in '%s'", o->device, (unsigned long long)j->geo.data_size,
			 sb->luks_version, o->state);
	else
		log_info("%s '%s' (%llu bytes of data) to LUKS%u; state in '%s'", sb->mode == MODE_REENCRYPT ? "re-encrypting" : "converting",
			 o->device, (unsigned long long)j->geo.data_size, sb->luks_version, o->state);
	return job_run_engine(j);
}

int job_start_existing(struct job *j, struct state_sb *sb)
{
	state_set_evidence_key(&j->st, j->vk, j->vk_len);
	return begin(j, sb);
}

int job_start(struct job *j, struct state_sb *sb)
{
	int r = new_volume_key(j);

	if (r < 0)
		return r;
	if (!j->o->reencrypt)
		engine_read_ahead(j);
	if ((r = format_header(j, sb)) < 0)
		return r;
	return begin(j, sb);
}
