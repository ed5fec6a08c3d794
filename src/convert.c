/*
 * The convert verb: opens the device and the state store, then starts
 * plaintext to LUKS (here) or LUKS to LUKS (reencrypt.c), or resumes what
 * the store records, after the checks that make that safe. Both modes run
 * over job.c. Every refusal happens before the first byte is written to
 * the device or the state store.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "convert.h"
#include "engine.h"
#include "fsmap.h"
#include "job.h"
#include "lock.h"
#include "luks.h"
#include "luksipc.h"
#include "marker.h"
#include "probe.h"
#include "reencrypt.h"
#include "secmem.h"
#include "state.h"

static int refuse_open(const char *what, const char *path, int err)
{
	char who[128] = "";

	if (err == -EBUSY)
		lock_holder(path, who, sizeof(who));
	if (err == -EBUSY && who[0])
		log_error("cannot open %s '%s': it is in use, locked%s; wait for that run to end, then run again", what, path, who);
	else if (err == -EBUSY)
		log_error("cannot open %s '%s': it is in use (mounted or held open); unmount it or close its users first", what, path);
	else
		log_error("cannot open %s '%s': %s", what, path, strerror(-err));
	return E_REFUSED;
}

static int open_device(struct job *j)
{
	char why[512];
	/* With --readdev the mapping holds the device: that one holder is checked instead. */
	unsigned excl = j->o->readdev ? 0 : DEV_EXCL;
	int r = dev_open(&j->dev, j->o->device, TARGET_DEVICE, DEV_RDWR | excl | DEV_DIRECT);

	if (r < 0)
		return refuse_open("device", j->o->device, r);
	if ((r = lock_dev(&j->dev, "device")) < 0 || (r = lock_loop_backing(&j->dev, "device")) < 0)
		return r;
	if (j->o->readdev)
		return reencrypt_open_readdev(j);
	r = probe_in_use(&j->dev, why, sizeof(why));
	if (r > 0) {
		log_error("device '%s' is in use: %s; unmount or detach it first", j->o->device, why);
		return E_REFUSED;
	}
	return 0;
}

/* A file that does not exist yet (what: "state file", "header file") must be creatable where it is named. */
static int check_creatable(struct job *j, const char *what, const char *path, const char *opt)
{
	char dir[4096];

	(void)j;
	path_split(path, dir, sizeof(dir));
	if (access(dir, W_OK | X_OK) == 0)
		return 0;
	if (errno == ENOENT || errno == ENOTDIR)
		log_error("cannot create %s '%s': directory '%s' does not exist; create it, or check %s", what, path, dir, opt);
	else
		log_error("cannot create %s '%s' in '%s': %s; check %s", what, path, dir, strerror(errno), opt);
	return E_REFUSED;
}

/*
 * No valid superblock: an empty store, unless something of a conversion is
 * left on it. Torn superblock copies alone are what a cut during the very
 * first write leaves (the header image and the records come only after the
 * superblock is durable), so only they do not count.
 */
static int check_remnants(struct job *j)
{
	char what[160];
	int r = state_find_remnants(&j->st, what, sizeof(what));

	if (r <= 0 || r == 2)
		return r < 0 ? r : 0;
	if (j->o->force_state) {
		log_warn("state store '%s' holds %s but no valid superblock; --force-state: starting afresh over it", j->o->state, what);
		return 0;
	}
	log_error("state store '%s' holds %s but no valid superblock, so the conversion it belonged to cannot be resumed and '%s' may be half converted; restore the state store from a copy, or use --force-state only if you know '%s' was never written",
		  j->o->state, what, j->o->device, j->o->device);
	return E_REFUSED;
}

static int open_state(struct job *j)
{
	char why[512];
	int r;

	if (access(j->o->state, F_OK) < 0 && errno == ENOENT)
		return check_creatable(j, "state file", j->o->state, "--state"); /* created later, once every check has passed */
	r = dev_open(&j->st.dev, j->o->state, TARGET_STATE, DEV_RDWR | DEV_EXCL | DEV_DIRECT);
	if (r < 0)
		return refuse_open("state store", j->o->state, r);
	/* The same file or partition (a link, another name): this run's own lock would name this run. */
	if (j->st.dev.is_block == j->dev.is_block &&
	    (j->dev.is_block ? j->st.dev.rdev == j->dev.rdev : j->st.dev.st_dev == j->dev.st_dev && j->st.dev.ino == j->dev.ino)) {
		log_error("state store '%s' is the device being converted ('%s'); name another file or partition with --state",
			  j->o->state, j->o->device);
		return E_REFUSED;
	}
	if ((r = lock_dev(&j->st.dev, "state store")) < 0 || (r = lock_loop_backing(&j->st.dev, "state store")) < 0)
		return r;
	if (probe_in_use(&j->st.dev, why, sizeof(why)) > 0) {
		log_error("state store '%s' is in use: %s; detach or unmount it, or name another --state", j->o->state, why);
		return E_REFUSED;
	}
	j->state_exists = 1;
	if (probe_overlap(&j->dev, &j->st.dev)) {
		log_error("state store '%s' is on the device '%s' itself; put it on a separate partition or file", j->o->state, j->o->device);
		return E_REFUSED;
	}
	r = state_read_sb(&j->st);
	if (r == -EPROTO) {
		log_error("state store '%s': format version %u, this luksipc reads versions %u to %u; finish that conversion with the luksipc that started it",
			  j->o->state, j->st.found_format, STATE_FORMAT_PLAIN, STATE_FORMAT);
		return E_REFUSED;
	}
	return r == -ENOENT ? check_remnants(j) : r;
}


/*
 * Two paths that name the same file, also when neither exists yet: each
 * parent directory resolved, then the last component compared.
 */
static int same_path(const char *a, const char *b)
{
	char ra[8400], rb[8400];
	const char *p[2] = { a, b };
	char *out[2] = { ra, rb };

	for (int i = 0; i < 2; i++) {
		char dir[4096], *res;
		const char *base;

		if ((res = realpath(p[i], NULL))) {
			snprintf(out[i], sizeof(ra), "%.4000s", res);
			free(res);
			continue;
		}
		base = path_split(p[i], dir, sizeof(dir));
		res = realpath(dir, NULL);
		snprintf(out[i], sizeof(ra), "%.4000s/%.4000s", res ? res : dir, base);
		free(res);
	}
	return strcmp(ra, rb) == 0;
}

/* The same file or partition, whatever the names. */
static int same_storage(const struct dev *a, const struct dev *b)
{
	if (a->fd < 0 || b->fd < 0 || a->is_block != b->is_block)
		return 0;
	return a->is_block ? a->rdev == b->rdev : a->st_dev == b->st_dev && a->ino == b->ino;
}

