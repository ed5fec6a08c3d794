/* status and finalize: read the state store, compare it with the device. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "lock.h"
#include "luks.h"
#include "luksipc.h"
#include "notes.h"
#include "probe.h"
#include "state.h"
#include "status.h"

static const char *phase_name(const struct state *s)
{
	if (!s->have_rec)
		return "new";
	return s->rec.phase == PHASE_DONE ? "done" : s->rec.frontier == 0 ? "header" : "converting";
}

/*
 * A finished conversion with a detached header: the header where it was
 * written is this conversion's. 1 yes, 0 no (or not readable).
 */
static int detached_header_matches(const struct state *s, const char *header)
{
	struct dev h;
	char uuid[41];
	int r;

	if (dev_open(&h, header ? header : s->sb.header_path, TARGET_OTHER, 0) < 0)
		return 0;
	r = probe_luks_uuid(&h, uuid) == 0 && strcmp(uuid, s->sb.luks_uuid) == 0;
	dev_close(&h);
	return r;
}

/*
 * 1 matches, 0 does not, -1 unknown (device not readable). Never writes.
 * Without the key: the output of the last step (plain SHA-256), not the
 * keyed evidence of what is still to convert (docs/format.md).
 */
static int matches_device(const struct state *s, const char *path, const char *header)
{
	struct dev d;
	char uuid[41];
	int r;

	if (!path || dev_open(&d, path, TARGET_DEVICE, 0) < 0)
		return -1;
	if (d.size != s->sb.geo.device_size)
		r = 0;
	else if (s->have_rec && s->rec.phase == PHASE_DONE && s->sb.mode == MODE_DECRYPT)
		r = s->rec.behind.len && engine_check_evidence(&d, s, &s->rec.behind, 0) == 0; /* the header is wiped: the last plaintext written */
	else if (s->have_rec && s->rec.phase == PHASE_DONE && s->sb.detached)
		r = detached_header_matches(s, header);
	else if (s->have_rec && s->rec.phase == PHASE_DONE)
		r = probe_luks_uuid(&d, uuid) == 0 && strcmp(uuid, s->sb.luks_uuid) == 0;
	else if (s->have_rec && s->rec.behind.len)
		r = engine_check_evidence(&d, s, &s->rec.behind, 0) == 0;
	else if (s->sb.mode == MODE_REENCRYPT)
		r = probe_luks_uuid(&d, uuid) == 0 && strcmp(uuid, s->sb.old_luks_uuid) == 0;
	else
		r = probe_luks_uuid(&d, uuid) < 0;
	dev_close(&d);
	return r;
}

static int open_store(struct state *s, const char *path, int rw)
{
	int r = dev_open(&s->dev, path, TARGET_STATE, rw ? DEV_RDWR | DEV_EXCL : 0);

	if (r < 0) {
		log_error("cannot open state store '%s': %s", path, strerror(-r));
		return E_REFUSED;
	}
	/* finalize wipes: not while a run uses the store. status only reads: no lock. */
	if (rw && (r = lock_dev(&s->dev, "state store")) < 0)
		return r;
	r = state_read_sb(s);
	if (r == -EPROTO) {
		log_error("state store '%s': format version %u, this luksipc reads versions %u to %u; use the luksipc that started the conversion",
			  path, s->found_format, STATE_FORMAT_PLAIN, STATE_FORMAT);
		return E_REFUSED;
	}
	if (r == -ENOENT) {
		char what[160];

		if (state_find_remnants(s, what, sizeof(what)) == 1)
			log_error("'%s' holds %s but no valid superblock: it is damaged; restore it from a copy", path, what);
		else
			log_error("'%s' holds no luksipc state", path);
		return E_REFUSED;
	}
	if (r == 0 && s->dev.size < state_tail_sb_off(s->sb.store_size) + STATE_SB_SIZE && !s->dev.is_block) {
		log_error("state store '%s' is truncated: it has %llu bytes of the %llu it was made with; restore it from a copy", path,
			  (unsigned long long)s->dev.size, (unsigned long long)s->sb.store_size);
		return E_REFUSED;
	}
	if (r == 0)
		r = state_load_records(s);
	return r == -ENOENT ? 0 : r;
}

