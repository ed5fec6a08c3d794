/*
 * arm and disarm: prepare the running system so that the next boot converts
 * a device (the root filesystem's by default), and undo that before the
 * conversion has started. Nothing here touches the device's data: arm
 * checks, writes the boot loader's configuration and rebuilds the
 * initramfs. See docs/lifecycle.md.
 */
#ifndef LUKSIPC_ARM_H
#define LUKSIPC_ARM_H

/* --also: the other devices of the boot, rd.luksipc.2 to rd.luksipc.9 */
#define ARM_ALSO_MAX 8

struct arm_opts {
	const char *device;    /* NULL: the device of the root filesystem */
	const char *state;     /* the state partition: a path or PARTUUID=, PARTLABEL=, UUID=, LABEL= */
	const char *key;       /* PATH:DEVICE on another device; NULL: a passphrase asked at boot */
	const char *framework; /* NULL: the one installed (update-initramfs, then dracut) */
	int bootstrap;         /* a generated key, in the initramfs only, retired by finalize */
	const char *enroll;    /* with bootstrap: "passphrase", "recovery" or both, comma-separated */
	const char *recovery_file; /* unattended: finalize writes the recovery key here (0600), shows none */
	int dry_run;
	const char *also[ARM_ALSO_MAX]; /* DEVICE,STATE[,NAME]: converted in the same boot after the first */
	int n_also;
};

/*
 * The bootstrap key on the running system: /boot is its own filesystem, not
 * the converted device (arm checks), and the initramfs hooks copy the file
 * into the image as ARM_BOOTSTRAP_KEY_IMAGE. finalize overwrites and removes
 * it once the enrolled keys have unlocked a boot.
 */
#define ARM_BOOTSTRAP_DIR "/boot/luksipc"
#define ARM_BOOTSTRAP_KEY ARM_BOOTSTRAP_DIR "/bootstrap.key"
#define ARM_BOOTSTRAP_KEY_IMAGE "/etc/luksipc/bootstrap.key"
/* initramfs-tools: images made while a bootstrap key exists are mode 0600 (UMASK). */
#define ARM_ITOOLS_UMASK "/etc/initramfs-tools/conf.d/luksipc-umask.conf"

/* The record arm leaves for disarm and finalize. */
#define ARM_RECORD "/etc/luksipc/armed"
/* The GRUB drop-in that carries the flags. */
#define ARM_GRUB_DROPIN "/etc/default/grub.d/luksipc.cfg"

/* The unit that runs `luksipc finalize --if-done` in the converted system, and its enabling link. */
#define ARM_FINALIZE_UNIT "luksipc-finalize.service"
#define ARM_FINALIZE_WANTS "/etc/systemd/system/multi-user.target.wants/" ARM_FINALIZE_UNIT

int arm_run(const struct arm_opts *o);
int disarm_run(const struct arm_opts *o);
/*
 * finalize on an armed system, in two boots. First, with the conversion
 * done: the /etc/crypttab entry, the initramfs, the boot loader without the
 * rd.luksipc flags (dracut: with its rd.luks flags). Then, on a boot whose
 * command line has no rd.luksipc flag (the device unlocked without luksipc):
 * the state store is wiped and the record removed. Each step can be redone,
 * so a cut anywhere is finished by running it again. if_done: exit 0 quietly
 * while the conversion is unfinished (the unit runs on every boot).
 */
int arm_finalize(int if_done);
/* status without --state on an armed system: the record, finalize's steps included. */
int arm_status(void);

#endif