/*
 * What the detached header's file or partition holds in its first len
 * bytes: 0 only zeros, 1 a LUKS header of UUID uuid (this conversion's,
 * written at its end), 2 anything else. -errno.
 */
static int header_target_holds(struct job *j, uint64_t len, const char *uuid)
{
	char found[41];
	uint8_t *buf = dev_buf_alloc(1024 * 1024);
	uint64_t off;
	int r = buf ? 0 : -ENOMEM;

	len = len < j->hdr.size ? len : j->hdr.size;
	for (off = 0; r == 0 && off < len; off += 1024 * 1024) {
		size_t n = len - off < 1024 * 1024 ? (size_t)(len - off) : 1024 * 1024;

		r = dev_pread_full(&j->hdr, buf, n, off);
		for (size_t i = 0; r == 0 && i < n; i++)
			if (buf[i])
				r = 2;
	}
	free(buf);
	if (r == 2 && uuid && probe_luks_uuid(&j->hdr, found) == 0 && strcmp(found, uuid) == 0)
		r = 1;
	return r;
}

/*
 * --header: opens the detached header's file or partition and checks it
 * may take the header (len bytes): not the device nor the state store, not
 * in use; on a fresh start (uuid NULL) empty or all zeros, and a partition
 * at least len bytes; on a resume, zeros or this conversion's header
 * (uuid). A file that does not exist is created later (job_prepare_header)
 * on a fresh start, and is refused on a resume: the filesystem that holds
 * it is probably not mounted. Only reads.
 */
static int open_header_target(struct job *j, uint64_t len, const char *uuid, int want_luks, int any)
{
	const char *path = j->o->header;
	char why[512], a[32];
	int r;

	dev_close(&j->hdr); /* a prepared start begun again: its own descriptor would hold the lock */
	j->hdr_len = len;
	if (access(path, F_OK) < 0 && errno == ENOENT && !uuid) {
		snprintf(why, sizeof(why), "%s", path);
		return check_creatable(j, "header file", why, "--header");
	}
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		log_error("the header file '%s' of this conversion does not exist: mount the filesystem that holds it (or restore the file), then run again; the state store '%s' keeps a copy of the header until the conversion is done",
			  path, j->o->state);
		return E_REFUSED;
	}
	r = dev_open(&j->hdr, path, TARGET_HEADER, DEV_RDWR | DEV_EXCL | DEV_DIRECT);
	if (r < 0)
		return refuse_open("header target", path, r);
	if (same_storage(&j->hdr, &j->dev) || probe_overlap(&j->dev, &j->hdr)) {
		log_error("header target '%s' is on the device being converted ('%s'); name a file or partition elsewhere with --header", path, j->o->device);
		return E_REFUSED;
	}
	if (same_storage(&j->hdr, &j->st.dev) || (j->st.dev.fd >= 0 && probe_overlap(&j->st.dev, &j->hdr))) {
		log_error("header target '%s' is the state store ('%s'); name another file or partition with --header", path, j->o->state);
		return E_REFUSED;
	}
	if ((r = lock_dev(&j->hdr, "header target")) < 0 || (r = lock_loop_backing(&j->hdr, "header target")) < 0)
		return r;
	if (probe_in_use(&j->hdr, why, sizeof(why)) > 0) {
		log_error("header target '%s' is in use: %s; unmount or detach it, or name another --header", path, why);
		return E_REFUSED;
	}
	if (want_luks) { /* --decrypt, a fresh start: the header that opens the device */
		r = probe_luks_uuid(&j->hdr, why);
		if (r == -ENOENT)
			log_error("header target '%s' holds no LUKS header; give the detached header of '%s' with --header", path, j->o->device);
		else if (r < 0)
			log_error("cannot read header target '%s': %s", path, strerror(-r));
		return r == -ENOENT ? E_REFUSED : r;
	}
	if (j->hdr.is_block && j->hdr.size < len) {
		log_error("header target '%s' is too small: it has %s, the LUKS header needs %s; name a larger partition, or a file, with --header", path,
			  fmt_size(j->hdr.size, why, sizeof(why)), fmt_size(len, a, sizeof(a)));
		return E_REFUSED;
	}
	if (any) { /* the header write itself was cut: whatever it left is overwritten again */
		log_verbose("the write of the header to '%s' was interrupted; it is written again", path);
		return 0;
	}
	r = header_target_holds(j, j->hdr.is_block ? len : j->hdr.size, uuid);
	if (r < 0) {
		log_error("cannot read header target '%s': %s", path, strerror(-r));
		return r;
	}
	if (r == 2 && !uuid) {
		log_error("header target '%s' is not empty: it holds data that the LUKS header would overwrite; name a new file, or wipe the partition (blkdiscard, or zero it) first", path);
		return E_REFUSED;
	}
	if (r == 2) {
		log_error("header target '%s' holds neither zeros nor this conversion's header (UUID %s); check --header: nothing was written", path, uuid);
		return E_REFUSED;
	}
	return r;
}

static int read_plain(void *ctx, void *buf, size_t len, uint64_t off)
{
	return dev_pread_full(ctx, buf, len, off);
}


/*
 * --header: the step is the journal's size, so a state partition bounds it:
 * JOB_STEP_MAX, or what the partition holds after the header image, down
 * to 1 MiB (below that, job_check_state_store refuses the partition).
 */
static uint64_t detached_step(const struct job *j, uint64_t header_len)
{
	uint64_t fixed = STATE_HEADER_OFF + header_len + STATE_SB_SIZE, room;

	if (j->o->step_size)
		return j->o->step_size;
	if (!j->state_exists || !j->st.dev.is_block || j->st.dev.size <= fixed)
		return JOB_STEP_MAX;
	room = (j->st.dev.size - fixed) / MIB * MIB;
	return room > JOB_STEP_MAX ? JOB_STEP_MAX : room < MIB ? MIB : room;
}

static int plan_geometry(struct job *j)
{
	const struct convert_opts *o = j->o;
	uint64_t h = o->header ? 0 : job_header_size(j);
	uint64_t s = o->header ? detached_step(j, job_header_size(j)) : o->step_size ? o->step_size : (h < JOB_STEP_MAX ? h : JOB_STEP_MAX);
	char a[32];
	int r = geometry_init(&j->geo, j->dev.size, h, 0, s, o->sector_size);

	if (r == -ENOSPC) {
		log_error("device '%s' is too small (%llu bytes) for a %s LUKS header and data; nothing to convert", o->device,
			  (unsigned long long)j->dev.size, fmt_size(h, a, sizeof(a)));
		return E_REFUSED;
	}
	if (r < 0 && o->header) {
		log_error("step size %llu does not fit: it must be a multiple of the sector size (%u)", (unsigned long long)s, o->sector_size);
		return E_USAGE;
	}
	if (r < 0) {
		log_error("header size %llu and step size %llu do not fit: both must be multiples of the sector size (%u), the header of 4096, and the step at most the header size",
			  (unsigned long long)h, (unsigned long long)s, o->sector_size);
		return E_USAGE;
	}
	if (o->sector_size > 512 && (j->dev.size - h) % o->sector_size) {
		log_error("device '%s' has %llu bytes, which leaves no whole number of %u-byte sectors after the header; use --sector-size 512", o->device,
			  (unsigned long long)j->dev.size, o->sector_size);
		return E_REFUSED;
	}
	return 0;
}