static void print_status(struct state *s, const char *path, const char *device, int match, int json)
{
	const struct state_sb *sb = &s->sb;
	unsigned long long done = s->have_rec ? sb->geo.data_size - s->rec.frontier : 0;
	const char *m = match < 0 ? "unknown" : match ? "yes" : "no";
	const char *mode = sb->mode == MODE_DECRYPT ? "decrypt" : sb->mode == MODE_REENCRYPT ? "reencrypt" : "encrypt";
	/* --used-only: what the map counts as used (the whole payload otherwise) */
	const char *used = sb->used_only == USED_ONLY_WIPE ? "wipe" : sb->used_only ? "yes" : "no";
	unsigned long long used_bytes = sb->used_only ? sb->map_used : sb->geo.data_size;

	if (json) {
		printf("{\"state\":\"%s\",\"mode\":\"%s\",\"phase\":\"%s\",\"device\":\"%s\",\"device_size\":%llu,\"header_size\":%llu,"
		       "\"step_size\":%llu,\"data_size\":%llu,\"done\":%llu,\"type\":\"luks%u\",\"cipher\":\"" LUKS_CIPHER_SPEC "\","
		       "\"key_size\":%u,\"sector_size\":%u,\"luks_uuid\":\"%s\",\"matches_device\":%s,\"used_only\":\"%s\",\"used_bytes\":%llu,"
		       "\"marker_offset\":%llu,\"detached_header\":%s%s%s}\n",
		       path, mode, phase_name(s), device, (unsigned long long)sb->geo.device_size, (unsigned long long)sb->geo.header_size,
		       (unsigned long long)sb->geo.step_size, (unsigned long long)sb->geo.data_size, done, sb->luks_version,
		       sb->key_bytes * 8, sb->sector_size, sb->luks_uuid, match < 0 ? "null" : match ? "true" : "false", used, used_bytes,
		       (unsigned long long)sb->marker_off, sb->detached ? "\"" : "", sb->detached ? sb->header_path : "null",
		       sb->detached ? "\"" : "");
		return;
	}
	printf("state: %s\nmode: %s\nphase: %s\ndevice: %s\ndevice-size: %llu\nheader-size: %llu\nstep-size: %llu\n"
	       "data-size: %llu\ndone: %llu\ntype: luks%u\ncipher: " LUKS_CIPHER_SPEC "\nkey-size: %u\nsector-size: %u\n"
	       "luks-uuid: %s\nmatches-device: %s\nused-only: %s\nused-bytes: %llu\nmarker-offset: %llu\n",
	       path, mode, phase_name(s), device, (unsigned long long)sb->geo.device_size, (unsigned long long)sb->geo.header_size,
	       (unsigned long long)sb->geo.step_size, (unsigned long long)sb->geo.data_size, done, sb->luks_version,
	       sb->key_bytes * 8, sb->sector_size, sb->luks_uuid, m, used, used_bytes, (unsigned long long)sb->marker_off);
	if (sb->detached)
		printf("detached-header: %s\n", sb->header_path);
}

int status_run(const char *path, const char *device, int json, int notes, const char *framework)
{
	struct state s;
	char *text = NULL;
	int match, r;

	memset(&s, 0, sizeof(s));
	r = open_store(&s, path, 0);
	if (r < 0)
		goto out;
	if (notes) {
		r = state_read_notes(&s, &text);
		if (r == 0)
			notes_print(stdout, text, framework, path);
		goto out;
	}
	if (!device)
		device = s.sb.device_path;
	match = matches_device(&s, device, NULL);
	print_status(&s, path, device, match, json);
	r = match == 0 ? E_REFUSED : 0;
out:
	free(text);
	dev_close(&s.dev);
	return r;
}

/* Unless --batch: YES on the terminal before the state of a finished conversion is wiped. */
static int confirm_wipe(const char *path, const char *device)
{
	int r = ask_yes("This wipes the state in '%s' (records, admin notes, header images) of the finished conversion of '%s'. Type YES to continue: ",
			path, device);

	if (r < 0) {
		log_error("no terminal to confirm wiping the state in '%s'; use --batch", path);
		return E_REFUSED;
	}
	if (r == 0) {
		log_error("wiping the state in '%s' not confirmed; nothing was wiped", path);
		return E_REFUSED;
	}
	return 0;
}

int finalize_run(const char *path, const char *device, const char *header, int batch)
{
	struct state s;
	int r;

	memset(&s, 0, sizeof(s));
	r = open_store(&s, path, 1);
	if (r < 0)
		goto out;
	if (!device)
		device = s.sb.device_path;
	/* a detached header named at boot under /run is elsewhere in the booted system: --header says where */
	if (s.have_rec && s.rec.phase == PHASE_DONE && s.sb.detached && s.sb.mode != MODE_DECRYPT && !header &&
	    access(s.sb.header_path, F_OK) < 0) {
		log_error("the header of the conversion in '%s' is not at '%s' (where it was written); give its path now with --header, so that finalize can check it before the store's copy is wiped",
			  path, s.sb.header_path);
		r = E_REFUSED;
		goto out;
	}
	if (!s.have_rec || s.rec.phase != PHASE_DONE || matches_device(&s, device, header) != 1) {
		log_error("the conversion in '%s' is not finished on '%s'; the state is still needed, nothing was wiped", path, device);
		r = E_REFUSED;
		goto out;
	}
	if (!batch && (r = confirm_wipe(path, device)) < 0)
		goto out;
	r = state_wipe(&s);
	if (r == 0 && s.sb.mode == MODE_DECRYPT)
		log_info("wiped the state in '%s'; '%s' holds plaintext (it was LUKS UUID %s)", path, device, s.sb.luks_uuid);
	else if (r == 0 && s.sb.detached)
		log_info("wiped the state in '%s'; '%s' stays LUKS (UUID %s) with its header in '%s', now the only copy: back it up", path, device,
			 s.sb.luks_uuid, header ? header : s.sb.header_path);
	else if (r == 0)
		log_info("wiped the state in '%s'; '%s' stays LUKS (UUID %s)", path, device, s.sb.luks_uuid);
	else
		log_error("cannot wipe '%s': %s", path, strerror(-r));
out:
	dev_close(&s.dev);
	return r;
}
