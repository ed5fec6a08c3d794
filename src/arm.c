/*
 * arm and disarm (arm.h). arm checks everything first and writes nothing
 * until every check has passed; then, in this order, so that the kernel
 * flags never reach a boot whose initramfs cannot act on them:
 *   1. the record ARM_RECORD (what disarm and finalize undo),
 *   2. the initramfs rebuild (update-initramfs -u -k all, dracut -f --regenerate-all),
 *   3. the boot loader: the GRUB drop-in and update-grub, and/or the flags
 *      appended to /etc/kernel/cmdline.
 * Files are replaced whole (write a temporary, fsync, rename, fsync the
 * directory). A failure part way says what was done and that `luksipc
 * disarm` undoes it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arm.h"
#include "dev.h"
#include "enroll.h"
#include "keys.h"
#include "luks.h"
#include "luksipc.h"
#include "marker.h"
#include "notes.h"
#include "probe.h"
#include "secmem.h"
#include "state.h"
#include "status.h"
#include "testhooks.h"

extern char **environ;

#define FLAGS_MAX 2048

struct plan {
	char device[PATH_MAX];   /* the device node to convert */
	int is_root;             /* it holds the root filesystem: rd.luksipc=root */
	char dev_spec[256];      /* rd.luksipc= */
	char state[PATH_MAX];    /* the state store's node or file */
	char state_spec[256];
	char name[128];          /* --also: rd.luksipc.N.name= ("" for the boot's default, luks-<UUID>) */
	char fs_type[32];
	uint64_t dev_size, fs_size, header, free_bytes;
	int resize;
	const char *framework;
	int grub, kernel_cmdline;
	char flags[FLAGS_MAX];
};

/* Copies src whole into dst; -ENAMETOOLONG when it does not fit. */
static int set_str(char *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(dst, src, n + 1);
	return 0;
}

/* A path in the system arm configures (a test build may move it). */
static const char *sys_path(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", test_hook_sysroot(), path);
	return buf;
}

static int sys_exists(const char *path)
{
	char p[PATH_MAX];

	return access(sys_path(path, p, sizeof(p)), F_OK) == 0;
}

/* The first of names found as an executable in PATH, or NULL. */
static int in_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

/*
 * Runs argv (found in PATH), stdout and stderr the caller's, with envp (NULL:
 * ours). Its exit status, or -errno. The line logged is argv only: a secret
 * goes in envp, never in argv.
 */
