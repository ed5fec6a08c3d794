/*
 * Admin notes. The conversion records facts, not prose: the steps depend on
 * the framework that builds the initramfs, which `status --notes` knows
 * better in the booted system than the converter did at the start.
 *
 * Why these crypttab lines (issue 16, read from cryptsetup 2:2.6.1-4 and
 * systemd 252's sources):
 *  - initramfs-tools: cryptroot has no "PATH:DEVICE" spelling and will not
 *    take a key file for the root ("Skipping root target ... uses a key
 *    file"); its passdev keyscript reads "DEVICE:PATH". systemd-cryptsetup
 *    in the booted system reads the same field as "PATH:DEVICE" (it splits
 *    at the last colon) and fails on passdev's order, even with noauto: the
 *    root filesystem's mount still pulls the unit in (measured, QEMU
 *    scenario 21). So the line keeps systemd's spelling and names luksipc's
 *    own keyscript (initramfs-tools/keydev), which reads PATH:DEVICE;
 *    systemd ignores keyscript= and finds the volume already active.
 *  - dracut: systemd-cryptsetup runs in the initrd too, so systemd's own
 *    spelling, plus rd.luks.uuid/name/key for an initrd that carries no
 *    crypttab (not host-only). In the booted system the volume is already
 *    active and systemd-cryptsetup leaves it be.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notes.h"
#include "probe.h"
#include "testhooks.h"

#define NOTES_MAGIC "luksipc-notes 2\n"

/* Installed by `make install-boot` (mk/install.mk); cryptroot copies it into the initramfs. */
#define LUKSIPC_KEYSCRIPT "/usr/lib/luksipc/keydev"

enum fw { FW_NONE, FW_ITOOLS, FW_DRACUT };

struct notes {
	struct notes_facts f;
	enum fw fw;
	int boot;              /* converted at boot: kernel flags to remove */
	char key_path[1024];   /* PATH of PATH:DEVICE, or the plain key file */
	const char *keydev;    /* DEVICE of PATH:DEVICE as written, or NULL */
	char keydev_node[1024];/* DEVICE as a /dev path */
	int passphrase;
	int detached;          /* a detached header: crypttab names it, the initramfs carries a copy */
};

int notes_framework_ok(const char *name)
{
	return !strcmp(name, "initramfs-tools") || !strcmp(name, "dracut");
}