/*
 * --used-only: the allocation map of the filesystem, taken once, now,
 * before anything is written; it goes on the state store and every resume
 * uses that copy.
 */
static int read_map(struct job *j, struct state_sb *sb)
{
	char a[32], b[32];
	int r;

	usedmap_free(&j->st.map);
	usedmap_init(&j->st.map, j->geo.data_size);
	r = fsmap_read(j->o->device, sb->fs_type, &j->st.map);
	if (r < 0) {
		if (r != E_REFUSED)
			log_error("cannot read the allocation map of '%s': %s; run without --used-only", j->o->device, strerror(-r));
		return r < 0 && r != E_REFUSED ? E_REFUSED : r;
	}
	j->st.have_map = 1;
	j->st.map_wipe = j->o->used_only == USED_ONLY_WIPE;
	sb->used_only = (uint32_t)j->o->used_only;
	sb->map_len = usedmap_encoded_len(&j->st.map);
	log_info("--used-only%s: the %s filesystem uses %s of %s (%zu extents)", j->st.map_wipe ? "=wipe" : "", sb->fs_type,
		 fmt_size(j->st.map.used, a, sizeof(a)), fmt_size(j->geo.data_size, b, sizeof(b)), j->st.map.n);
	return 0;
}

/*
 * A fresh start: the device-side marker of a conversion whose state is
 * lost, described in why (empty when there is none).
 */
static int marker_sign(struct job *j, char *why, size_t len)
{
	struct marker m;
	char when[32] = "at an unknown time", uuid[33];
	time_t t;
	struct tm tm;
	int r = marker_read(&j->dev, &m);

	if (r <= 0) {
		if (r < 0)
			log_error("cannot read device '%s': %s", j->o->device, strerror(-r));
		return r;
	}
	t = (time_t)m.created;
	if (m.created && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "on %Y-%m-%d at %H:%M UTC", &tm);
	for (int i = 0; i < 16; i++)
		snprintf(uuid + 2 * i, 3, "%02x", m.state_uuid[i]);
	snprintf(why, len, "luksipc's in-progress marker at byte %llu (LUKS UUID %s, started %s, state store '%s', state UUID %s)",
		 (unsigned long long)marker_offset(j->dev.size), m.luks_uuid, when, m.state_path[0] ? m.state_path : "?", uuid);
	return 0;
}

/*
 * The device-side marker goes in the device's last whole 4 KiB when the
 * filesystem ends below it and the header: the payload then ends there
 * (P = marker - H); the bytes between the filesystem's end and P were
 * never the filesystem's. Without room, the conversion runs without one,
 * and says so.
 */
static void plan_marker(struct job *j, struct state_sb *sb)
{
	uint64_t m = marker_offset(j->dev.size), h = j->geo.header_size;
	char a[32];

	if (!sb->fs_size)
		return; /* --no-seatbelt over data of unknown size: all of P is kept */
	if (m > h + j->geo.sector_size && sb->fs_size <= m - h) {
		sb->marker_off = m;
		j->geo.data_size = m - h;
		return;
	}
	if (j->o->header) /* nothing is to shrink in this mode: no advice to */
		log_warn("the %s filesystem on '%s' leaves no 4 KiB after it for luksipc's in-progress marker; the conversion runs without one, so keep its state store safe until it is done",
			 sb->fs_type, j->o->device);
	else
		log_warn("the %s filesystem on '%s' leaves no 4 KiB after it for luksipc's in-progress marker; the conversion runs without one, so keep its state store safe until it is done (shrink the filesystem by %s more to have one)",
			 sb->fs_type, j->o->device, fmt_size(sb->fs_size - (m > h ? m - h : 0), a, sizeof(a)));
}

/* The detached header's path, absolute, for status, finalize and the messages of a resume from elsewhere. */
static int set_header_path(struct job *j, struct state_sb *sb)
{
	char abs[8192], cwd[4096];
	const char *h = j->o->header;
	int n = h[0] != '/' && getcwd(cwd, sizeof(cwd)) ? snprintf(abs, sizeof(abs), "%s/%s", cwd, h) : snprintf(abs, sizeof(abs), "%s", h);

	if (n < 0 || (size_t)n >= sizeof(sb->header_path)) {
		log_error("--header '%s' is %d bytes long as an absolute path; the state store keeps at most %zu: use a shorter path", h, n,
			  sizeof(sb->header_path) - 1);
		return E_USAGE;
	}
	memcpy(sb->header_path, abs, (size_t)n + 1);
	return 0;
}

/*
 * --decrypt, both forms, once the plan and the store are checked: the
 * confirmation, the key, the header's volume key (where: "of 'DEVICE'" or
 * "in 'PATH'" for the messages), and the check that it decrypts to a whole
 * filesystem (a header of another device would write noise over the data).
 */
static int decrypt_begin(struct job *j, struct state_sb *sb, const struct luks_info *li, uint64_t len, const char *where)
{
	const struct convert_opts *o = j->o;
	int r;

	if (!o->batch) {
		r = ask_yes("This decrypts '%s' in place: afterwards anyone with the disk reads its data. Have a backup. Type YES to continue: ", o->device);
		if (r <= 0) {
			log_error(r < 0 ? "no terminal to confirm the decryption of '%s'; use --batch" : "decryption of '%s' not confirmed; nothing was written",
				  o->device);
			return E_REFUSED;
		}
	}
	if ((r = job_get_key(j, 0)) < 0)
		return r;
	j->vk_len = li->key_bytes;
	j->vk = secmem_alloc(j->vk_len);
	if (!j->vk)
		return -ENOMEM;
	r = luks_unlock_image(j->image, len, j->key.data, j->key.len, j->vk, &j->vk_len);
	key_free(&j->key); /* its last use */
	if (r == -EPERM) {
		log_error("the key does not open the LUKS header %s; give its key with --key-file (or type its passphrase): nothing was written", where);
		return E_KEY;
	}
	if (r < 0) {
		log_error("cannot open the LUKS header %s: %s", where, luks_last_error()[0] ? luks_last_error() : strerror(-r));
		return E_REFUSED;
	}
	if ((r = reencrypt_check_decrypted(j, j->vk, j->vk_len, li, sb)) < 0)
		return r;
	sb->mode = MODE_DECRYPT;
	sb->geo = j->geo;
	sb->sector_size = li->sector_size;
	sb->luks_version = (uint32_t)li->version;
	snprintf(sb->luks_uuid, sizeof(sb->luks_uuid), "%s", li->uuid);
	return job_start_existing(j, sb);
}