static int run_cmd_env(char *const argv[], char *const envp[])
{
	pid_t pid;
	int st, r;
	char line[512] = "";

	for (int i = 0; argv[i]; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", i ? " " : "", argv[i]);
	log_info("running: %s", line);
	fflush(stdout);
	r = posix_spawnp(&pid, argv[0], NULL, NULL, argv, envp ? envp : environ);
	if (r)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_cmd(char *const argv[])
{
	return run_cmd_env(argv, NULL);
}

/* mkdir -p of a full path, mode 0755. 0 or -errno. */
static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Replaces path with text, durably: temporary file, fsync, rename, fsync of the directory. */
static int write_file(const char *path, const char *text, mode_t mode)
{
	char p[PATH_MAX], tmp[PATH_MAX + 16], dir[PATH_MAX];
	size_t len = strlen(text);
	int fd, dfd, r = 0;

	sys_path(path, p, sizeof(p));
	snprintf(tmp, sizeof(tmp), "%s.luksipc-new", p);
	snprintf(dir, sizeof(dir), "%s", p);
	*strrchr(dir, '/') = '\0';
	if ((r = mkdir_p(dir)) < 0)
		return r;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	close(fd);
	if (!r && rename(tmp, p) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int remove_file(const char *path)
{
	char p[PATH_MAX];

	if (unlink(sys_path(path, p, sizeof(p))) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Reads a small file whole into a malloc'ed string; NULL when absent or unreadable. */
static char *read_file(const char *path)
{
	char p[PATH_MAX];
	FILE *f = fopen(sys_path(path, p, sizeof(p)), "re");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return strdup("");
	}
	return buf;
}

/* The device of the root filesystem, from mountinfo; 0 or -ENOENT. */
static int root_device(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	unsigned maj = 0, min = 0;
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned a, b;
		char mnt[PATH_MAX];

		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mnt) == 3 && !strcmp(mnt, "/")) {
			maj = a;
			min = b;
			found = 1; /* the last "/" is the one in use */
		}
	}
	fclose(f);
	if (!found)
		return -ENOENT;
	{
		char sys[64], link[PATH_MAX];
		ssize_t n;

		snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u", maj, min);
		n = readlink(sys, link, sizeof(link) - 1);
		if (n < 0)
			return -ENOENT;
		link[n] = '\0';
		snprintf(buf, len, "/dev/%s", strrchr(link, '/') + 1);
	}
	return 0;
}

/* The PARTUUID= of a partition node, from udev's links; 0 or -ENOENT. */
static int partuuid_of(const char *node, char *buf, size_t len)
{
	DIR *d = opendir("/dev/disk/by-partuuid");
	char want[PATH_MAX], p[PATH_MAX], got[PATH_MAX];
	struct dirent *e;
	int r = -ENOENT;

	if (!d || !realpath(node, want)) {
		if (d)
			closedir(d);
		return -ENOENT;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/dev/disk/by-partuuid/%s", e->d_name);
		if (realpath(p, got) && !strcmp(got, want)) {
			r = strlen(e->d_name) + 10 <= len ? 0 : -ENAMETOOLONG;
			if (!r)
				snprintf(buf, len, "PARTUUID=%.*s", (int)(len - 10), e->d_name);
			break;
		}
	}
	closedir(d);
	return r;
}

/* The node a spec names: a path as it is, a TAG=value through udev's /dev/disk links. */
static int resolve_spec(const char *spec, char *buf, size_t len)
{
	char link[PATH_MAX];

	(void)len; /* realpath writes at most PATH_MAX bytes: callers pass PATH_MAX */
	if (strchr(spec, '=') && !strchr(spec, '/'))
		return notes_dev_node(spec, link, sizeof(link)) < 0 || !realpath(link, buf) ? -ENOENT : 0;
	return realpath(spec, buf) ? 0 : -ENOENT;
}

/* Characters a kernel command-line word and the GRUB drop-in take without quoting. */
static int is_plain_word(const char *s)
{
	return *s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/:=+@,") == strlen(s);
}

/* Free bytes of an ext2/3/4 filesystem from its superblock; -EINVAL if it is not one. */
static int ext_free_bytes(struct dev *d, uint64_t *ret)
{
	uint8_t sb[1024];
	uint64_t free_blocks;
	int r = dev_pread_full(d, sb, sizeof(sb), 1024);

	if (r < 0)
		return r;
	if (get_le16(sb + 0x38) != 0xEF53)
		return -EINVAL;
	free_blocks = get_le32(sb + 0x0C);
	if (get_le32(sb + 0x60) & 0x80) /* INCOMPAT_64BIT */
		free_blocks |= (uint64_t)get_le32(sb + 0x158) << 32;
	*ret = free_blocks << (10 + get_le32(sb + 0x18));
	return 0;
}

static int is_ext(const char *type)
{
	return !strcmp(type, "ext2") || !strcmp(type, "ext3") || !strcmp(type, "ext4");
}

/* The device to convert: what it holds and whether it fits the header in. */
/* The device to convert: spec (-d or --also), or NULL for the root filesystem's. */
static int check_device(const char *spec, struct plan *p)
{
	struct dev d;
	struct probe_result pr;
	char fs[16], why[256];
	int r;

	if (spec) {
		if (resolve_spec(spec, p->device, sizeof(p->device)) < 0) {
			log_error("device '%s' not found; name the device to convert with -d (or --also)", spec);
			return E_REFUSED;
		}
	} else if (root_device(p->device, sizeof(p->device)) < 0) {
		log_error("cannot find the device of the root filesystem in /proc/self/mountinfo; name it with -d");
		return E_REFUSED;
	}
	{
		char rootdev[PATH_MAX], a[PATH_MAX], b[PATH_MAX];

		p->is_root = !spec || (root_device(rootdev, sizeof(rootdev)) == 0 && realpath(rootdev, a) &&
					    realpath(p->device, b) && !strcmp(a, b));
	}
	if (p->is_root) {
		struct stat root_st, boot_st;

		/* GRUB reads the kernel and the initramfs from /boot before anything is unlocked */
		if (stat("/", &root_st) == 0 && stat("/boot", &boot_st) == 0 && root_st.st_dev == boot_st.st_dev) {
			log_error("/boot lies on the root filesystem '%s': after the conversion the boot loader could not read the kernel; give /boot a partition of its own first",
				  p->device);
			return E_REFUSED;
		}
	}
	if (!strncmp(p->device, "/dev/dm-", 8)) {
		log_error("'%s' is a device-mapper device (already encrypted, LVM or RAID?); luksipc arm converts a plain partition", p->device);
		return E_REFUSED;
	}
	r = dev_open(&d, p->device, TARGET_OTHER, 0);
	if (r < 0) {
		log_error("cannot open '%s': %s", p->device, strerror(-r));
		return E_REFUSED;
	}
	r = probe_signatures(&d, &pr);
	if (r == 0 && probe_luks_uuid(&d, why) == 0) {
		log_error("'%s' is LUKS already; to re-encrypt it use luksipc convert --reencrypt", p->device);
		r = E_REFUSED;
		goto out;
	}
	if (r < 0 || !pr.type[0] || pr.ambiguous) {
		log_error("'%s' holds %s; luksipc arm converts a device with one filesystem", p->device,
			  r < 0 ? "nothing readable" : pr.ambiguous ? "more than one signature" : "no filesystem blkid recognises");
		r = E_REFUSED;
		goto out;
	}
	snprintf(p->fs_type, sizeof(p->fs_type), "%s", pr.type);
	p->dev_size = d.size;
	r = probe_fs_size(&d, pr.type, &p->fs_size);
	if (r < 0) {
		log_error("cannot tell how far the %s filesystem on '%s' reaches; luksipc arm supports ext2/3/4, xfs, btrfs and vfat",
			  pr.type, p->device);
		r = E_REFUSED;
		goto out;
	}
	p->header = LUKS2_HEADER_SIZE_DEFAULT;
	if (p->dev_size < 2 * p->header) {
		log_error("'%s' (%s) is too small to convert", p->device, fmt_size(p->dev_size, fs, sizeof(fs)));
		r = E_REFUSED;
		goto out;
	}
	r = 0;
	if (p->fs_size <= p->dev_size - p->header)
		goto out;
	/* The filesystem reaches into the last H bytes: only ext2/3/4 shrink at boot. */
	if (!is_ext(pr.type)) {
		log_error("the %s filesystem on '%s' fills it; luksipc needs %s after it for the LUKS header, and %s cannot shrink at boot: shrink it or grow the partition first",
			  pr.type, p->device, fmt_size(p->header, fs, sizeof(fs)), pr.type);
		r = E_REFUSED;
		goto out;
	}
	if (ext_free_bytes(&d, &p->free_bytes) < 0) {
		log_error("cannot read the free space of the %s filesystem on '%s'", pr.type, p->device);
		r = E_REFUSED;
		goto out;
	}
	{
		/* the shrink needs the header's room free, with a margin for metadata */
		uint64_t need = p->fs_size - (marker_offset(p->dev_size) - p->header), margin = p->header + p->fs_size / 100;
		char a[16], b[16];

		if (p->free_bytes < need + margin) {
			log_error("the %s filesystem on '%s' fills it and has %s free; the shrink at boot needs about %s: free %s more, or grow the partition",
				  pr.type, p->device, fmt_size(p->free_bytes, a, sizeof(a)), fmt_size(need + margin, b, sizeof(b)),
				  fmt_size(need + margin - p->free_bytes, fs, sizeof(fs)));
			r = E_REFUSED;
			goto out;
		}
	}
	p->resize = 1;
out:
	dev_close(&d);
	return r;
}

/* 1 when the two paths share blocks: the same partition or file, or a disk and its partition. */
static int nodes_overlap(const char *a, const char *b)
{
	struct dev da, db;
	int r = 0;

	if (dev_open(&da, a, TARGET_OTHER, 0) < 0)
		return 0;
	if (dev_open(&db, b, TARGET_OTHER, 0) == 0) {
		r = probe_overlap(&da, &db);
		dev_close(&db);
	}
	dev_close(&da);
	return r;
}

/* The state store: found, not the device, empty, large enough. */
static int check_state(const char *state, struct plan *p)
{
	struct state s;
	struct probe_result pr;
	char what[256], a[16], b[16];
	uint64_t need;
	int r;

	memset(&s, 0, sizeof(s));
	if (resolve_spec(state, p->state, sizeof(p->state)) < 0) {
		log_error("state store '%s' not found; name a small empty partition, e.g. --state PARTLABEL=luksipc-state", state);
		return E_REFUSED;
	}
	r = dev_open(&s.dev, p->state, TARGET_OTHER, 0);
	if (r < 0) {
		log_error("cannot open state store '%s': %s", p->state, strerror(-r));
		return E_REFUSED;
	}
	if (nodes_overlap(p->device, p->state)) {
		log_error("state store '%s' lies on the device to convert '%s'; name a partition elsewhere", state, p->device);
		r = E_REFUSED;
		goto out;
	}
	if (state_read_sb(&s) != -ENOENT || state_find_remnants(&s, what, sizeof(what)) != 0) {
		log_error("state store '%s' holds a luksipc conversion already; see luksipc status --state %s", state, p->state);
		r = E_REFUSED;
		goto out;
	}
	r = probe_signatures(&s.dev, &pr);
	if (r < 0 || pr.type[0] || pr.pttype[0]) {
		log_error("state store '%s' holds %s%s; name an empty partition, or wipe this one (wipefs -a) if nothing on it is needed",
			  state, r < 0 ? "nothing readable" : pr.type[0] ? "a " : "a partition table ",
			  r < 0 ? "" : pr.type[0] ? pr.type : pr.pttype);
		r = E_REFUSED;
		goto out;
	}
	need = STATE_HEADER_OFF + p->header + STATE_SB_SIZE;
	if (s.dev.size < need) {
		log_error("state store '%s' has %s; it needs at least %s", state, fmt_size(s.dev.size, a, sizeof(a)),
			  fmt_size(need, b, sizeof(b)));
		r = E_REFUSED;
		goto out;
	}
	r = 0;
out:
	dev_close(&s.dev);
	return r;
}

/*
 * The names the kernel command line gives the device and its state store:
 * "root" for the root filesystem's device; a path becomes PARTUUID= where
 * udev knows one (/dev names can change between boots); a NAME=value spec
 * stays as given. -ENAMETOOLONG when one does not fit.
 */
static int boot_specs(const char *state_arg, struct plan *p)
{
	if (p->is_root)
		set_str(p->dev_spec, sizeof(p->dev_spec), "root");
	else if (partuuid_of(p->device, p->dev_spec, sizeof(p->dev_spec)) < 0 &&
		 set_str(p->dev_spec, sizeof(p->dev_spec), p->device) < 0)
		return -ENAMETOOLONG;
	if (strchr(state_arg, '=') && !strchr(state_arg, '/'))
		return set_str(p->state_spec, sizeof(p->state_spec), state_arg);
	if (partuuid_of(p->state, p->state_spec, sizeof(p->state_spec)) < 0)
		return set_str(p->state_spec, sizeof(p->state_spec), p->state);
	return 0;
}

/*
 * --also DEVICE,STATE[,NAME]: each other device is checked as the first one
 * is (check_device, check_state), must not be the root's, and no two of all
 * the devices and state stores may share blocks. also[i] is rd.luksipc.(i+2).
 */
static int check_also(const struct arm_opts *o, const struct plan *p, struct plan *also)
{
	int r;

	if (o->n_also && (o->bootstrap || o->enroll)) {
		log_error("--also goes with --key-file or a passphrase typed at boot: --bootstrap-key and --enroll change the keys of one device; add keys to the others after finalize (cryptsetup luksAddKey)");
		return E_USAGE;
	}
	for (int i = 0; i < o->n_also; i++) {
		char buf[1024], *dev = buf, *state, *name = NULL;
		struct plan *a = &also[i];
		int ok = set_str(buf, sizeof(buf), o->also[i]) == 0 && (state = strchr(buf, ',')) != NULL;

		if (ok) {
			*state++ = '\0';
			if ((name = strchr(state, ',')) != NULL)
				*name++ = '\0';
			ok = *dev && *state && (!name || (*name && !strchr(name, ',') && !strchr(name, '/') &&
							  is_plain_word(name) && set_str(a->name, sizeof(a->name), name) == 0));
		}
		if (!ok) {
			log_error("--also '%s': give DEVICE,STATE[,NAME], e.g. --also PARTLABEL=home,PARTLABEL=state-home,home (NAME: a plain word)",
				  o->also[i]);
			return E_USAGE;
		}
		if ((r = check_device(dev, a)))
			return r;
		if (a->is_root) {
			log_error("--also '%s' is the root filesystem's device; arm converts it as the first device (rd.luksipc=root): leave it out of --also",
				  dev);
			return E_REFUSED;
		}
		if ((r = check_state(state, a)))
			return r;
		if (boot_specs(state, a) < 0 || !is_plain_word(a->dev_spec) || !is_plain_word(a->state_spec)) {
			log_error("--also '%s': a device or state name the kernel command line cannot carry; use PARTUUID= names", o->also[i]);
			return E_USAGE;
		}
	}
	/* no two devices or stores may share blocks: a store on a converted device would be overwritten */
	for (int i = -1; i < o->n_also; i++) {
		const struct plan *x = i < 0 ? p : &also[i];

		for (int j = i + 1; j < o->n_also; j++) {
			const struct plan *y = &also[j];

			if (nodes_overlap(x->device, y->device) || nodes_overlap(x->state, y->state) ||
			    nodes_overlap(x->device, y->state) || nodes_overlap(x->state, y->device)) {
				log_error("--also '%s': its device or state store shares blocks with %s or its state store '%s'; each device needs its own state partition, on none of the converted devices",
					  o->also[j], x->device, x->state);
				return E_REFUSED;
			}
		}
	}
	return 0;
}

static const char *detect_framework(const char *override)
{
	if (override)
		return override;
	if (in_path("update-initramfs"))
		return "initramfs-tools";
	if (in_path("dracut"))
		return "dracut";
	return NULL;
}

/* Builds p->flags (the --also devices' after the first's) and checks the boot integration and boot loader. */
static int plan_boot(const struct arm_opts *o, struct plan *p, const struct plan *also)
{
	const char *hook = NULL;

	p->framework = detect_framework(o->framework);
	if (!p->framework || !notes_framework_ok(p->framework)) {
		log_error("no initramfs-tools (update-initramfs) or dracut found; luksipc converts at boot from one of them");
		return E_REFUSED;
	}
	hook = !strcmp(p->framework, "dracut") ? "/usr/lib/dracut/modules.d/55luksipc/module-setup.sh"
					       : "/usr/share/initramfs-tools/hooks/luksipc";
	if (!sys_exists(hook)) {
		log_error("luksipc's %s integration is not installed (%s); install it (make install-boot, or the %s package)",
			  p->framework, hook, !strcmp(p->framework, "dracut") ? "dracut-luksipc" : "luksipc-initramfs");
		return E_REFUSED;
	}
	p->grub = sys_exists("/etc/default/grub") && in_path("update-grub");
	p->kernel_cmdline = sys_exists("/etc/kernel/cmdline");

	if (boot_specs(o->state, p) < 0)
		goto too_long;
	if (o->key && strlen(o->key) >= 1024)
		goto too_long;
	snprintf(p->flags, sizeof(p->flags), "rd.luksipc=%s rd.luksipc.state=%s%s%s%s", p->dev_spec, p->state_spec,
		 o->key || o->bootstrap ? " rd.luksipc.key=" : "", o->key ? o->key : o->bootstrap ? ARM_BOOTSTRAP_KEY_IMAGE : "",
		 p->resize ? " rd.luksipc.resize=1" : "");
	for (int i = 0; i < o->n_also; i++) {
		const struct plan *a = &also[i];
		char one[1024];

		snprintf(one, sizeof(one), " rd.luksipc.%d=%s rd.luksipc.%d.state=%s", i + 2, a->dev_spec, i + 2, a->state_spec);
		if (a->name[0])
			snprintf(one + strlen(one), sizeof(one) - strlen(one), " rd.luksipc.%d.name=%s", i + 2, a->name);
		if (a->resize)
			snprintf(one + strlen(one), sizeof(one) - strlen(one), " rd.luksipc.%d.resize=1", i + 2);
		if (strlen(p->flags) + strlen(one) >= sizeof(p->flags))
			goto too_long;
		strcat(p->flags, one);
	}
	if (!is_plain_word(p->dev_spec) || !is_plain_word(p->state_spec) || (o->key && !is_plain_word(o->key))) {
		log_error("a device, state or key name holds characters a kernel command line cannot carry unquoted; use PARTUUID= names");
		return E_USAGE;
	}
	if (!p->grub && !p->kernel_cmdline) {
		log_error("found neither GRUB (/etc/default/grub and update-grub) nor /etc/kernel/cmdline; add these flags to the kernel command line by hand: %s",
			  p->flags);
		return E_REFUSED;
	}
	return 0;
too_long:
	log_error("a device, state or key name is too long for the kernel command line; use PARTUUID= names");
	return E_USAGE;
}

#define ENROLL_PASSPHRASE 1u
#define ENROLL_RECOVERY 2u
#define ENROLL_TPM2 4u
/* The PCRs a TPM2 keyslot is sealed to (docs/lifecycle.md, "TPM2"). */
#define ARM_TPM2_PCRS "7"
/* dracut's tpm2-tss module puts the TPM2 libraries in the initramfs only when asked for. */
#define ARM_DRACUT_TPM2_CONF "/etc/dracut.conf.d/luksipc-tpm2.conf"

/* The --enroll list as a mask; 0 for none, -1 for a word it does not know (logged). */
static int enroll_mask(const char *list)
{
	char buf[128], *save = NULL, *w;
	int mask = 0;

	if (!list)
		return 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		if (!strcmp(w, "passphrase"))
			mask |= ENROLL_PASSPHRASE;
		else if (!strcmp(w, "recovery"))
			mask |= ENROLL_RECOVERY;
		else if (!strcmp(w, "tpm2"))
			mask |= ENROLL_TPM2;
		else {
			log_error("--enroll '%s': unknown key type '%s'; give passphrase, recovery, tpm2, comma-separated", list, w);
			return -1;
		}
	}
	return mask;
}

/* The key choices go together: a bootstrap key needs keys to hand over to. */
static int check_key_choice(const struct arm_opts *o)
{
	int mask = enroll_mask(o->enroll);

	if (mask < 0)
		return E_USAGE;
	if (o->bootstrap && o->key) {
		log_error("give either --bootstrap-key or --key-file, not both");
		return E_USAGE;
	}
	if (o->bootstrap && !mask) {
		log_error("--bootstrap-key needs --enroll passphrase, recovery or both: the keys that replace it when finalize retires it");
		return E_USAGE;
	}
	if ((mask & ENROLL_TPM2) && !(mask & (ENROLL_PASSPHRASE | ENROLL_RECOVERY))) {
		log_error("--enroll tpm2 needs passphrase or recovery beside it (e.g. --enroll tpm2,recovery): a firmware update or a new board changes what the TPM unseals, and the root would then open with nothing");
		return E_USAGE;
	}
	if (o->recovery_file && !(mask & ENROLL_RECOVERY)) {
		log_error("--recovery-key-file goes with --enroll recovery");
		return E_USAGE;
	}
	if (o->recovery_file && (o->recovery_file[0] != '/' || !strncmp(o->recovery_file, "/boot/", 6))) {
		log_error("--recovery-key-file '%s': give an absolute path on the root filesystem (it is written after the conversion, encrypted), not under /boot",
			  o->recovery_file);
		return E_USAGE;
	}
	if (o->recovery_file && strchr(o->recovery_file, '\n')) {
		log_error("--recovery-key-file: the path holds a newline");
		return E_USAGE;
	}
	return 0;
}

/* KEY:DEVICE: the device must be there now (it must be at boot). */
static int check_key(const struct arm_opts *o)
{
	const char *colon;
	char node[PATH_MAX];
	int r = check_key_choice(o);

	if (r)
		return r;
	if (!o->key)
		return 0;
	colon = strchr(o->key, ':');
	if (o->key[0] != '/' || !colon || !colon[1]) {
		log_error("--key-file '%s': give PATH:DEVICE, a key file on another device (e.g. /luksipc.key:LABEL=KEYS); without it the boot asks for a passphrase",
			  o->key);
		return E_USAGE;
	}
	if (resolve_spec(colon + 1, node, sizeof(node)) < 0) {
		log_error("key device '%s' not found; plug it in (it must be present at boot too)", colon + 1);
		return E_REFUSED;
	}
	return 0;
}

/*
 * --enroll tpm2: a TPM 2.0 here, systemd-cryptenroll to enroll it, and a
 * framework whose initramfs unlocks with it: dracut's systemd initrd, with
 * its tpm2-tss module (which needs tpm2-tools' tpm2 to be installed).
 * Debian's cryptroot (initramfs-tools) has no TPM2 unlock.
 */
static int check_tpm2(const struct arm_opts *o, const struct plan *p)
{
	char path[PATH_MAX], v[8] = "";
	FILE *f;

	if (enroll_mask(o->enroll) <= 0 || !(enroll_mask(o->enroll) & ENROLL_TPM2))
		return 0;
	if (strcmp(p->framework, "dracut")) {
		log_error("--enroll tpm2: %s's cryptroot cannot unlock with a TPM2; use dracut, or enroll passphrase and recovery only",
			  p->framework);
		return E_REFUSED;
	}
	f = fopen(sys_path("/sys/class/tpm/tpm0/tpm_version_major", path, sizeof(path)), "re");
	if (f) {
		if (!fgets(v, sizeof(v), f))
			v[0] = '\0';
		fclose(f);
	}
	if (v[0] != '2') {
		log_error("--enroll tpm2: no TPM 2.0 found (/sys/class/tpm/tpm0%s); enable it in the firmware, or enroll passphrase and recovery only",
			  f ? " is not version 2" : " is missing");
		return E_REFUSED;
	}
	if (!in_path("systemd-cryptenroll")) {
		log_error("--enroll tpm2: systemd-cryptenroll not found; install systemd (version 248 or later)");
		return E_REFUSED;
	}
	if (!in_path("tpm2")) {
		log_error("--enroll tpm2: tpm2 (tpm2-tools) not found; install tpm2-tools: dracut's tpm2-tss module, which puts the TPM2 libraries in the initramfs, needs it");
		return E_REFUSED;
	}
	return 0;
}

static void print_plan(const struct plan *p, const struct arm_opts *o, const struct plan *also)
{
	char a[16], b[16];

	printf("device:      %s (%s, %s of %s)%s\n", p->device, p->fs_type, fmt_size(p->fs_size, a, sizeof(a)),
	       fmt_size(p->dev_size, b, sizeof(b)), p->is_root ? ", the root filesystem" : "");
	if (p->resize)
		printf("resize:      the filesystem is shrunk at boot by %s (rd.luksipc.resize=1)\n",
		       fmt_size(p->fs_size - (marker_offset(p->dev_size) - p->header), a, sizeof(a)));
	printf("state store: %s (%s)\n", p->state_spec, p->state);
	if (o->bootstrap)
		printf("key:         a generated bootstrap key, %s (mode 0600), copied into the initramfs as %s\n"
		       "enroll:      %s%s%s, added by finalize after the conversion; then the bootstrap key is destroyed\n",
		       ARM_BOOTSTRAP_KEY, ARM_BOOTSTRAP_KEY_IMAGE, o->enroll,
		       o->recovery_file ? " (the recovery key written to the file named, not shown)" : "",
		       (enroll_mask(o->enroll) & ENROLL_TPM2) ? " (TPM2 sealed to PCR " ARM_TPM2_PCRS ")" : "");
	else
		printf("key:         %s\n", o->key ? o->key : "a passphrase, asked at the console at boot");
	if (!o->bootstrap && o->enroll)
		printf("enroll:      %s%s%s, added by finalize after the conversion with %s; that key stays\n", o->enroll,
		       o->recovery_file ? " (the recovery key written to the file named, not shown)" : "",
		       (enroll_mask(o->enroll) & ENROLL_TPM2) ? " (TPM2 sealed to PCR " ARM_TPM2_PCRS ")" : "",
		       o->key ? "the key file (its device mounted read-only for a moment)" : "the passphrase, asked again");
	for (int i = 0; i < o->n_also; i++) {
		const struct plan *x = &also[i];

		printf("also (%d):    %s (%s, %s of %s), state store %s (%s), opened as %s%s\n", i + 2, x->device, x->fs_type,
		       fmt_size(x->fs_size, a, sizeof(a)), fmt_size(x->dev_size, b, sizeof(b)), x->state_spec, x->state,
		       x->name[0] ? x->name : "luks-<its LUKS UUID>", x->resize ? "; its filesystem shrunk at boot (resize=1)" : "");
	}
	printf("flags:       %s\n", p->flags);
	printf("initramfs:   %s: %s\n", p->framework,
	       !strcmp(p->framework, "dracut") ? "dracut -f --regenerate-all" : "update-initramfs -u -k all");
	if (p->grub)
		printf("boot loader: GRUB: %s, then update-grub\n", ARM_GRUB_DROPIN);
	if (p->kernel_cmdline)
		printf("boot loader: /etc/kernel/cmdline: the flags appended\n");
}

static int rebuild_initramfs(const char *framework)
{
	char *itools[] = { "update-initramfs", "-u", "-k", "all", NULL };
	char *dracut[] = { "dracut", "-f", "--regenerate-all", NULL };
	int r = run_cmd(!strcmp(framework, "dracut") ? dracut : itools);

	if (r != 0)
		log_error("%s failed (%s %d)", !strcmp(framework, "dracut") ? "dracut" : "update-initramfs",
			  r < 0 ? "error" : "exit", r < 0 ? -r : r);
	return r == 0 ? 0 : -EIO;
}

static int update_grub(void)
{
	char *argv[] = { "update-grub", NULL };
	int r = run_cmd(argv);

	if (r != 0)
		log_error("update-grub failed (%s %d)", r < 0 ? "error" : "exit", r < 0 ? -r : r);
	return r == 0 ? 0 : -EIO;
}

/* /etc/kernel/cmdline without any rd.luksipc word, plus extra (may be ""). */
static int rewrite_kernel_cmdline(const char *extra)
{
	char *old = read_file("/etc/kernel/cmdline"), *save = NULL, *w;
	char out[8192] = "";
	int r;

	if (!old)
		return -errno;
	for (w = strtok_r(old, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
		if (strncmp(w, "rd.luksipc=", 11) && strncmp(w, "rd.luksipc.", 11))
			snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", out[0] ? " " : "", w);
	free(old);
	if (*extra)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", out[0] ? " " : "", extra);
	strncat(out, "\n", sizeof(out) - strlen(out) - 1);
	r = write_file("/etc/kernel/cmdline", out, 0644);
	if (r < 0)
		log_error("cannot write /etc/kernel/cmdline: %s", strerror(-r));
	return r;
}

/* The unit that runs finalize in the converted system, where make install or the package put it. */
static const char *finalize_unit(void)
{
	static const char *dirs[] = { "/usr/lib/systemd/system", "/lib/systemd/system", "/usr/local/lib/systemd/system",
				      "/etc/systemd/system" };
	static char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/" ARM_FINALIZE_UNIT, dirs[i]);
		if (sys_exists(path))
			return path;
	}
	return NULL;
}

/* Enables the finalize unit as systemctl enable would: the symlink in multi-user.target.wants. */
static void enable_finalize_unit(void)
{
	const char *unit = finalize_unit();
	char link[PATH_MAX], dir[PATH_MAX];

	if (!unit) {
		log_warn("no %s installed: after the conversion, run luksipc finalize by hand", ARM_FINALIZE_UNIT);
		return;
	}
	sys_path(ARM_FINALIZE_WANTS, link, sizeof(link));
	snprintf(dir, sizeof(dir), "%s", link);
	*strrchr(dir, '/') = '\0';
	if (mkdir_p(dir) < 0 || (unlink(link) < 0 && errno != ENOENT) || symlink(unit, link) < 0)
		log_warn("cannot enable %s (%s): after the conversion, run luksipc finalize by hand", ARM_FINALIZE_UNIT,
			 strerror(errno));
}

/*
 * The bootstrap key: 4096 random bytes in ARM_BOOTSTRAP_KEY (a directory of
 * mode 0700, the file 0600, both made durable), and for initramfs-tools a
 * UMASK=0077 so that the images holding it are root-only (dracut makes its
 * images 0600 itself). An existing key is kept: a rerun after a cut must
 * not change the key an image already holds.
 */
static int make_bootstrap_key(const char *framework)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct key k = { 0 };
	int r;

	sys_path(ARM_BOOTSTRAP_DIR, dir, sizeof(dir));
	if ((r = mkdir_p(dir)) < 0 || chmod(dir, 0700) < 0) {
		log_error("cannot make %s: %s", ARM_BOOTSTRAP_DIR, strerror(r < 0 ? -r : errno));
		return -EIO;
	}
	if (key_generate_file(sys_path(ARM_BOOTSTRAP_KEY, path, sizeof(path)), &k) < 0)
		return -EIO;
	key_free(&k);
	if (!strcmp(framework, "initramfs-tools") &&
	    (r = write_file(ARM_ITOOLS_UMASK, "# Written by luksipc arm: the initramfs holds luksipc's bootstrap key\nUMASK=0077\n",
			    0644)) < 0) {
		log_error("cannot write %s: %s", ARM_ITOOLS_UMASK, strerror(-r));
		return r;
	}
	return 0;
}

/*
 * Overwrites the bootstrap key with zeros (flushed), then removes it, its
 * directory and the UMASK setting. Overwriting in place is what a
 * filesystem allows; see docs/lifecycle.md for what it cannot promise.
 */
static int remove_bootstrap_key(void)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, r = 0;

	sys_path(ARM_BOOTSTRAP_KEY, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		if (fstat(fd, &st) == 0) {
			char zero[4096] = { 0 };

			for (off_t done = 0; done < st.st_size && r == 0; done += (off_t)sizeof(zero)) {
				size_t n = st.st_size - done < (off_t)sizeof(zero) ? (size_t)(st.st_size - done) : sizeof(zero);

				if (pwrite(fd, zero, n, done) != (ssize_t)n)
					r = -EIO;
			}
		}
		if (fsync(fd) < 0 && r == 0)
			r = -errno;
		close(fd);
	} else if (errno != ENOENT) {
		r = -errno;
	}
	if (r == 0)
		r = remove_file(ARM_BOOTSTRAP_KEY);
	if (r < 0) {
		log_error("cannot overwrite and remove %s: %s", ARM_BOOTSTRAP_KEY, strerror(-r));
		return r;
	}
	rmdir(sys_path(ARM_BOOTSTRAP_DIR, path, sizeof(path)));
	return remove_file(ARM_ITOOLS_UMASK);
}

