/*
 * finalize: it wipes the state of a finished conversion only after YES on
 * the terminal, or with --batch; without a terminal it refuses and the store
 * stays as it was. The store and the device are made here, as a finished
 * LUKS1 conversion of a 4 MiB image would leave them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dev.h"
#include "geometry.h"
#include "luks.h"
#include "luksipc.h"
#include "state.h"
#include "status.h"
#include "unit.h"

#define DEV_SIZE (4 * MIB)
#define HEADER (2 * MIB)

static char dir[64], dev_path[96], st_path[96];

/* The image of a finished conversion on dev_path, its state (phase done) on st_path. */
static int make_finished(void)
{
	static const uint8_t vk[32] = { 7 };
	struct luks_params lp = { .version = 1, .key_bytes = 32, .sector_size = 512, .header_size = HEADER,
				  .pbkdf = "pbkdf2", .pbkdf_iterations = 1000 };
	struct state s = { .dev = { .fd = -1, .dfd = -1 } };
	struct state_rec rec = { .phase = PHASE_DONE };
	struct state_sb sb = { .mode = MODE_ENCRYPT, .key_bytes = 32, .luks_version = 1, .sector_size = 512 };
	struct dev d = { .fd = -1, .dfd = -1 };
	uint8_t *image = NULL;
	int r = luks_format_image(&lp, vk, sizeof(vk), "pw", 2, &image, sb.luks_uuid);

	if (r == 0)
		r = dev_open(&d, dev_path, TARGET_DEVICE, DEV_RDWR | DEV_CREATE);
	if (r == 0 && (r = dev_set_size(&d, DEV_SIZE)) == 0)
		r = dev_pwrite_full(&d, image, HEADER, 0);
	if (r == 0)
		r = geometry_init(&sb.geo, DEV_SIZE, HEADER, 0, MIB, 512);
	sb.header_len = HEADER;
	snprintf(sb.device_path, sizeof(sb.device_path), "%s", dev_path);
	if (r == 0 && image)
		SHA256(image, HEADER, sb.header_sha256);
	if (r == 0)
		r = dev_open(&s.dev, st_path, TARGET_STATE, DEV_RDWR | DEV_CREATE);
	if (r == 0)
		r = dev_set_size(&s.dev, state_plan(&sb));
	if (r == 0)
		r = state_create(&s, &sb, image, NULL);
	if (r == 0) {
		state_set_key(&s, vk, sizeof(vk));
		r = state_commit(&s, &rec);
	}
	free(image);
	dev_close(&d);
	dev_close(&s.dev);
	return r;
}

static void file_sum(const char *path, uint8_t out[32])
{
	static uint8_t buf[16 * MIB];
	FILE *f = fopen(path, "re");
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

	SHA256(buf, n, out);
	if (f)
		fclose(f);
}

/* 1 if the store still holds a valid superblock. */
static int store_valid(void)
{
	struct state s = { .dev = { .fd = -1, .dfd = -1 } };
	int r = dev_open(&s.dev, st_path, TARGET_STATE, 0);

	if (r == 0)
		r = state_read_sb(&s);
	dev_close(&s.dev);
	return r == 0;
}

/* finalize without --batch in a new session: no controlling terminal. */
static int finalize_no_tty(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		setsid();
		_exit(finalize_run(st_path, dev_path, NULL, 0) == E_REFUSED ? 3 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* finalize without --batch on a pseudo-terminal, answering the YES question. 0 wiped, 3 refused. */
static int finalize_answer(const char *answer)
{
	char out[4096] = "";
	size_t len = 0;
	int master, status, asked = 0;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);

	if (pid == 0) {
		int r = finalize_run(st_path, dev_path, NULL, 0);
		_exit(r == 0 ? 0 : r == E_REFUSED ? 3 : 1);
	}
	if (pid < 0)
		return -1;
	while (!asked) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0 || (n = read(master, out + len, sizeof(out) - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
		asked = strstr(out, "Type YES to continue: ") != NULL;
	}
	CHECK(asked);
	if (asked && (write(master, answer, strlen(answer)) < 0 || write(master, "\n", 1) < 0))
		asked = 0;
	if (!asked)
		kill(pid, SIGKILL);
	/* drain, so that the child never blocks on its messages */
	while (read(master, out, sizeof(out)) > 0)
		;
	close(master);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void)
{
	uint8_t before[32], after[32];
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	log_level = -1; /* the refusals are expected */
	snprintf(dir, sizeof(dir), "%.40s/luksipc-unit-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dev_path, sizeof(dev_path), "%s/dev.img", dir);
	snprintf(st_path, sizeof(st_path), "%s/st", dir);

	CHECK(make_finished() == 0);
	CHECK(store_valid());
	file_sum(st_path, before);

	/* no terminal and no --batch: refused, the store untouched */
	CHECK(finalize_no_tty() == 3);
	file_sum(st_path, after);
	CHECK(memcmp(before, after, 32) == 0);

	/* asked, and not answered YES: refused, untouched */
	CHECK(finalize_answer("yes") == 3);
	file_sum(st_path, after);
	CHECK(memcmp(before, after, 32) == 0);

	/* YES: wiped */
	CHECK(finalize_answer("YES") == 0);
	CHECK(!store_valid());

	/* --batch: wiped without a question */
	unlink(st_path);
	unlink(dev_path);
	CHECK(make_finished() == 0);
	CHECK(store_valid());
	CHECK(finalize_run(st_path, dev_path, NULL, 1) == 0);
	CHECK(!store_valid());

	unlink(st_path);
	unlink(dev_path);
	rmdir(dir);
	UNIT_DONE("finalize");
}