/*
 * --reencrypt --header PATH: a device that carries its header gets a new
 * volume key and a detached header at PATH. The payload moves down by the
 * old data offset into the old header's place (the forward walk, decrypted
 * with the old key and encrypted with the new one; geometry.h, forward),
 * so the new header says data offset 0. The old header goes to the state
 * store first; the new one goes to PATH last. Every refusal before anything
 * is written.
 */
static int reencrypt_detached_start(struct job *j)
{
	const struct convert_opts *o = j->o;
	struct state_sb sb;
	struct luks_info li;
	uint64_t ho, s;
	uint32_t ss;
	char a[32];
	int r;

	memset(&sb, 0, sizeof(sb));
	if (same_path(o->header, o->state)) {
		log_error("header target '%s' is the state store; name another file or partition with --header", o->header);
		return E_REFUSED;
	}
	if ((r = reencrypt_read_device_header(j, &li, 0)) < 0)
		return r;
	ho = li.data_offset;
	ss = li.sector_size > o->sector_size ? li.sector_size : o->sector_size;
	if (ho % 4096 || ho % ss) {
		log_error("the LUKS header of '%s' puts the data at byte %llu, which is no multiple of %u; luksipc cannot move it there: nothing was written",
			  o->device, (unsigned long long)ho, ss < 4096 ? 4096 : ss);
		return E_REFUSED;
	}
	s = o->step_size ? o->step_size : ho < JOB_STEP_MAX ? ho : JOB_STEP_MAX;
	r = geometry_init(&j->geo, j->dev.size, 0, ho, s, ss);
	if (r == -ENOSPC) {
		log_error("device '%s' is too small (%llu bytes) for its header and one %u-byte sector; nothing to re-encrypt", o->device,
			  (unsigned long long)j->dev.size, ss);
		return E_REFUSED;
	}
	if (r < 0) {
		log_error("step size %llu does not fit: it must be a multiple of the sector size (%u) and at most the data offset (%s)",
			  (unsigned long long)s, ss, fmt_size(ho, a, sizeof(a)));
		return E_USAGE;
	}
	/* the new header's data segment is the whole device, from byte 0: dm-crypt opens it only in whole sectors */
	if (o->sector_size > 512 && j->dev.size % o->sector_size) {
		log_error("device '%s' has %llu bytes, no whole number of %u-byte sectors for a detached header's data; use --sector-size 512",
			  o->device, (unsigned long long)j->dev.size, o->sector_size);
		return E_REFUSED;
	}
	if ((r = open_header_target(j, job_header_size(j), NULL, 0, 0)) < 0)
		return r;
	sb.mode = MODE_REENCRYPT;
	sb.geo = j->geo;
	sb.detached = 1;
	sb.header_len = j->hdr_len;
	sb.old_header_len = ho;
	if ((r = set_header_path(j, &sb)) < 0 || (r = job_check_state_store(j, state_plan(&sb))) < 0)
		return r;
	if (!o->batch && (r = job_confirm(o->device)) < 0)
		return r;
	if ((r = reencrypt_unlock_device_old(j, &li)) < 0 || (r = reencrypt_check_decrypted(j, j->old_vk, j->old_vk_len, &li, &sb)) < 0)
		return r;
	if ((r = job_get_key(j, 1)) < 0)
		return r;
	if (!o->uuid)
		j->keep_uuid = li.uuid;
	sb.sector_size = o->sector_size;
	sb.luks_version = (uint32_t)o->luks_version;
	sb.old_sector_size = li.sector_size;
	sb.old_key_bytes = li.key_bytes;
	sb.old_luks_version = (uint32_t)li.version;
	snprintf(sb.old_luks_uuid, sizeof(sb.old_luks_uuid), "%s", li.uuid);
	return job_start(j, &sb);
}

/*
 * --decrypt of a header on the device: the payload moves down by the data
 * offset into the header's place, from the start toward the end (geometry.h,
 * forward; engine.c, forward_steps). The header (its data offset's bytes)
 * goes to the state store first; the first steps overwrite it on the
 * device, and a resume opens the store's copy. Every refusal before
 * anything is written.
 */
static int decrypt_attached_start(struct job *j)
{
	const struct convert_opts *o = j->o;
	struct state_sb sb;
	struct luks_info li;
	uint64_t ho, s;
	char a[32], where[4200];
	int r;

	memset(&sb, 0, sizeof(sb));
	if ((r = reencrypt_read_device_header(j, &li, 1)) < 0)
		return r;
	free(j->image);
	j->image = j->old_image; /* the store's header image: the header being removed */
	j->old_image = NULL;
	ho = li.data_offset;
	if (ho % 4096) {
		log_error("the LUKS header of '%s' puts the data at byte %llu, which is no multiple of 4096; luksipc cannot move it there (cryptsetup reencrypt --decrypt can): nothing was written",
			  o->device, (unsigned long long)ho);
		return E_REFUSED;
	}
	s = o->step_size ? o->step_size : ho < JOB_STEP_MAX ? ho : JOB_STEP_MAX;
	r = geometry_init(&j->geo, j->dev.size, 0, ho, s, li.sector_size);
	if (r == -ENOSPC) {
		log_error("device '%s' is too small (%llu bytes) for its header and one %u-byte sector; nothing to decrypt", o->device,
			  (unsigned long long)j->dev.size, li.sector_size);
		return E_REFUSED;
	}
	if (r < 0) {
		log_error("step size %llu does not fit: it must be a multiple of the sector size (%u) and at most the data offset (%s)",
			  (unsigned long long)s, li.sector_size, fmt_size(ho, a, sizeof(a)));
		return E_USAGE;
	}
	sb.mode = MODE_DECRYPT;
	sb.geo = j->geo;
	sb.header_len = ho;
	if ((r = job_check_state_store(j, state_plan(&sb))) < 0)
		return r;
	snprintf(where, sizeof(where), "of '%s'", o->device);
	return decrypt_begin(j, &sb, &li, ho, where);
}

/*
 * --decrypt --header: LUKS to plaintext where the data lies (data offset 0),
 * each step journaled as its old ciphertext, never its plaintext; at the
 * end the header is wiped on its target, then "done". dev_uuid: the
 * device's own LUKS UUID when it carries a header: decrypt_attached_start.
 * Every refusal before anything is written.
 */