int arm_run(const struct arm_opts *o)
{
	struct plan p, *also;
	char text[16384];
	int r;

	memset(&p, 0, sizeof(p));
	if (!o->state) {
		log_error("arm needs --state, the state partition (e.g. --state PARTLABEL=luksipc-state)");
		return E_USAGE;
	}
	if (sys_exists(ARM_RECORD)) {
		log_error("already armed (%s); run luksipc disarm first to change the plan", ARM_RECORD);
		return E_REFUSED;
	}
	if (!(also = calloc(ARM_ALSO_MAX, sizeof(*also))))
		return -ENOMEM;
	if ((r = check_key(o)) || (r = check_device(o->device, &p)) || (r = check_state(o->state, &p)) ||
	    (r = check_also(o, &p, also)) || (r = plan_boot(o, &p, also)) || (r = check_tpm2(o, &p)))
		goto out;
	print_plan(&p, o, also);
	if (o->dry_run) {
		printf("dry run: nothing written\n");
		goto out;
	}
	snprintf(text, sizeof(text),
		 "# Written by luksipc arm: the next boot converts %s. luksipc disarm undoes it\n"
		 "# before the conversion starts; luksipc finalize removes it afterwards.\n"
		 "device=%s\nstate=%s\nflags=%s\nframework=%s\ngrub=%d\nkernel_cmdline=%d\nkey=%s\n",
		 p.device, p.device, p.state, p.flags, p.framework, p.grub, p.kernel_cmdline,
		 o->bootstrap ? "bootstrap" : o->key ? "file" : "passphrase");
	if (o->key)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "key_file=%s\n", o->key);
	if (o->enroll)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "enroll=%s\n%s%s%s", o->enroll,
			 o->recovery_file ? "recovery_file=" : "", o->recovery_file ? o->recovery_file : "",
			 o->recovery_file ? "\n" : "");
	if (o->n_also)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "also=%d\n", o->n_also);
	for (int i = 0; i < o->n_also; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "device.%d=%s\nstate.%d=%s\n", i + 2, also[i].device,
			 i + 2, also[i].state);
	free(also);
	also = NULL;
	r = write_file(ARM_RECORD, text, 0600);
	if (r < 0) {
		log_error("cannot write %s: %s", ARM_RECORD, strerror(-r));
		return r;
	}
	if (o->bootstrap && make_bootstrap_key(p.framework) < 0)
		goto partial;
	if (rebuild_initramfs(p.framework) < 0)
		goto partial;
	if (p.grub) {
		snprintf(text, sizeof(text),
			 "# Written by luksipc arm; removed by luksipc disarm or luksipc finalize.\n"
			 "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX %s\"\n", p.flags);
		r = write_file(ARM_GRUB_DROPIN, text, 0644);
		if (r < 0) {
			log_error("cannot write %s: %s", ARM_GRUB_DROPIN, strerror(-r));
			goto partial;
		}
		if (update_grub() < 0)
			goto partial;
	}
	if (p.kernel_cmdline && rewrite_kernel_cmdline(p.flags) < 0)
		goto partial;
	enable_finalize_unit();
	printf("armed: the next boot converts %s%s\n", p.device,
	       p.kernel_cmdline ? " (kernel-install: reinstall the boot entry, e.g. kernel-install add, if your loader copies the command line)" : "");
	return 0;