int notes_record(const struct notes_facts *f, char *buf, size_t len)
{
	const char *v[] = { f->device, f->uuid, f->name, f->key, f->framework, f->header ? f->header : "", f->header_spec ? f->header_spec : "" };
	int n;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		if (strchr(v[i], '\n'))
			return -EINVAL;
	n = snprintf(buf, len, NOTES_MAGIC "device=%s\nuuid=%s\nluks=%u\nmode=%s\nname=%s\nkey=%s\nframework=%s\n", f->device,
		     f->uuid, f->luks_version, f->decrypt ? "decrypt" : f->reencrypt ? "reencrypt" : "encrypt", f->name, f->key, f->framework);
	/* a line older readers skip; only a detached header writes it */
	if (n >= 0 && (size_t)n < len && f->header && f->header[0])
		n += snprintf(buf + n, len - (size_t)n, "header=%s\n", f->header);
	if (n >= 0 && (size_t)n < len && f->header_spec && f->header_spec[0])
		n += snprintf(buf + n, len - (size_t)n, "header_spec=%s\n", f->header_spec);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

/* Fills n->f from a record; text is modified (values point into it). */
static int parse_record(char *text, struct notes *n)
{
	char *line, *save = NULL;

	if (strncmp(text, NOTES_MAGIC, strlen(NOTES_MAGIC)))
		return -EINVAL;
	memset(n, 0, sizeof(*n));
	n->f.framework = "";
	for (line = strtok_r(text + strlen(NOTES_MAGIC), "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, '=');

		if (!val)
			continue;
		*val++ = '\0';
		if (!strcmp(line, "device"))
			n->f.device = val;
		else if (!strcmp(line, "uuid"))
			n->f.uuid = val;
		else if (!strcmp(line, "luks"))
			n->f.luks_version = (unsigned)strtoul(val, NULL, 10);
		else if (!strcmp(line, "mode"))
			n->f.reencrypt = !strcmp(val, "reencrypt"), n->f.decrypt = !strcmp(val, "decrypt");
		else if (!strcmp(line, "name"))
			n->f.name = val;
		else if (!strcmp(line, "key"))
			n->f.key = val;
		else if (!strcmp(line, "framework"))
			n->f.framework = val;
		else if (!strcmp(line, "header"))
			n->f.header = val;
		else if (!strcmp(line, "header_spec"))
			n->f.header_spec = val;
	}
	return n->f.device && n->f.uuid && n->f.name && n->f.key ? 0 : -EINVAL;
}

/* Characters the printed commands never need to quote or escape. */
static int is_plain(const char *s)
{
	return *s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/:=+@,") == strlen(s);
}

/* The /dev node a device spec names, for the mount in the notes; 0 or -EINVAL. */
int notes_dev_node(const char *spec, char *buf, size_t len)
{
	static const struct { const char *tag, *dir; } map[] = {
		{ "UUID=", "/dev/disk/by-uuid/" }, { "PARTUUID=", "/dev/disk/by-partuuid/" },
		{ "LABEL=", "/dev/disk/by-label/" }, { "PARTLABEL=", "/dev/disk/by-partlabel/" },
	};
	int r = -1;

	if (!strncmp(spec, "/dev/", 5))
		r = snprintf(buf, len, "%s", spec);
	for (size_t i = 0; r < 0 && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(spec, map[i].tag, strlen(map[i].tag)) && spec[strlen(map[i].tag)])
			r = snprintf(buf, len, "%s%s", map[i].dir, spec + strlen(map[i].tag));
	return r < 0 || (size_t)r >= len ? -EINVAL : 0;
}

/* The key as the boot lib's rd.luksipc.key=PATH[:DEVICE] reads it. */
static void split_key(struct notes *n)
{
	const char *k = n->f.key, *colon = strchr(k, ':');

	n->passphrase = !*k || !strcmp(k, "-");
	if (n->passphrase)
		return;
	if (colon && notes_dev_node(colon + 1, n->keydev_node, sizeof(n->keydev_node)) == 0) {
		snprintf(n->key_path, sizeof(n->key_path), "%.*s", (int)(colon - k), k);
		n->keydev = colon + 1;
	} else {
		snprintf(n->key_path, sizeof(n->key_path), "%s", k);
	}
}

static enum fw detect_fw(const char *override, const char *recorded)
{
	const char *name = override ? override : recorded;

	/* recorded "other": converted at boot by a framework these notes do not know */
	if (name && !strcmp(name, "initramfs-tools"))
		return FW_ITOOLS;
	if (name && !strcmp(name, "dracut"))
		return FW_DRACUT;
	if (access("/usr/sbin/update-initramfs", X_OK) == 0 || access("/sbin/update-initramfs", X_OK) == 0)
		return FW_ITOOLS;
	if (access("/usr/bin/dracut", X_OK) == 0 || access("/usr/sbin/dracut", X_OK) == 0)
		return FW_DRACUT;
	return FW_NONE;
}

/* The name as a sed BRE: '.' is the only special character is_plain allows. */
static void print_re(FILE *o, const char *s)
{
	for (; *s; s++)
		fprintf(o, *s == '.' ? "\\%c" : "%c", *s);
}

/* source: UUID=U, or PARTUUID=P for a detached header (the device carries no LUKS UUID). */
static void print_crypttab_cmd(FILE *o, const struct notes *n, const char *source, const char *key, const char *opts)
{
	/* an older entry for the name or the device (re-encryption) goes */
	fputs("  $ touch /etc/crypttab && sed -i '/^", o);
	print_re(o, n->f.name);
	fprintf(o, "[[:space:]]/d; /^[^#]*[[:space:]]%s[[:space:]]/d' /etc/crypttab && printf '%%s\\n' '%s %s %s %s' >>/etc/crypttab\n",
		source, n->f.name, source, key, opts);
}

/* The key and options fields of the crypttab entry (see the comment at the top). */
static void crypttab_fields(const struct notes *n, char *key, size_t len, const char **opts)
{
	*opts = "luks";
	if (n->passphrase) {
		snprintf(key, len, "none");
	} else if (n->keydev) {
		snprintf(key, len, "%s:%s", n->key_path, n->keydev);
		if (n->fw == FW_ITOOLS)
			*opts = "luks,keyscript=" LUKSIPC_KEYSCRIPT;
	} else {
		snprintf(key, len, "%s", n->key_path);
	}
}

/* The kernel flags that unlock the device without luksipc: dracut's rd.luks.*; "" for initramfs-tools. */
static void unlock_flags(const struct notes *n, char *buf, size_t len)
{
	buf[0] = '\0';
	/* a detached header: the initramfs's own crypttab opens it (the device has no LUKS UUID to name) */
	if (n->fw != FW_DRACUT || n->detached)
		return;
	if (n->keydev)
		snprintf(buf, len, "rd.luks.uuid=%s rd.luks.name=%s=%s rd.luks.key=%s=%s:%s", n->f.uuid, n->f.uuid, n->f.name,
			 n->f.uuid, n->key_path, n->keydev);
	else
		snprintf(buf, len, "rd.luks.uuid=%s rd.luks.name=%s=%s", n->f.uuid, n->f.uuid, n->f.name);
}

static void print_crypttab(FILE *o, const struct notes *n, int step, const char *source, const char *more_opts)
{
	char key[2200], all[2400];
	const char *opts;

	crypttab_fields(n, key, sizeof(key), &opts);
	snprintf(all, sizeof(all), "%s%s", opts, more_opts);
	if (n->passphrase)
		fprintf(o, "%d. The /etc/crypttab entry (the key field none: asked for the passphrase at boot):\n", step);
	else if (n->keydev && n->fw == FW_ITOOLS)
		fprintf(o,
			"%d. The /etc/crypttab entry. The key field is systemd's spelling (PATH:DEVICE), which the booted\n"
			"   system's systemd-cryptsetup reads; Debian's cryptroot in the initramfs reads it through luksipc's\n"
			"   keyscript (systemd ignores keyscript=):\n",
			step);
	else if (n->keydev)
		fprintf(o, "%d. The /etc/crypttab entry, in systemd's spelling (PATH:DEVICE):\n", step);
	else
		fprintf(o, "%d. The /etc/crypttab entry (the key file %s must exist in the booted system):\n", step, n->key_path);
	print_crypttab_cmd(o, n, source, key, all);
	if (!n->passphrase && !n->keydev && n->fw == FW_ITOOLS)
		fputs("   If this is the root filesystem: initramfs-tools takes no key file from the root filesystem for it;\n"
		      "   add a passphrase (below) and write none instead of the key file, then do the next steps.\n",
		      o);
}

static void print_flags(FILE *o, const struct notes *n, int step)
{
	fprintf(o,
		"%d. Remove the rd.luksipc flags from the kernel command line%s\n"
		"   (GRUB: /etc/default/grub and /etc/default/grub.d/*.cfg; kernel-install: /etc/kernel/cmdline),\n"
		"   then update GRUB. Without GRUB, make the same change in your boot loader's entry.\n",
		step, n->fw == FW_DRACUT && !n->detached ? ", add the rd.luks flags that unlock the root" : "");
	fputs("  $ for f in /etc/default/grub /etc/default/grub.d/*.cfg /etc/kernel/cmdline; do if [ -f \"$f\" ]; then "
	      "sed -i 's/[[:space:]]*\\<rd\\.luksipc[.a-z-]*=[^[:space:]\"]*//g' \"$f\"; fi; done\n",
	      o);
	if (n->fw == FW_DRACUT && !n->detached) {
		char flags[3000];

		unlock_flags(n, flags, sizeof(flags));
		fprintf(o, "  $ sed -i 's|^GRUB_CMDLINE_LINUX=\"|&%s |' /etc/default/grub\n", flags);
		fprintf(o, "  $ if [ -f /etc/kernel/cmdline ]; then sed -i '1s|$| %s|' /etc/kernel/cmdline; fi\n", flags);
	}
	fputs("  $ update-grub\n", o);
}

static void print_passphrase(FILE *o, const struct notes *n, int step)
{
	if (n->passphrase)
		return;
	fprintf(o,
		"%d. Optional: a passphrase as a second way in (cryptsetup reads it from stdin when stdin is not a\n"
		"   terminal; one line)%s:\n",
		step, n->keydev ? ", with the key device plugged in" : "");
	if (n->keydev) {
		fprintf(o, "  $ mkdir -p /run/luksipc-key && mount -o ro %s /run/luksipc-key\n", n->keydev_node);
		fprintf(o, "  $ cryptsetup luksAddKey --key-file /run/luksipc-key/%s /dev/disk/by-uuid/%s\n",
			n->key_path + strspn(n->key_path, "/"), n->f.uuid);
		fputs("  $ umount /run/luksipc-key\n", o);
	} else {
		fprintf(o, "  $ cryptsetup luksAddKey --key-file %s /dev/disk/by-uuid/%s\n", n->key_path, n->f.uuid);
	}
}

static void print_later(FILE *o, const struct notes *n, const char *state)
{
	fprintf(o, "Later, once %s:\n", n->boot ? "a boot without the rd.luksipc flags works" : "the device unlocks from /etc/crypttab");
	fprintf(o, "- the state store is no longer needed: 'luksipc finalize --state %s' wipes it (it refuses while the\n"
		   "  conversion is unfinished or the device does not match).\n", state);
	if (!n->passphrase)
		fprintf(o, "- to retire the key file: add a passphrase, make the boot ask for it (crypttab key field none, no\n"
			   "  keyscript; rebuild the initramfs) and boot with it; only then remove the key file's keyslot:\n"
			   "  cryptsetup luksRemoveKey /dev/disk/by-uuid/%s KEYFILE\n"
			   "  Never remove the last keyslot that works (cryptsetup luksDump lists them).\n", n->f.uuid);
}

/*
 * A detached header: the device carries no LUKS signature, so it is named by
 * its PARTUUID, and the initramfs needs its own copy of the header. Neither
 * Debian's cryptroot hook nor dracut's crypt module copies a header= file
 * into the image (read in cryptsetup-initramfs 2:2.6.1-4 and dracut 059), so
 * luksipc's hook and module copy what an entry names under /etc/luksipc/.
 * The copy lives in the root filesystem (opened by then in the booted
 * system, so systemd-cryptsetup finds the file and the volume active), not
 * on /boot, which the booted system mounts only after its crypttab units.
 * dracut: its crypt module keeps a host-only image's entry only for a
 * crypto_LUKS device or with "force" (the device has no signature); the
 * others ignore the unknown option. Without a PARTUUID, a known framework
 * or a file named at boot, the notes fall back to keeping the flags.
 */
#define HDR_DIR "/etc/luksipc"

static void print_detached_handover(FILE *o, struct notes *n, const char *state, const char *spec_node, const char *spec_path,
				    const char *partuuid)
{
	char source[128], opts[1200];
	int step = 1;

	n->detached = 1;
	snprintf(source, sizeof(source), "PARTUUID=%s", partuuid);
	snprintf(opts, sizeof(opts), ",header=" HDR_DIR "/%s.luks-header%s", n->f.name, n->fw == FW_DRACUT ? ",force" : "");
	fprintf(o, "Next steps for %s: the initramfs opens '%s' from /etc/crypttab with its own copy of the header, and the\n"
		   "rd.luksipc flags go. Run each line that starts with \"$\" as root, in this order:\n",
		n->fw == FW_DRACUT ? "dracut" : "initramfs-tools", n->f.name);
	fprintf(o, "%d. A copy of the header in the root filesystem, which the initramfs build puts into the image:\n", step++);
	fprintf(o, "  $ mkdir -p /run/luksipc-hdr && mount %s /run/luksipc-hdr\n", spec_node);
	fprintf(o, "  $ mkdir -p -m 0700 " HDR_DIR " && install -m 0600 /run/luksipc-hdr%s " HDR_DIR "/%s.luks-header\n", spec_path,
		n->f.name);
	fputs("  $ umount /run/luksipc-hdr\n", o);
	fprintf(o, "%d. Keep one more copy off this disk (a USB stick, another machine), now: without a header nothing\n"
		   "   opens the data. (" HDR_DIR "/%s.luks-header, or %s on %s.)\n", step++, n->f.name, spec_path, spec_node);
	print_crypttab(o, n, step++, source, opts);
	if (n->fw == FW_ITOOLS) {
		fprintf(o, "%d. Rebuild the initramfs, so that it carries the entry%s and the header (made root-only: it holds the\n"
			   "   keyslots):\n", step++, n->keydev ? ", the keyscript" : "");
		fputs("  $ printf 'UMASK=0077\\n' >/etc/initramfs-tools/conf.d/luksipc-header\n", o);
		fputs("  $ update-initramfs -u\n", o);
	} else {
		fprintf(o, "%d. Rebuild the initramfs, so that it carries the entry and the header (luksipc's module adds both):\n"
			   "  $ dracut -f\n", step++);
	}
	print_flags(o, n, step++);
	fprintf(o, "Then reboot: the initramfs opens '%s' %s, with the header in the image, without the rd.luksipc flags.\n",
		n->f.name, n->passphrase ? "with the passphrase" : "with the key file");
	fputs("Later, once a boot without the rd.luksipc flags works:\n", o);
	fprintf(o, "- the state store is no longer needed: 'luksipc finalize --state %s --header " HDR_DIR "/%s.luks-header'\n"
		   "  wipes it (it checks first that this header is the conversion's).\n", state, n->f.name);
	fprintf(o, "- a keyslot change (cryptsetup luksAddKey --header " HDR_DIR "/%s.luks-header /dev/disk/by-partuuid/%s) is\n"
		   "  made in that copy: rebuild the initramfs after it, and renew the other copies; an old copy still\n"
		   "  opens the data with the keys it holds.\n", n->f.name, partuuid);
}

static void print_detached(FILE *o, struct notes *n, const char *state)
{
	/* header_spec DEVICE:/PATH (a file, converted at boot): its parts, and DEVICE as a /dev node */
	char spec_dev[1024] = "", spec_path[1024] = "", spec_node[1024] = "";
	const char *sep = n->f.header_spec ? strstr(n->f.header_spec, ":/") : NULL;

	if (sep && sep > n->f.header_spec && is_plain(n->f.header_spec)) {
		snprintf(spec_dev, sizeof(spec_dev), "%.*s", (int)(sep - n->f.header_spec), n->f.header_spec);
		snprintf(spec_path, sizeof(spec_path), "%s", sep + 1);
		if (notes_dev_node(spec_dev, spec_node, sizeof(spec_node)) < 0)
			spec_path[0] = '\0';
	}
	if (spec_path[0])
		fprintf(o, "Its LUKS header is not on %s: it is the file %s in the filesystem %s. Without that header nothing\n"
			   "can open the data.\n", n->f.device, spec_path, spec_dev);
	else
		fprintf(o, "Its LUKS header is not on %s: it is in %s. Without that header nothing can open the data.\n", n->f.device,
			n->f.header);
	if (!is_plain(n->f.header) || !is_plain(n->f.device)) {
		fputs("The paths hold characters these notes do not quote: copy the header elsewhere now, and see\n"
		      "cryptsetup(8), --header, to open the device.\n", o);
		return;
	}
	if (n->boot && spec_path[0] && n->fw != FW_NONE && is_plain(n->f.name) && (n->passphrase || is_plain(n->f.key))) {
		char node[1024], partuuid[64];

		const char *t = test_hook_partuuid();
		int found = t ? snprintf(partuuid, sizeof(partuuid), "%s", t) >= 0 :
				notes_dev_node(n->f.device, node, sizeof(node)) == 0 && probe_part_uuid(node, partuuid, sizeof(partuuid)) == 0;

		if (found && partuuid[0] && is_plain(partuuid)) {
			print_detached_handover(o, n, state, spec_node, spec_path, partuuid);
			return;
		}
		fprintf(o, "(%s has no PARTUUID here, so these notes cannot name it in /etc/crypttab.)\n", n->f.device);
	}
	fputs("Run each line that starts with \"$\" as root:\n", o);
	if (spec_path[0]) {
		/* converted at boot: the header is a file on DEVICE, which the booted system may mount elsewhere (or not) */
		fputs("1. The boot mounted that filesystem under /run/luksipc/hdr only while it needed it. Keep a copy of the\n"
		      "   header elsewhere (another disk, offline), now:\n", o);
		fprintf(o, "  $ mkdir -p /run/luksipc-hdr && mount %s /run/luksipc-hdr\n", spec_node);
		fprintf(o, "  $ cp /run/luksipc-hdr%s /root/%s.luks-header && sync\n", spec_path, n->f.name);
		fputs("  $ umount /run/luksipc-hdr\n", o);
		fprintf(o, "2. By hand (not while it is open): cryptsetup open --header HEADERFILE %s %s\n", n->f.device, n->f.name);
	} else {
		fprintf(o, "1. Keep a copy of the header elsewhere (another disk, offline), now:\n  $ cp %s /root/%s.luks-header && sync\n",
			n->f.header, n->f.name);
		fprintf(o, "2. To open it by hand:\n  $ cryptsetup open --header %s %s %s\n", n->f.header, n->f.device, n->f.name);
	}
	if (n->boot)
		fprintf(o, "3. Keep the rd.luksipc flags on the kernel command line: at every boot luksipc finds the conversion\n"
			   "   done and opens '%s' with the header named by rd.luksipc.header=. (These notes hand a root over\n"
			   "   to /etc/crypttab only on a partition with a PARTUUID, with initramfs-tools or dracut.)\n",
			n->f.name);
	if (n->boot)
		fprintf(o, "Keep the state store (%s) as long as the flags stay: each boot reads it to know that the root is\n"
			   "converted (without it the boot refuses to convert again, and stops). It holds a copy of the header too.\n", state);
	else
		fprintf(o, "Keep the state store (%s) until you have the copy: it holds the header too; 'luksipc finalize --state\n"
			   "%s' wipes it, and checks first that the header at %s is this conversion's (--header PATH if it moved).\n", state,
			state, n->f.header);
}

static void print_steps(FILE *o, struct notes *n, const char *state)
{
	static const char *fw_name[] = { "a system with neither update-initramfs nor dracut", "initramfs-tools", "dracut" };
	int step = 1;

	if (n->f.decrypt) {
		if (n->f.header && n->f.header[0])
			fprintf(o, "luksipc decrypted %s: it holds plaintext again, and its LUKS%u header (UUID %s) in %s is wiped.\n",
				n->f.device, n->f.luks_version, n->f.uuid, n->f.header);
		else
			fprintf(o, "luksipc decrypted %s: it holds plaintext again from byte 0; its LUKS%u header (UUID %s) is gone,\n"
				   "the data moved down into its place.\n", n->f.device, n->f.luks_version, n->f.uuid);
		fprintf(o, "Remove what opened it: its /etc/crypttab entry (the one naming that UUID or %s), rd.luks.* flags\n"
			   "naming it, and rebuild the initramfs (update-initramfs -u, or dracut -f); the filesystem is found\n"
			   "directly on %s. Then 'luksipc finalize --state %s' wipes the state store.\n",
			n->f.name, n->f.device, state);
		return;
	}
	fprintf(o, "luksipc %s %s to LUKS%u (LUKS UUID %s), opened as '%s'.\n",
		n->f.reencrypt ? "re-encrypted" : "converted", n->f.device, n->f.luks_version, n->f.uuid, n->f.name);
	if (n->f.header && n->f.header[0]) {
		print_detached(o, n, state);
		return;
	}
	if (!is_plain(n->f.name) || !is_plain(n->f.uuid) || (!n->passphrase && !is_plain(n->f.key))) {
		fprintf(o, "The name or key file holds characters these notes do not quote: write the /etc/crypttab entry for\n"
			   "'%s' (UUID=%s) by hand, see crypttab(5).\n", n->f.name, n->f.uuid);
		return;
	}
	fprintf(o, "Next steps for %s (luksipc status --notes --framework initramfs-tools|dracut for the other).\n"
		   "Run each line that starts with \"$\" as root, in this order:\n", fw_name[n->fw]);
	{
		char source[128];

		snprintf(source, sizeof(source), "UUID=%s", n->f.uuid);
		print_crypttab(o, n, step++, source, "");
	}
	if (n->fw == FW_ITOOLS)
		fprintf(o, "%d. Rebuild the initramfs, so that it carries the entry%s:\n  $ update-initramfs -u\n", step++,
			n->keydev ? " and the keyscript" : "");
	else if (n->fw == FW_DRACUT)
		fprintf(o, "%d. Rebuild the initramfs:\n  $ dracut -f\n", step++);
	if (n->boot)
		print_flags(o, n, step++);
	print_passphrase(o, n, step++);
	if (n->boot)
		fprintf(o, "Then reboot: the initramfs unlocks '%s' %s, without the rd.luksipc flags.\n", n->f.name,
			n->passphrase ? "with the passphrase" : "with the key file");
	print_later(o, n, state);
}

void notes_print(FILE *out, const char *stored, const char *framework, const char *state)
{
	struct notes n;
	char *copy = strdup(stored);

	if (!copy || parse_record(copy, &n) < 0) {
		fputs(stored, out);
		free(copy);
		return;
	}
	n.boot = *n.f.framework != '\0';
	n.fw = detect_fw(framework, n.boot ? n.f.framework : NULL);
	split_key(&n);
	print_steps(out, &n, state);
	free(copy);
}

int notes_boot_config(const char *stored, const char *framework, int typed, struct notes_boot *ret)
{
	struct notes n;
	char *copy = strdup(stored);
	char key[2200];
	const char *opts;
	int r = -EINVAL;

	if (!copy)
		return -ENOMEM;
	/* a detached header has no crypttab line of ours yet (print_detached) */
	if (parse_record(copy, &n) < 0 || (n.f.header && n.f.header[0]) || n.f.decrypt)
		goto out;
	n.boot = *n.f.framework != '\0';
	n.fw = detect_fw(framework, n.boot ? n.f.framework : NULL);
	split_key(&n);
	if (typed) { /* keys typed at boot replace the key the conversion used */
		n.passphrase = 1;
		n.keydev = NULL;
	}
	if (!is_plain(n.f.name) || !is_plain(n.f.uuid) || (!n.passphrase && !is_plain(n.f.key)))
		goto out;
	crypttab_fields(&n, key, sizeof(key), &opts);
	r = snprintf(ret->crypttab, sizeof(ret->crypttab), "%s UUID=%s %s %s", n.f.name, n.f.uuid, key, opts);
	r = r < 0 || (size_t)r >= sizeof(ret->crypttab) ? -ENAMETOOLONG : 0;
	snprintf(ret->name, sizeof(ret->name), "%s", n.f.name);
	snprintf(ret->uuid, sizeof(ret->uuid), "%s", n.f.uuid);
	unlock_flags(&n, ret->flags, sizeof(ret->flags));
out:
	free(copy);
	return r;
}