static int decrypt_start(struct job *j, const char *dev_uuid)
{
	const struct convert_opts *o = j->o;
	struct state_sb sb;
	struct luks_info li;
	size_t len = 0;
	uint64_t s;
	char where[4200];
	int dynamic = 1, r;

	memset(&sb, 0, sizeof(sb));
	if (dev_uuid && !o->header)
		return decrypt_attached_start(j);
	if (dev_uuid) {
		log_error("device '%s' carries its own LUKS header (UUID %s), so --header names no header of it; drop --header to decrypt it with its own: nothing was written",
			  o->device, dev_uuid);
		return E_REFUSED;
	}
	if (!o->header) {
		log_error("device '%s' carries no LUKS header; if its header is detached, give it with --header PATH: nothing was written", o->device);
		return E_REFUSED;
	}
	if (same_path(o->header, o->state)) {
		log_error("header target '%s' is the state store; name the detached header with --header and the store with --state", o->header);
		return E_REFUSED;
	}
	if ((r = open_header_target(j, 0, NULL, 1, 0)) < 0)
		return r;
	free(j->image);
	j->image = NULL;
	r = luks_read_detached(o->header, &j->image, &len, &dynamic);
	if (r == 0)
		r = luks_inspect_image(j->image, len, &li);
	if (r < 0) {
		log_error("cannot read the LUKS header in '%s': %s", o->header, luks_last_error()[0] ? luks_last_error() : strerror(-r));
		return E_REFUSED;
	}
	if (strcmp(li.cipher, LUKS_CIPHER) || strcmp(li.cipher_mode, LUKS_CIPHER_MODE) || li.unsupported || (li.key_bytes != 32 && li.key_bytes != 64) ||
	    (li.sector_size != 512 && li.sector_size != 4096)) {
		log_error("the LUKS header in '%s' uses %s-%s%s; luksipc decrypts " LUKS_CIPHER_SPEC " only (cryptsetup reencrypt --decrypt does the rest)",
			  o->header, li.cipher, li.cipher_mode, li.unsupported ? " with features luksipc does not handle" : "");
		return E_REFUSED;
	}
	if (li.data_offset != 0 || !dynamic) {
		log_error("the LUKS header in '%s' puts the data %s; luksipc decrypts a detached header's data from byte 0 to the end of '%s' only",
			  o->header, li.data_offset ? "at a data offset" : "in a segment of fixed size", o->device);
		return E_REFUSED;
	}
	j->hdr_len = len;
	s = detached_step(j, len);
	r = geometry_init(&j->geo, j->dev.size, 0, 0, s, li.sector_size);
	if (r == -ENOSPC) {
		log_error("device '%s' is too small (%llu bytes) for one %u-byte sector; nothing to decrypt", o->device, (unsigned long long)j->dev.size,
			  li.sector_size);
		return E_REFUSED;
	}
	if (r < 0) {
		log_error("step size %llu does not fit: it must be a multiple of the sector size (%u)", (unsigned long long)s, li.sector_size);
		return E_USAGE;
	}
	if ((r = set_header_path(j, &sb)) < 0)
		return r;
	sb.header_len = len;
	sb.detached = 1;
	sb.journal_len = j->geo.step_size;
	if ((r = job_check_state_store(j, state_plan(&sb))) < 0)
		return r;
	snprintf(where, sizeof(where), "in '%s'", o->header);
	return decrypt_begin(j, &sb, &li, len, where);
}

static int start(struct job *j)
{
	const struct convert_opts *o = j->o;
	struct state_sb sb;
	char uuid[41], marker_why[512] = "";
	int r;

	memset(&sb, 0, sizeof(sb));
	/* a map read from a store whose preparation was cut short is not this run's */
	usedmap_free(&j->st.map);
	j->st.have_map = j->st.map_wipe = 0;
	r = probe_luks_uuid(&j->dev, uuid);
	if (r < 0 && r != -ENOENT) {
		log_error("cannot read device '%s': %s", o->device, strerror(-r));
		return r;
	}
	if (o->decrypt)
		return decrypt_start(j, r == 0 ? uuid : NULL);
	if (r == 0 && o->reencrypt && o->old_header) {
		log_error("device '%s' carries its own LUKS header (UUID %s), so --old-header names no header of it; drop --old-header to re-encrypt it with its own: nothing was written",
			  o->device, uuid);
		return E_REFUSED;
	}
	if (r == 0 && o->reencrypt && o->header)
		return reencrypt_detached_start(j);
	if (o->reencrypt && o->header) {
		log_error("device '%s' carries no LUKS header; --reencrypt --header moves a header off the device (a detached header's data with a new detached header is not supported yet): nothing was written",
			  o->device);
		return E_REFUSED;
	}
	if (o->reencrypt && (r == 0 || o->old_header))
		return reencrypt_start(j);
	if (r == 0) {
		log_error("device '%s' is already LUKS (UUID %s) and '%s' holds no conversion state for it; to re-encrypt it use --reencrypt", o->device, uuid, o->state);
		return E_REFUSED;
	}
	if (o->reencrypt) {
		log_error("device '%s' is not LUKS, so there is nothing to re-encrypt: if its LUKS header is detached, give it with --old-header PATH; to encrypt plaintext, drop --reencrypt", o->device);
		return E_REFUSED;
	}
	if ((r = plan_geometry(j)) < 0)
		return r;
	if (o->header && same_path(o->header, o->state)) {
		log_error("header target '%s' is the state store; name another file or partition with --header", o->header);
		return E_REFUSED;
	}
	if (o->header && (r = open_header_target(j, job_header_size(j), NULL, 0, 0)) < 0)
		return r;
	/* the marker first: it tells more than any later refusal would */
	if ((r = marker_sign(j, marker_why, sizeof(marker_why))) < 0)
		return r;
	if (marker_why[0] && (r = job_check_half_converted(j, read_plain, &j->dev, j->dev.size, "", marker_why)) < 0)
		return r;
	if ((r = job_check_filesystem(j, &j->dev, j->geo.data_size, &sb)) < 0)
		return r;
	if ((r = job_check_half_converted(j, read_plain, &j->dev, j->dev.size, sb.fs_type, NULL)) < 0)
		return r;
	plan_marker(j, &sb);
	if (o->used_only && (r = read_map(j, &sb)) < 0)
		return r;
	sb.header_len = o->header ? j->hdr_len : j->geo.header_size;
	if (o->header) {
		sb.detached = 1;
		sb.journal_len = j->geo.step_size;
		if ((r = set_header_path(j, &sb)) < 0)
			return r;
	}
	if ((r = job_check_state_store(j, state_plan(&sb))) < 0)
		return r;
	if (!o->batch && (r = job_confirm(o->device)) < 0)
		return r;
	log_debug("device, filesystem and state store checked");
	if ((r = job_get_key(j, 1)) < 0)
		return r;
	sb.mode = MODE_ENCRYPT;
	sb.geo = j->geo;
	sb.sector_size = j->geo.sector_size;
	sb.luks_version = (uint32_t)o->luks_version;
	return job_start(j, &sb);
}