partial:
	log_error("arm stopped part way (%s is written); run luksipc disarm to undo it, fix the cause and run arm again", ARM_RECORD);
	return -EIO;
out:
	free(also);
	return r;
}

/* A value of the arm record, the last line for key (finalize appends its steps); "" when absent. */
static void record_get(const char *rec, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);

	buf[0] = '\0';
	for (const char *l = rec; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == '=')
			snprintf(buf, len, "%.*s", (int)strcspn(l + kl + 1, "\n"), l + kl + 1);
}

/* The --also devices in the record: device.N and state.N for N = 2 .. also+1. NULL (logged) on a bad record. */
struct also_rec {
	int n;
	char device[ARM_ALSO_MAX][PATH_MAX], state[ARM_ALSO_MAX][PATH_MAX];
};

static struct also_rec *record_also(const char *rec)
{
	struct also_rec *a = calloc(1, sizeof(*a));
	char v[16], key[32];

	if (!a) {
		log_error("out of memory");
		return NULL;
	}
	record_get(rec, "also", v, sizeof(v));
	a->n = v[0] ? atoi(v) : 0;
	if (a->n < 0 || a->n > ARM_ALSO_MAX)
		goto bad;
	for (int i = 0; i < a->n; i++) {
		snprintf(key, sizeof(key), "device.%d", i + 2);
		record_get(rec, key, a->device[i], sizeof(a->device[i]));
		snprintf(key, sizeof(key), "state.%d", i + 2);
		record_get(rec, key, a->state[i], sizeof(a->state[i]));
		if (!a->device[i][0] || !a->state[i][0])
			goto bad;
	}
	return a;
bad:
	log_error("%s names its other devices (also=%s) wrongly; restore it or remove the rd.luksipc flags by hand", ARM_RECORD, v);
	free(a);
	return NULL;
}