/* The superblock's layout of the store: 1 if the store holds all of it, 0 if it is shorter. */
static int store_complete(struct job *j)
{
	struct state_sb plan = j->st.sb;
	uint64_t need = state_plan(&plan);

	return j->st.dev.size >= need && (j->st.dev.is_block || j->st.dev.size >= j->st.sb.store_size);
}

/*
 * A store with a progress record must still hold everything its superblock
 * places in it. (Without one, a short store is what a cut during its
 * creation leaves, when the file's new size was not yet durable.)
 */
static int check_store_size(struct job *j)
{
	struct state_sb plan = j->st.sb;
	uint64_t need = state_plan(&plan);

	if (!store_complete(j)) {
		log_error("state store '%s' is truncated: it has %llu bytes, the conversion recorded in it needs %llu; restore the state store from a copy, or from where it was written",
			  j->o->state, (unsigned long long)j->st.dev.size, (unsigned long long)(j->st.sb.store_size > need ? j->st.sb.store_size : need));
		return E_REFUSED;
	}
	return 0;
}

/* The superblock places the images and the journal where this version does. */
static int check_layout(struct job *j)
{
	struct state_sb plan = j->st.sb;
	const struct state_sb *sb = &j->st.sb;

	state_plan(&plan);
	if (plan.header_off != sb->header_off || plan.old_header_off != sb->old_header_off || plan.journal_off != sb->journal_off ||
	    plan.map_off != sb->map_off || (sb->used_only && sb->mode != MODE_ENCRYPT)) {
		log_error("state store '%s' records impossible parameters; it is damaged: restore it from a copy", j->o->state);
		return E_REFUSED;
	}
	if (j->st.sb_copies != 7)
		log_warn("state store '%s': superblock copy %s damaged; using copy %s", j->o->state,
			 !(j->st.sb_copies & 1) ? "A is" : !(j->st.sb_copies & 2) ? "B is" : "C (at the end) is",
			 j->st.sb_copies & 1 ? "A" : j->st.sb_copies & 2 ? "B" : "C");
	return 0;
}

/*
 * Mode, header and journal agree with the geometry. Attached: the header is
 * the data offset. Detached (H = 0 from byte 0): each step goes through the
 * journal. Forward (H = 0 < src): --decrypt of an attached header (the store
 * holds the old header, the data offset's bytes), or --reencrypt --header
 * (the new header detached, the old one's data offset backed up); no
 * journal either way.
 */
static int layout_consistent(const struct state_sb *sb, const struct geometry *g)
{
	if (g->forward)
		return sb->journal_len == 0 &&
		       (sb->detached ? sb->mode == MODE_REENCRYPT && sb->header_len >= 4096 && sb->header_len % 4096 == 0 &&
					       sb->old_header_len == g->src_offset
				     : sb->mode == MODE_DECRYPT && sb->header_len == g->src_offset);
	if (sb->detached)
		return g->header_size == 0 && sb->mode != MODE_REENCRYPT && sb->header_len >= 4096 &&
		       (sb->mode != MODE_ENCRYPT || sb->header_len % 4096 == 0) && sb->journal_len == g->step_size;
	return g->header_size != 0 && sb->header_len == g->header_size && sb->mode != MODE_DECRYPT;
}

/* Everything in the superblock that must agree with the device. */
static int check_identity(struct job *j)
{
	const struct state_sb *sb = &j->st.sb;
	struct geometry g;

	if (sb->mode != MODE_ENCRYPT && sb->mode != MODE_REENCRYPT && sb->mode != MODE_DECRYPT) {
		log_error("state store '%s' was made by a newer luksipc; use that version", j->o->state);
		return E_REFUSED;
	}
	if (sb->geo.device_size != j->dev.size) {
		log_error("state store '%s' belongs to another device: it records %llu bytes, '%s' has %llu; check -d and --state", j->o->state,
			  (unsigned long long)sb->geo.device_size, j->o->device, (unsigned long long)j->dev.size);
		return E_REFUSED;
	}
	if (geometry_init(&g, sb->geo.device_size, sb->geo.header_size, sb->geo.src_offset, sb->geo.step_size, sb->geo.sector_size) < 0 ||
	    (sb->marker_off && (sb->mode != MODE_ENCRYPT || sb->marker_off != marker_offset(sb->geo.device_size) ||
				sb->marker_off <= g.header_size + g.sector_size || sb->marker_off - g.header_size > g.data_size))) {
		log_error("state store '%s' records impossible parameters; it is damaged", j->o->state);
		return E_REFUSED;
	}
	if (sb->marker_off)
		g.data_size = sb->marker_off - g.header_size;
	/* attached: the header is the data offset; detached: H = 0, and each step goes through the journal;
	   --decrypt of an attached header: forward, the store holds the old header (the data offset's bytes) */
	if (!layout_consistent(sb, &g)) {
		log_error("state store '%s' records impossible parameters; it is damaged", j->o->state);
		return E_REFUSED;
	}
	if (g.data_size != sb->geo.data_size || (sb->key_bytes != 32 && sb->key_bytes != 64)) {
		log_error("state store '%s' records impossible parameters; it is damaged", j->o->state);
		return E_REFUSED;
	}
	j->geo = g;
	return check_layout(j);
}

static int already_done(struct job *j)
{
	char uuid[41];

	if (j->st.sb.mode == MODE_DECRYPT) {
		log_info("device '%s' is already decrypted (it was LUKS UUID %s); nothing to do", j->o->device, j->st.sb.luks_uuid);
		return 0;
	}
	if (j->st.sb.detached && j->hdr.fd >= 0) {
		log_info("device '%s' is already converted (LUKS UUID %s, header in '%s'); nothing to do", j->o->device, j->st.sb.luks_uuid, j->o->header);
		return 0;
	}
	if (probe_luks_uuid(&j->dev, uuid) == 0 && strcmp(uuid, j->st.sb.luks_uuid) == 0) {
		log_info("device '%s' is already converted (LUKS UUID %s); nothing to do", j->o->device, uuid);
		return 0;
	}
	log_error("state store '%s' records a finished conversion of another device (LUKS UUID %s); check -d and --state", j->o->state, j->st.sb.luks_uuid);
	return E_REFUSED;
}

/* --used-only: the map saved at the start, authenticated with the key just unlocked. */
static int load_map(struct job *j)
{
	int r;

	if (!j->st.sb.used_only)
		return 0;
	r = state_read_map(&j->st);
	if (r == -EBADMSG) {
		log_error("state store '%s' is damaged: its allocation map (--used-only) fails its checksum; restore the state store from a copy", j->o->state);
		return E_REFUSED;
	}
	if (r == -EKEYREJECTED) {
		log_error("the allocation map in state store '%s' fails authentication; it was not written by this conversion: restore the state store from a copy", j->o->state);
		return E_REFUSED;
	}
	return r;
}

static int unlock(struct job *j)
{
	int r = state_read_header(&j->st, &j->image);

	if (r == -EBADMSG) {
		log_error("state store '%s' is damaged: its LUKS header image fails its checksum", j->o->state);
		return E_REFUSED;
	}
	if (r < 0)
		return r;
	if ((r = job_get_key(j, 0)) < 0)
		return r;
	j->vk_len = j->st.sb.key_bytes;
	j->vk = secmem_alloc(j->vk_len);
	if (!j->vk)
		return -ENOMEM;
	r = luks_unlock_image(j->image, j->st.sb.header_len, j->key.data, j->key.len, j->vk, &j->vk_len);
	key_free(&j->key); /* its last use */
	if (r == -EPERM) {
		log_error("the key does not open the LUKS header of the conversion in '%s'; give the key used when it started", j->o->state);
		return E_KEY;
	}
	if (r < 0) {
		log_error("cannot open the LUKS header image in '%s': %s", j->o->state, luks_last_error()[0] ? luks_last_error() : strerror(-r));
		return E_REFUSED;
	}
	state_set_key(&j->st, j->vk, j->vk_len);
	return load_map(j);
}

/*
 * A prepared state (no progress record) may only start if the device is
 * still what it was prepared from: not the finished result (a stale copy of
 * the state replayed after completion), and the first step's source
 * unchanged (then no byte below the payload's end has been written, see
 * docs/format.md). Reads only.
 */
static int check_prepared_device(struct job *j)
{
	const struct state_sb *sb = &j->st.sb;
	char uuid[41];
	uint8_t *buf = NULL;
	uint8_t sum[32];
	int r = probe_luks_uuid(&j->dev, uuid);

	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && sb->mode == MODE_ENCRYPT) {
		log_error("state store '%s' holds a conversion of plaintext prepared but never started, yet '%s' is already LUKS (UUID %s%s); the state is a stale copy or belongs to another device: nothing was written",
			  j->o->state, j->o->device, uuid, strcmp(uuid, sb->luks_uuid) == 0 ? ", the UUID this state prepared: it was converted since" : "");
		return E_REFUSED;
	}
	/* --old-header: the old header was detached (source offset 0); the device carried none */
	if (sb->mode == MODE_REENCRYPT && sb->geo.src_offset == 0 && r == 0) {
		log_error("state store '%s' holds a re-encryption of a device with a detached header, prepared but never started, yet '%s' carries a LUKS header now (UUID %s); the state is a stale copy or belongs to another device: nothing was written",
			  j->o->state, j->o->device, uuid);
		return E_REFUSED;
	}
	if (sb->mode == MODE_REENCRYPT && sb->geo.src_offset > 0) {
		buf = dev_buf_alloc(sb->old_header_len);
		if (!buf)
			return -ENOMEM;
		r = r == 0 ? dev_pread_full(&j->dev, buf, sb->old_header_len, 0) : -ENOENT;
		if (r == 0)
			SHA256(buf, sb->old_header_len, sum);
		free(buf);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT || memcmp(sum, sb->old_header_sha256, 32) != 0) {
			log_error("state store '%s' holds a re-encryption prepared but never started, yet the LUKS header of '%s' is no longer the one it was prepared from; the state is a stale copy or belongs to another device: nothing was written",
				  j->o->state, j->o->device);
			return E_REFUSED;
		}
	}
	return 0;
}

/*
 * The first step's source as it is now against the evidence taken when the
 * state was prepared. That evidence is keyed (docs/format.md), so this runs
 * after unlock; a preparation cut short (no good header image, so no key)
 * never had a record and wrote nothing, and the checks above cover it.
 */
static int check_prepared_first(struct job *j)
{
	const struct state_sb *sb = &j->st.sb;
	int r;

	if ((r = job_make_first_record(j)) < 0)
		return r;
	if (j->first.ahead.off != sb->first.off || j->first.ahead.len != sb->first.len ||
	    memcmp(j->first.ahead.sha256, sb->first.sha256, 32) != 0) {
		log_error("state store '%s' holds a conversion prepared but never started (no progress record), yet '%s' no longer holds what it held then: the state is a stale copy, its records were lost, or the device was changed; nothing was written: restore the state store from the run that wrote to '%s'",
			  j->o->state, j->o->device, j->o->device);
		return E_REFUSED;
	}
	return 0;
}

/* Header images of a prepared state: 1 both good, 0 one missing or failing its checksum (preparation cut short). */
static int prepared_images_good(struct job *j)
{
	uint8_t *img = NULL;
	int r;

	if (!store_complete(j))
		return 0;
	r = state_read_header(&j->st, &img);

	free(img);
	img = NULL;
	if (r == 0 && j->st.sb.mode == MODE_REENCRYPT) {
		r = state_read_old_header(&j->st, &img);
		free(img);
	}
	/* keyless here: the map's checksum; unlock checks its MAC */
	if (r == 0 && j->st.sb.used_only)
		r = state_read_map(&j->st);
	return r == -EBADMSG ? 0 : r < 0 ? r : 1;
}

static int start(struct job *j);

/* A record that names a journal was written after the journal was durable: a bad journal is damage. */
static int check_journal(struct job *j)
{
	uint64_t len = j->st.rec.journal_f - j->st.rec.journal_a;
	uint8_t *buf;
	int r;

	if (j->st.rec.journal_f == 0)
		return 0;
	buf = len <= j->st.sb.journal_len ? dev_buf_alloc(len) : NULL;
	r = buf ? state_read_journal(&j->st, buf) : len > j->st.sb.journal_len ? -EBADMSG : -ENOMEM;
	free(buf);
	if (r == -EBADMSG) {
		log_error("state store '%s' is damaged: the journal of the step in progress fails its checksum, so that step cannot be redone; restore the state store from a copy",
			  j->o->state);
		return E_REFUSED;
	}
	return r;
}

/*
 * The state holds no progress record: the device has not been written.
 * 0 with record 1 committed, 1 when it prepared and ran the conversion
 * afresh, or an error.
 */