/* 0 when the store holds nothing yet; E_REFUSED (logged) when a conversion has started on it or it cannot be read. */
static int store_unstarted(const char *state)
{
	struct state s;
	char what[256];
	int r;

	memset(&s, 0, sizeof(s));
	r = dev_open(&s.dev, state, TARGET_OTHER, 0);
	if (r < 0) {
		log_error("cannot open the state store '%s' named in %s: %s; if it is gone, remove the rd.luksipc flags by hand",
			  state, ARM_RECORD, strerror(-r));
		return E_REFUSED;
	}
	r = state_read_sb(&s) != -ENOENT || state_find_remnants(&s, what, sizeof(what)) != 0;
	dev_close(&s.dev);
	if (r) {
		log_error("the conversion has started (state store '%s'); disarm cannot undo it: boot to let it finish, see luksipc status --state %s",
			  state, state);
		return E_REFUSED;
	}
	return 0;
}

int disarm_run(const struct arm_opts *o)
{
	char *rec = read_file(ARM_RECORD);
	char state[PATH_MAX], fw[32], grub[4], kc[4], key[16];
	struct also_rec *also;
	int r;

	if (!rec) {
		printf("not armed (no %s): nothing to undo\n", ARM_RECORD);
		return 0;
	}
	record_get(rec, "key", key, sizeof(key));
	record_get(rec, "state", state, sizeof(state));
	record_get(rec, "framework", fw, sizeof(fw));
	record_get(rec, "grub", grub, sizeof(grub));
	record_get(rec, "kernel_cmdline", kc, sizeof(kc));
	also = record_also(rec);
	free(rec);
	if (!also)
		return E_REFUSED;
	/* every device's store: a boot may have converted one of them already */
	r = store_unstarted(state);
	for (int i = 0; i < also->n && r == 0; i++)
		r = store_unstarted(also->state[i]);
	free(also);
	if (r)
		return r;
	if (o->dry_run) {
		printf("dry run: would remove %s%s%s%s and rebuild the initramfs (%s)\n", ARM_RECORD,
		       !strcmp(grub, "1") ? ", " ARM_GRUB_DROPIN " (then update-grub)" : "",
		       !strcmp(kc, "1") ? ", the rd.luksipc words of /etc/kernel/cmdline" : "",
		       !strcmp(key, "bootstrap") ? ", the bootstrap key " ARM_BOOTSTRAP_KEY : "", fw);
		return 0;
	}
	/* the boot loader first: from here on no boot sees the flags */
	if (!strcmp(grub, "1")) {
		if ((r = remove_file(ARM_GRUB_DROPIN)) < 0) {
			log_error("cannot remove %s: %s", ARM_GRUB_DROPIN, strerror(-r));
			return r;
		}
		if (update_grub() < 0)
			return -EIO;
	}
	if (!strcmp(kc, "1") && rewrite_kernel_cmdline("") < 0)
		return -EIO;
	/* the key goes before the rebuild, so that the new images lack it */
	if (!strcmp(key, "bootstrap") && remove_bootstrap_key() < 0)
		return -EIO;
	if (notes_framework_ok(fw) && rebuild_initramfs(fw) < 0)
		return -EIO;
	remove_file(ARM_FINALIZE_WANTS);
	if ((r = remove_file(ARM_RECORD)) < 0) {
		log_error("cannot remove %s: %s", ARM_RECORD, strerror(-r));
		return r;
	}
	printf("disarmed: the rd.luksipc flags are gone; nothing was converted\n");
	return 0;
}

/* 1 when the store holds nothing a conversion leaves (no superblock, no remnant). */
static int store_is_empty(const char *path)
{
	struct state s;
	char what[256];
	int empty;

	memset(&s, 0, sizeof(s));
	if (dev_open(&s.dev, path, TARGET_OTHER, 0) < 0)
		return 0;
	empty = state_read_sb(&s) == -ENOENT && state_find_remnants(&s, what, sizeof(what)) == 0;
	dev_close(&s.dev);
	return empty;
}

/* 1 when the running kernel's command line holds an rd.luksipc word. */
static int cmdline_has_flags(void)
{
	char *c = read_file("/proc/cmdline"), *save = NULL, *w;
	int found = 0;

	if (!c)
		return 0;
	for (w = strtok_r(c, " \t\n", &save); w && !found; w = strtok_r(NULL, " \t\n", &save))
		found = !strncmp(w, "rd.luksipc=", 11) || !strncmp(w, "rd.luksipc.", 11);
	free(c);
	return found;
}