static int start_prepared(struct job *j)
{
	int r;

	if (j->st.sb.started) {
		log_error("state store '%s' is damaged: its superblock says the conversion of '%s' started, but no progress record is left; starting over would encrypt data twice, so nothing was written: restore the store from a copy (docs/format.md, \"Started\")",
			  j->o->state, j->o->device);
		return E_REFUSED;
	}
	r = check_prepared_device(j);
	if (r < 0)
		return r;
	r = prepared_images_good(j);
	if (r < 0)
		return r;
	if (r == 0) {
		log_info("the preparation of the conversion in '%s' was cut short before anything was written to '%s'; preparing it again",
			 j->o->state, j->o->device);
		j->st.have_sb = 0;
		r = start(j);
		return r < 0 ? r : 1;
	}
	if ((r = unlock(j)) < 0)
		return r;
	if (j->st.sb.mode == MODE_REENCRYPT && (r = reencrypt_unlock_old(j)) < 0)
		return r;
	if ((r = check_prepared_first(j)) != 0)
		return r;
	r = state_load_records(&j->st);
	if (r != -ENOENT) {
		log_error("state store '%s' changed while it was read; make sure no other luksipc run uses it", j->o->state);
		return r < 0 ? r : E_REFUSED;
	}
	log_info("starting the prepared conversion of '%s'", j->o->device);
	return job_first_record(j);
}

/* --used-only: the record in force (its HMAC checked) names the map in use. */
static int check_record_map(struct job *j)
{
	if (j->st.sb.used_only && CRYPTO_memcmp(j->st.rec.map_sha256, j->st.sb.map_sha256, 32) != 0) {
		log_error("state store '%s' is damaged: its allocation map (--used-only) is not the one its progress records were made with; restore the state store from a copy", j->o->state);
		return E_REFUSED;
	}
	return 0;
}

/*
 * A conversion cut between the started mark and its marker: write the
 * marker now. A marker of another conversion means the store and the
 * device do not belong together.
 */
static int ensure_marker(struct job *j)
{
	const struct state_sb *sb = &j->st.sb;
	struct marker m;
	int r;

	if (!sb->marker_off || j->st.rec.phase == PHASE_DONE)
		return 0;
	r = marker_read(&j->dev, &m);
	if (r < 0)
		return r;
	if (r == 1 && memcmp(m.state_uuid, sb->state_uuid, 16) != 0) {
		log_error("device '%s' carries the in-progress marker of another luksipc conversion (state store '%s'), not of the one in '%s'; nothing was written: give the state store of that conversion with --state",
			  j->o->device, m.state_path, j->o->state);
		return E_REFUSED;
	}
	if (r == 1)
		return 0;
	log_verbose("writing the in-progress marker at byte %llu of '%s'", (unsigned long long)sb->marker_off, j->o->device);
	return marker_write(&j->dev, sb, j->o->state);
}

/*
 * The detached header named again on a resume: --header must be given
 * exactly when the conversion was started with it; the target must hold
 * zeros, or this conversion's header once it is written. Only reads.
 */
static int check_detached(struct job *j, int finishing)
{
	const struct state_sb *sb = &j->st.sb;
	char given[8192], cwd[4096];
	int r;

	if (sb->detached && !j->o->header) {
		log_error("the conversion in '%s' keeps its LUKS header apart, in '%s'; run the same command with --header '%s'", j->o->state,
			  sb->header_path, sb->header_path);
		return E_REFUSED;
	}
	if (!sb->detached && j->o->header) {
		log_error("the conversion in '%s' writes its LUKS header onto '%s' itself; drop --header", j->o->state, j->o->device);
		return E_REFUSED;
	}
	if (!sb->detached)
		return 0;
	if (j->o->header[0] != '/' && getcwd(cwd, sizeof(cwd)))
		snprintf(given, sizeof(given), "%s/%s", cwd, j->o->header);
	else
		snprintf(given, sizeof(given), "%s", j->o->header);
	if (strcmp(given, sb->header_path))
		log_warn("--header '%s' is not the path this conversion started with ('%s'); the header goes to '%s'", j->o->header, sb->header_path,
			 j->o->header);
	r = open_header_target(j, sb->header_len, sb->luks_uuid, 0, finishing);
	return r < 0 ? r : 0;
}

static int resume(struct job *j)
{
	int r = check_identity(j), d;

	if (r < 0)
		return r;
	r = state_load_records(&j->st);
	if (r < 0 && r != -ENOENT)
		return r;
	/* with every step done and no journal, only the header write (or wipe) is left: a cut in it leaves anything there */
	d = check_detached(j, r == 0 && j->st.rec.phase != PHASE_DONE && j->st.rec.frontier == 0 && !j->st.rec.journal_f);
	if (d < 0)
		return d;
	if (r == 0 && j->st.rec.phase == PHASE_DONE)
		return already_done(j);
	if (r == 0 && (r = check_store_size(j)) < 0)
		return r;
	if (r == -ENOENT) { /* prepared, never started */
		if ((r = start_prepared(j)) != 0)
			return r > 0 ? 0 : r;
	} else {
		if ((r = unlock(j)) < 0)
			return r;
		if (j->st.sb.mode == MODE_REENCRYPT && (r = reencrypt_unlock_old(j)) < 0)
			return r;
		r = state_load_records(&j->st);
		/* a cut after record 1, before the started mark: mark it now */
		if (r == 0 && !j->st.sb.started && j->st.rec.phase != PHASE_DONE) {
			int m = state_mark_started(&j->st);

			if (m < 0)
				return m;
		}
		if (j->st.rec_hmac_bad && (r < 0 || j->st.rec.phase == PHASE_DONE)) {
			log_error("a progress record in '%s' fails authentication; it was not written by this conversion", j->o->state);
			return E_REFUSED;
		}
		if (r == -ENOENT) {
			log_error("state store '%s' changed while it was read; make sure no other luksipc run uses it", j->o->state);
			return E_REFUSED;
		}
		if (r < 0)
			return r;
		if ((r = check_journal(j)) < 0)
			return r;
		if ((r = check_record_map(j)) < 0)
			return r;
	}
	r = engine_verify(&j->dev, &j->st);
	if (r == -ESTALE) {
		log_error("state store '%s' does not match the contents of '%s' (a stale or copied state, or another device); nothing was written", j->o->state, j->o->device);
		return E_REFUSED;
	}
	if (r < 0 || (r = ensure_marker(j)) < 0) /* the first write of a resume, after every check */
		return r;
	log_info("resuming the conversion of '%s' at %.1f%%", j->o->device, 100.0 * (double)(j->geo.data_size - j->st.rec.frontier) / (double)j->geo.data_size);
	return job_run_engine(j);
}

int convert_run(const struct convert_opts *o)
{
	struct job j;
	int r;

	job_init(&j, o);
	r = open_device(&j);
	if (r == 0)
		r = open_state(&j);
	if (r == 0)
		r = j.st.have_sb ? resume(&j) : start(&j);
	/* Helpers below do not log; make sure an unexpected failure says something. */
	if (r < 0 && r > -4096 && r != -EINTR && log_errors == 0)
		log_error("cannot convert '%s' with state '%s': %s; fix the cause and run the same command again", o->device, o->state, strerror(-r));
	job_free(&j);
	return r;
}