/* /etc/crypttab with line in place of any entry for the same name or UUID. */
static int write_crypttab(const struct notes_boot *b)
{
	char *old = read_file("/etc/crypttab"), *save = NULL, *l;
	char want_src[128];
	size_t cap = (old ? strlen(old) : 0) + strlen(b->crypttab) + 2;
	char *out = calloc(1, cap);
	int r;

	if (!out) {
		free(old);
		return -ENOMEM;
	}
	snprintf(want_src, sizeof(want_src), "UUID=%s", b->uuid);
	for (l = old ? strtok_r(old, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char name[256] = "", src[256] = "";

		if (l[strspn(l, " \t")] != '#' && sscanf(l, "%255s %255s", name, src) >= 1 &&
		    (!strcmp(name, b->name) || !strcmp(src, want_src)))
			continue;
		strcat(out, l);
		strcat(out, "\n");
	}
	strcat(out, b->crypttab);
	strcat(out, "\n");
	free(old);
	r = write_file("/etc/crypttab", out, 0644);
	free(out);
	if (r < 0)
		log_error("cannot write /etc/crypttab: %s", strerror(-r));
	return r;
}

/* Appends one step line to the record, durably (write_file). Before and after each keyslot change. */
static int record_step(const char *fmt, ...)
{
	char *rec = read_file(ARM_RECORD), line[512], *text;
	va_list ap;
	size_t n;
	int r;

	if (!rec) {
		log_error("%s is gone; finalize cannot record its steps", ARM_RECORD);
		return E_REFUSED;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n = strlen(rec) + strlen(line) + 2;
	text = malloc(n);
	if (!text) {
		free(rec);
		return -ENOMEM;
	}
	snprintf(text, n, "%s%s\n", rec, line);
	free(rec);
	r = write_file(ARM_RECORD, text, 0600);
	free(text);
	if (r < 0)
		log_error("cannot write %s: %s", ARM_RECORD, strerror(-r));
	return r;
}

/* The admin notes of a finished conversion: 0 (*notes set), 1 not finished (or no state), or an error (logged). */
static int done_notes(const char *state, char **notes)
{
	struct state s;
	int r;

	memset(&s, 0, sizeof(s));
	r = dev_open(&s.dev, state, TARGET_STATE, 0);
	if (r == 0 && (r = state_read_sb(&s)) == 0 && (r = state_load_records(&s)) == 0 && s.rec.phase == PHASE_DONE)
		r = state_read_notes(&s, notes);
	else if (r == 0)
		r = 1; /* not finished */
	dev_close(&s.dev);
	if (r == 1 || r == -ENOENT)
		return 1;
	if (r < 0)
		log_error("cannot read the state store '%s': %s", state, strerror(-r));
	return r;
}

/* Shows a recovery key where only the admin sees it: the terminal, else the console; never the log or the journal. */
static int show_recovery_key(const char *name, const char *rk)
{
	char p[PATH_MAX];
	int fd = open(sys_path("/dev/tty", p, sizeof(p)), O_WRONLY | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		fd = open(sys_path("/dev/console", p, sizeof(p)), O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		log_error("cannot show the recovery key: no terminal or console (%s); arm with --recovery-key-file for an unattended finalize",
			  strerror(errno));
		return E_KEY;
	}
	dprintf(fd, "\n"
		    "luksipc: the recovery key for %s. Write it down now; it is shown once, and it\n"
		    "luksipc: opens the device when nothing else does:\n"
		    "\n"
		    "        %s\n"
		    "\n",
		name, rk);
	close(fd);
	return 0;
}

/* A new passphrase, typed twice. 0, or E_KEY (logged). */
static int ask_new_passphrase(const char *name, struct key *ret)
{
	char prompt[320];

	for (int tries = 0; tries < 3; tries++) {
		struct key again = { 0 };
		int same;

		snprintf(prompt, sizeof(prompt), "luksipc: a new passphrase for %s:", name);
		if (enroll_ask(prompt, ret))
			return E_KEY;
		if (enroll_ask("luksipc: the new passphrase again:", &again)) {
			key_free(ret);
			return E_KEY;
		}
		same = again.len == ret->len && !memcmp(again.data, ret->data, ret->len);
		key_free(&again);
		if (same)
			return 0;
		key_free(ret);
		log_warn("the two passphrases differ; type the same one twice");
	}
	log_error("the passphrases differed three times; the key it was armed with still opens %s: run luksipc finalize again", name);
	return E_KEY;
}

/*
 * A new recovery key in rk (ENROLL_RECOVERY_LEN + 1 bytes, locked): written
 * to file (mode 0600, durable) when one is named, else shown once and typed
 * back. 0, or E_KEY / -errno (logged).
 */
static int new_recovery_key(const char *name, const char *file, char *rk)
{
	int r = enroll_recovery_key(rk);

	if (r < 0) {
		log_error("cannot make a recovery key: %s", strerror(-r));
		return r;
	}
	if (file) {
		char *text = secmem_alloc(ENROLL_RECOVERY_LEN + 2);

		if (!text)
			return -ENOMEM;
		snprintf(text, ENROLL_RECOVERY_LEN + 2, "%s\n", rk);
		r = write_file(file, text, 0600);
		secmem_free(text);
		if (r < 0)
			log_error("cannot write the recovery key to %s: %s", file, strerror(-r));
		else
			log_info("the recovery key for %s is in %s (mode 0600): keep a copy off this machine", name, file);
		return r;
	}
	if ((r = show_recovery_key(name, rk)) < 0)
		return r;
	for (int tries = 0; tries < 3; tries++) {
		struct key typed = { 0 };
		int ok;

		if (enroll_ask("luksipc: type the recovery key back, to confirm you have it:", &typed))
			return E_KEY;
		ok = enroll_recovery_matches(rk, typed.data, typed.len);
		key_free(&typed);
		if (ok)
			return 0;
		log_warn("that is not the recovery key shown above; type it again");
	}
	log_error("the recovery key was not typed back; the key it was armed with still opens %s: run luksipc finalize again (it shows a new one)",
		  name);
	return E_KEY;
}

/*
 * The start of one enrolled key (kind: passphrase, recovery, tpm2): 1 when
 * enroll.KIND is recorded done and its keyslot is active (with a token of
 * token_type, when given); else a keyslot left pending by a cut is destroyed
 * with its tokens (the admin may never have seen its secret), a free one is
 * recorded "pending N" in *slot, and 0 is returned. <0 or E_* on failure.
 */
static int enroll_begin(const char *device, const char *kind, int boot_slot, const char *token_type, int *slot)
{
	char *rec = read_file(ARM_RECORD), field[32], st[64], what[16] = "";
	int n = -1, r;

	snprintf(field, sizeof(field), "enroll.%s", kind);
	record_get(rec ? rec : "", field, st, sizeof(st));
	free(rec);
	if (sscanf(st, "%15s %d", what, &n) == 2 && n != boot_slot) {
		if (!strcmp(what, "done") && enroll_slot_active(device, n) == 1 &&
		    (!token_type || enroll_token_of_slot(device, n, token_type) >= 0))
			return 1;
		if ((r = enroll_drop_tokens(device, n)) < 0 || (r = enroll_destroy(device, n)) < 0) {
			log_error("cannot destroy the unfinished %s keyslot %d of %s: %s", kind, n, device, strerror(-r));
			return r;
		}
	}
	n = enroll_free_slot(device);
	if (n < 0) {
		log_error("no free keyslot in %s's header (%s)", device, strerror(-n));
		return n == -ENOSPC ? E_REFUSED : n;
	}
	if ((r = record_step("%s=pending %d", field, n)) < 0)
		return r;
	*slot = n;
	return 0;
}

/*
 * One enrolled key (kind "passphrase" or "recovery"): recorded "pending N"
 * before keyslot N is added, "done N" once it opens the header with its own
 * secret. A pending slot found on a rerun belongs to a secret the admin may
 * never have seen: it is destroyed and the key made again.
 */
static int enroll_kind(const char *device, const char *name, const struct key *boot, int boot_slot, const char *kind,
		       const char *file)
{
	struct key secret = { 0 };
	int slot = -1, r = enroll_begin(device, kind, boot_slot, NULL, &slot);

	if (r)
		return r > 0 ? 0 : r;
	if (!strcmp(kind, "passphrase")) {
		r = ask_new_passphrase(name, &secret);
	} else {
		secret.data = secmem_alloc(ENROLL_RECOVERY_LEN + 1);
		r = secret.data ? new_recovery_key(name, file, secret.data) : -ENOMEM;
		secret.len = secret.data ? strlen(secret.data) : 0;
	}
	if (r == 0) {
		r = enroll_add(device, boot, slot, secret.data, secret.len);
		if (r == -EBADMSG)
			log_error("keyslot %d of %s was added but does not open with its %s; finalize stops, the key it was armed with still opens it",
				  slot, device, kind);
		else if (r == -EPERM)
			log_error("the key it was armed with no longer opens %s; finalize stops: open it with a key you have and see docs/lifecycle.md", device);
		else if (r < 0)
			log_error("cannot add keyslot %d to %s: %s (%s)", slot, device, strerror(-r), luks_last_error());
	}
	key_free(&secret);
	if (r == 0)
		r = record_step("enroll.%s=done %d", kind, slot);
	if (r == 0) {
		printf("finalize: keyslot %d of %s holds the %s%s, verified\n", slot, device,
		       !strcmp(kind, "passphrase") ? "new passphrase" : "recovery key", file ? " (see the file)" : "");
		fflush(stdout); /* a pipe to the journal: in order with the log lines on stderr */
	}
	return r == -EPERM ? E_KEY : r;
}

/*
 * The TPM2 keyslot: recorded "pending N" before systemd-cryptenroll adds it
 * (unlocked with the bootstrap key file, sealed to PCR ARM_TPM2_PCRS), "done
 * N" once cryptsetup, through systemd's token plugin, has opened the header
 * with that token and the TPM alone. A pending slot on a rerun is destroyed
 * with its token and made again.
 */
struct unlock;
static int run_cryptenroll(const char *device, const struct unlock *u);

static int enroll_tpm2(const char *device, int boot_slot, const struct unlock *u)
{
	char tok[16];
	char *verify[] = { "cryptsetup", "open", "--test-passphrase", "--token-only", "--token-id", tok, (char *)device, NULL };
	int slot = -1, t, r = enroll_begin(device, "tpm2", boot_slot, "systemd-tpm2", &slot);

	if (r)
		return r > 0 ? 0 : r;
	if ((r = run_cryptenroll(device, u)) != 0) {
		log_error("systemd-cryptenroll could not enroll the TPM2 (%s %d); the key it was armed with still opens %s: run luksipc finalize again",
			  r < 0 ? "error" : "exit", r < 0 ? -r : r, device);
		return r < 0 ? r : -EIO;
	}
	if (enroll_slot_active(device, slot) != 1 || (t = enroll_token_of_slot(device, slot, "systemd-tpm2")) < 0) {
		log_error("systemd-cryptenroll did not put its TPM2 key in keyslot %d of %s; finalize stops, the key it was armed with still opens it",
			  slot, device);
		return -EBADMSG;
	}
	snprintf(tok, sizeof(tok), "%d", t);
	if ((r = run_cmd(verify)) != 0) {
		log_error("the TPM2 token %d of %s does not open its keyslot %d (cryptsetup %s %d); finalize stops, the key it was armed with still opens it",
			  t, device, slot, r < 0 ? "error" : "exit", r < 0 ? -r : r);
		return -EBADMSG;
	}
	if ((r = record_step("enroll.tpm2=done %d", slot)) < 0)
		return r;
	printf("finalize: keyslot %d of %s opens with the TPM2 (token %d, PCR %s), verified\n", slot, device, t, ARM_TPM2_PCRS);
	fflush(stdout);
	return 0;
}

/*
 * The key that opens the device now, to add the chosen keys with: the
 * bootstrap key file; the admin's key file, its device mounted read-only
 * under /run for the time of the enrollment; or the passphrase typed at
 * boot, asked again. path is a file systemd-cryptenroll reads it from
 * (empty for the passphrase, which goes in its PASSWORD variable).
 */
struct unlock {
	struct key key;
	char path[PATH_MAX];
	char mnt[64];
};

/* systemd-cryptenroll adding a TPM2 keyslot, unlocked with u's key file, or its passphrase in PASSWORD. */
static int run_cryptenroll(const char *device, const struct unlock *u)
{
	char unlock[PATH_MAX + 32];
	char *with_file[] = { "systemd-cryptenroll", unlock, "--tpm2-device=auto", "--tpm2-pcrs=" ARM_TPM2_PCRS,
			      (char *)device, NULL };
	char *with_env[] = { "systemd-cryptenroll", "--tpm2-device=auto", "--tpm2-pcrs=" ARM_TPM2_PCRS, (char *)device,
			     NULL };
	size_t n = 0, k = 0, len;
	char **envp, *pw;
	int r;

	if (u->path[0]) {
		snprintf(unlock, sizeof(unlock), "--unlock-key-file=%s", u->path);
		return run_cmd(with_file);
	}
	/* the passphrase goes in the environment systemd-cryptenroll reads (and erases), never in argv */
	while (environ[n])
		n++;
	len = sizeof("PASSWORD=") + u->key.len;
	envp = calloc(n + 2, sizeof(*envp));
	pw = secmem_alloc(len);
	if (!envp || !pw) {
		free(envp);
		secmem_free(pw);
		return -ENOMEM;
	}
	memcpy(pw, "PASSWORD=", 9);
	memcpy(pw + 9, u->key.data, u->key.len);
	pw[len - 1] = '\0';
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PASSWORD=", 9))
			envp[k++] = environ[i];
	envp[k++] = pw;
	envp[k] = NULL;
	r = run_cmd_env(with_env, envp);
	secmem_free(pw);
	free(envp);
	return r;
}

/* 1 when every kind in mask is recorded done with its keyslot active (a rerun after the keys). */
static int enroll_kinds_done(const char *device, const char *rec, int mask)
{
	static const char *const kinds[] = { "passphrase", "recovery", "tpm2" };
	static const int bits[] = { ENROLL_PASSPHRASE, ENROLL_RECOVERY, ENROLL_TPM2 };
	char field[32], st[64], what[16];

	for (size_t i = 0; i < 3; i++) {
		int slot = -1;

		if (!(mask & bits[i]))
			continue;
		snprintf(field, sizeof(field), "enroll.%s", kinds[i]);
		record_get(rec, field, st, sizeof(st));
		if (sscanf(st, "%15s %d", what, &slot) != 2 || strcmp(what, "done") || enroll_slot_active(device, slot) != 1)
			return 0;
	}
	return 1;
}

static void unlock_close(struct unlock *u)
{
	key_free(&u->key);
	if (u->mnt[0]) {
		char *umount_argv[] = { "umount", u->mnt, NULL };

		if (run_cmd(umount_argv) != 0)
			log_warn("cannot unmount the key device from %s; unmount it by hand", u->mnt);
		else
			rmdir(u->mnt);
		u->mnt[0] = '\0';
	}
}

static int unlock_open(const char *rec, const char *kind, const char *device, const char *name, struct unlock *u)
{
	char spec[PATH_MAX], node[PATH_MAX], prompt[512];
	const char *colon;

	memset(u, 0, sizeof(*u));
	if (!strcmp(kind, "bootstrap")) {
		sys_path(ARM_BOOTSTRAP_KEY, u->path, sizeof(u->path));
		if (key_from_file(u->path, &u->key) < 0) {
			log_error("the bootstrap key %s is unreadable; finalize cannot add keys: open the device with a key you have and see docs/lifecycle.md",
				  ARM_BOOTSTRAP_KEY);
			return E_KEY;
		}
		return 0;
	}
	if (!strcmp(kind, "file")) {
		char *mount_argv[] = { "mount", "-o", "ro,nosuid,nodev,noexec", node, u->mnt, NULL };
		int r;

		record_get(rec, "key_file", spec, sizeof(spec));
		colon = strchr(spec, ':');
		if (spec[0] != '/' || !colon || resolve_spec(colon + 1, node, sizeof(node)) < 0) {
			log_error("the key device of '%s' is not here; plug it in and run luksipc finalize again", spec);
			return E_KEY;
		}
		snprintf(u->mnt, sizeof(u->mnt), "/run/luksipc-key.XXXXXX");
		if (!mkdtemp(u->mnt)) {
			log_error("cannot make a mount point under /run: %s", strerror(errno));
			u->mnt[0] = '\0';
			return -errno;
		}
		if ((r = run_cmd(mount_argv)) != 0) {
			log_error("cannot mount the key device %s read-only (mount %s %d); finalize adds no keys", node,
				  r < 0 ? "error" : "exit", r < 0 ? -r : r);
			rmdir(u->mnt);
			u->mnt[0] = '\0';
			return E_KEY;
		}
		snprintf(u->path, sizeof(u->path), "%s%.*s", u->mnt, (int)(colon - spec), spec);
		if (key_from_file(u->path, &u->key) < 0) {
			log_error("the key file %.*s on %s is unreadable; finalize adds no keys", (int)(colon - spec), spec, node);
			unlock_close(u);
			return E_KEY;
		}
		return 0;
	}
	for (int i = 0; i < 3; i++) {
		snprintf(prompt, sizeof(prompt), "luksipc: the passphrase that opens %s now, to add the new keys:", name);
		if (enroll_ask(prompt, &u->key))
			return E_KEY;
		if (enroll_find_slot(device, &u->key) >= 0)
			return 0;
		key_free(&u->key);
		log_warn("that passphrase does not open %s; type the one asked for at boot", name);
	}
	log_error("three passphrases did not open %s; finalize adds no keys: run luksipc finalize again", name);
	return E_KEY;
}

/* The keys chosen at arm time, added with the key that opens the device now (recorded step by step). */
static int finalize_enroll(const char *device, const char *name, const char *rec, const char *kind)
{
	char enroll[64], file[PATH_MAX], bs[16];
	struct unlock u;
	int mask, slot, r, bootstrap = !strcmp(kind, "bootstrap");

	record_get(rec, "enroll", enroll, sizeof(enroll));
	record_get(rec, "recovery_file", file, sizeof(file));
	record_get(rec, "bootstrap_slot", bs, sizeof(bs));
	mask = enroll_mask(enroll);
	if (mask <= 0) {
		log_error("%s names no keys to enroll (enroll=%s); run luksipc disarm and arm again", ARM_RECORD, enroll);
		return E_REFUSED;
	}
	if (!bootstrap && enroll_kinds_done(device, rec, mask))
		return 0; /* a rerun after the keys: no need for the key device or a passphrase again */
	if ((r = unlock_open(rec, kind, device, name, &u)))
		return r;
	if (bootstrap && bs[0]) {
		slot = atoi(bs);
	} else {
		slot = enroll_find_slot(device, &u.key);
		if (slot < 0) {
			unlock_close(&u);
			log_error("the %s does not open %s (%s); finalize adds no keys",
				  bootstrap ? "bootstrap key " ARM_BOOTSTRAP_KEY : "key file", device, strerror(-slot));
			return slot == -EPERM ? E_KEY : E_REFUSED;
		}
		if (bootstrap && (r = record_step("bootstrap_slot=%d", slot)) < 0) {
			unlock_close(&u);
			return r;
		}
	}
	r = 0;
	if (mask & ENROLL_PASSPHRASE)
		r = enroll_kind(device, name, &u.key, slot, "passphrase", NULL);
	if (r == 0 && (mask & ENROLL_RECOVERY))
		r = enroll_kind(device, name, &u.key, slot, "recovery", file[0] ? file : NULL);
	if (r == 0 && (mask & ENROLL_TPM2))
		r = enroll_tpm2(device, slot, &u);
	unlock_close(&u);
	return r;
}

/*
 * On the boot without the flags (a typed key opened the device): the
 * enrolled keyslots must still be there; then the bootstrap keyslot is
 * destroyed, the key file overwritten and removed, and the initramfs
 * rebuilt without it. Recorded before ("retire=started") and after.
 */
static int finalize_retire(const char *device, const char *fw, const char *rec)
{
	char bs[16], done[16], field[32], st[64], what[16];
	static const char *const kinds[] = { "passphrase", "recovery", "tpm2" };
	int slot, r, active = 0;

	record_get(rec, "retire", done, sizeof(done));
	if (!strcmp(done, "done"))
		return 0;
	record_get(rec, "bootstrap_slot", bs, sizeof(bs));
	if (!bs[0]) {
		log_error("%s does not say which keyslot the bootstrap key holds; it stays: see luksipc status and docs/lifecycle.md",
			  ARM_RECORD);
		return E_REFUSED;
	}
	slot = atoi(bs);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int n = -1;

		snprintf(field, sizeof(field), "enroll.%s", kinds[i]);
		record_get(rec, field, st, sizeof(st));
		if (!st[0])
			continue;
		if (sscanf(st, "%15s %d", what, &n) != 2 || strcmp(what, "done") || n == slot ||
		    enroll_slot_active(device, n) != 1) {
			log_error("the %s keyslot of %s is not in place (%s); the bootstrap keyslot %d stays: run luksipc finalize after fixing it",
				  kinds[i], device, st, slot);
			return E_REFUSED;
		}
		active++;
	}
	if (!active) {
		log_error("no enrolled keyslot is recorded for %s; the bootstrap keyslot %d stays", device, slot);
		return E_REFUSED;
	}
	if ((r = record_step("retire=started")) < 0)
		return r;
	if ((r = enroll_drop_tokens(device, slot)) < 0 || (r = enroll_destroy(device, slot)) < 0) {
		log_error("cannot destroy the bootstrap keyslot %d of %s: %s (%s)", slot, device, strerror(-r), luks_last_error());
		return r;
	}
	printf("finalize: the bootstrap keyslot %d of %s is destroyed\n", slot, device);
	if ((r = remove_bootstrap_key()) < 0)
		return r;
	if (rebuild_initramfs(fw) < 0)
		return -EIO;
	return record_step("retire=done");
}

/* The TPM2 unlocks the device at boot: crypttab's tpm2-device=auto, and dracut's rd.luks.options for its UUID. */
static int add_tpm2_unlock(struct notes_boot *b)
{
	size_t n = strlen(b->crypttab), m = strlen(b->flags);
	int r;

	r = snprintf(b->crypttab + n, sizeof(b->crypttab) - n, ",tpm2-device=auto");
	if (r < 0 || (size_t)r >= sizeof(b->crypttab) - n)
		return -ENAMETOOLONG;
	if (m) {
		r = snprintf(b->flags + m, sizeof(b->flags) - m, " rd.luks.options=%s=tpm2-device=auto", b->uuid);
		if (r < 0 || (size_t)r >= sizeof(b->flags) - m)
			return -ENAMETOOLONG;
	}
	return 0;
}

/* Phase one, after the keys: the system unlocks the device from crypttab; the boot loader loses the rd.luksipc flags. */
static int apply_boot_config(const struct notes_boot *b, const char *fw, int grub, int kcmd, int tpm2)
{
	char text[8192];
	int r;

	if (tpm2 && (r = write_file(ARM_DRACUT_TPM2_CONF,
				    "# Written by luksipc finalize: the root unlocks with a TPM2 (tpm2-device=auto);\n"
				    "# the initramfs needs the TPM2 libraries for that.\n"
				    "add_dracutmodules+=\" tpm2-tss \"\n",
				    0644)) < 0) {
		log_error("cannot write %s: %s", ARM_DRACUT_TPM2_CONF, strerror(-r));
		return r;
	}
	if ((r = write_crypttab(b)) < 0)
		return r;
	log_info("/etc/crypttab: %s", b->crypttab);
	if (rebuild_initramfs(fw) < 0)
		return -EIO;
	if (grub) {
		if (b->flags[0]) {
			snprintf(text, sizeof(text),
				 "# Written by luksipc finalize: the kernel flags that unlock %s.\n"
				 "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX %s\"\n", b->name, b->flags);
			r = write_file(ARM_GRUB_DROPIN, text, 0644);
		} else {
			r = remove_file(ARM_GRUB_DROPIN);
		}
		if (r < 0) {
			log_error("cannot update %s: %s", ARM_GRUB_DROPIN, strerror(-r));
			return r;
		}
		if (update_grub() < 0)
			return -EIO;
	}
	if (kcmd && rewrite_kernel_cmdline(b->flags) < 0)
		return -EIO;
	return 0;
}

/*
 * The --also devices' crypttab entries (their admin notes, in systemd's
 * spelling: the booted system's systemd-cryptsetup opens them, not the
 * initramfs). Each must be converted first: 1 (logged as for the first
 * device) when one is not, 0 once every entry is written, or an error.
 */
static int also_crypttab(const struct also_rec *a, const char *fw, int if_done)
{
	struct notes_boot *b = calloc(a->n ? a->n : 1, sizeof(*b));
	int r = 0;

	if (!b)
		return -ENOMEM;
	for (int i = 0; i < a->n && r == 0; i++) {
		char *notes = NULL;

		r = done_notes(a->state[i], &notes);
		if (r == 1) {
			if (if_done)
				log_info("the conversion of %s in '%s' is not finished; nothing to finalize yet", a->device[i], a->state[i]);
			else
				log_error("the conversion of %s in '%s' is not finished; boot with the rd.luksipc flags to let it finish",
					  a->device[i], a->state[i]);
			break;
		}
		if (r == 0) {
			r = notes_boot_config(notes, fw, 0, &b[i]);
			free(notes);
			if (r < 0) {
				log_error("the state store '%s' holds no admin notes finalize can apply; follow luksipc status --state %s --notes by hand",
					  a->state[i], a->state[i]);
				r = E_REFUSED;
			}
		}
	}
	for (int i = 0; i < a->n && r == 0; i++)
		if ((r = write_crypttab(&b[i])) == 0)
			log_info("/etc/crypttab: %s", b[i].crypttab);
	free(b);
	return r;
}

int arm_finalize(int if_done)
{
	char *rec = read_file(ARM_RECORD), *notes = NULL;
	char state[PATH_MAX], device[PATH_MAX], fw[32], grub[4], kc[4], step[32], key[16], enroll[64];
	struct notes_boot b;
	struct also_rec *also;
	int bootstrap, tpm2, r;

	if (!rec) {
		log_error("finalize needs --state PATH, or a system armed by luksipc arm (%s)", ARM_RECORD);
		return E_USAGE;
	}
	if (!(also = record_also(rec))) {
		free(rec);
		return E_REFUSED;
	}
	record_get(rec, "state", state, sizeof(state));
	record_get(rec, "device", device, sizeof(device));
	record_get(rec, "framework", fw, sizeof(fw));
	record_get(rec, "grub", grub, sizeof(grub));
	record_get(rec, "kernel_cmdline", kc, sizeof(kc));
	record_get(rec, "finalize", step, sizeof(step));
	record_get(rec, "key", key, sizeof(key));
	bootstrap = !strcmp(key, "bootstrap");
	record_get(rec, "enroll", enroll, sizeof(enroll));
	tpm2 = enroll_mask(enroll) > 0 && (enroll_mask(enroll) & ENROLL_TPM2);
	if (strcmp(step, "boot-config")) {
		r = done_notes(state, &notes);
		if (r == 1) {
			free(rec);
			free(also);
			if (if_done) {
				log_info("the conversion in '%s' is not finished; nothing to finalize yet", state);
				return 0;
			}
			log_error("the conversion in '%s' is not finished; boot with the rd.luksipc flags to let it finish", state);
			return E_REFUSED;
		}
		if (r == 0) {
			r = notes_boot_config(notes, fw, bootstrap, &b);
			free(notes);
			if (r < 0) {
				log_error("the state store '%s' holds no admin notes finalize can apply; follow luksipc status --state %s --notes by hand",
					  state, state);
				r = E_REFUSED;
			}
		}
		if (r == 0 && also->n) {
			r = also_crypttab(also, fw, if_done);
			if (r == 1) {
				free(rec);
				free(also);
				return if_done ? 0 : E_REFUSED;
			}
		}
		if (r == 0 && enroll[0])
			r = finalize_enroll(device, b.name, rec, key);
		if (r == 0 && tpm2)
			r = add_tpm2_unlock(&b);
		if (r == 0)
			r = apply_boot_config(&b, fw, !strcmp(grub, "1"), !strcmp(kc, "1"), tpm2);
		free(rec);
		free(also);
		if (r == 0)
			r = record_step("finalize=boot-config");
		if (r) {
			log_error("finalize stopped part way; the rd.luksipc flags still open the device: run luksipc finalize again");
			return r;
		}
		printf("finalize: %s now unlocks from /etc/crypttab%s; reboot: once a boot without the rd.luksipc flags works,\n"
		       "finalize %swipes the state store '%s'\n", device, bootstrap ? " with the keys you enrolled" : "",
		       bootstrap ? "destroys the bootstrap keyslot and " : "", state);
		return 0;
	}
	if (cmdline_has_flags()) {
		free(rec);
		free(also);
		printf("finalize: waiting for a boot without the rd.luksipc flags; reboot (the boot loader no longer adds them)\n");
		return 0;
	}
	/* Phase two: this boot unlocked the device without luksipc; the bootstrap key and the state are no longer needed. */
	r = bootstrap ? finalize_retire(device, fw, rec) : 0;
	free(rec);
	for (int i = 0; i < also->n && r == 0; i++)
		if (!store_is_empty(also->state[i]))
			r = finalize_run(also->state[i], also->device[i], NULL, 1);
	free(also);
	if (r)
		return r;
	/* an empty store: a cut came after the wipe and before the record went; finish that */
	if (!store_is_empty(state) && (r = finalize_run(state, device, NULL, 1)))
		return r;
	remove_file(ARM_FINALIZE_WANTS);
	if ((r = remove_file(ARM_RECORD)) < 0) {
		log_error("cannot remove %s: %s", ARM_RECORD, strerror(-r));
		return r;
	}
	printf("finalized: the state store is wiped; luksipc is done with %s\n", device);
	return 0;
}

int arm_status(void)
{
	char *rec = read_file(ARM_RECORD);

	if (!rec) {
		log_error("status needs --state PATH, or a system armed by luksipc arm (%s)", ARM_RECORD);
		return E_USAGE;
	}
	printf("armed: %s\n", ARM_RECORD);
	for (char *l = rec, *e; *l; l = e + (*e != '\0')) {
		e = l + strcspn(l, "\n");
		if (*l != '#' && e > l)
			printf("  %.*s\n", (int)(e - l), l);
	}
	free(rec);
	return 0;
}
