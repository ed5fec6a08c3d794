/*
 * Admin notes: the facts a conversion records on the state store, and the
 * steps `status --notes` prints from them for the boot framework in use.
 *
 * Contract of the printed steps (docs/interface.md, "Admin notes"): every
 * command the admin must run is on its own line that starts with exactly
 * "  $ ", in the order to run them, each runnable as-is by `sh -c` as root
 * in the booted system; a command that asks for a new passphrase reads it
 * from stdin. Prose lines never start with "  $ ".
 */
#ifndef LUKSIPC_NOTES_H
#define LUKSIPC_NOTES_H

#include <stddef.h>
#include <stdio.h>

struct notes_facts {
	const char *device;     /* as given to convert */
	const char *uuid;       /* LUKS UUID */
	unsigned luks_version;
	int reencrypt;
	int decrypt;            /* LUKS to plaintext: the device holds no LUKS any more */
	const char *name;       /* dm name the device is opened as */
	const char *key;        /* as the admin knows it: PATH, PATH:DEVICE, or "-" (a passphrase) */
	const char *framework;  /* at boot "initramfs-tools", "dracut" or "other"; "" from a running system */
	const char *header;     /* convert --header: the detached header's path; NULL or "" when none */
	const char *header_spec; /* DEVICE[:/PATH] the boot named it by (rd.luksipc.header=), or NULL */
};

/* The record stored on the state store: "luksipc-notes 2" and key=value
 * lines. -EINVAL when a value holds a newline, -ENOSPC when len is short. */
int notes_record(const struct notes_facts *f, char *buf, size_t len);

/*
 * Prints the steps for a stored record to out. framework: "initramfs-tools",
 * "dracut", or NULL for the one recorded at boot, else the one installed
 * here (update-initramfs, then dracut). state is the path status was given.
 * A record of an older luksipc is printed as it is.
 */
void notes_print(FILE *out, const char *stored, const char *framework, const char *state);

/* What the booted system needs to unlock the device without luksipc. */
struct notes_boot {
	char crypttab[4096]; /* the /etc/crypttab line: NAME UUID=U KEY OPTIONS */
	char name[256];      /* NAME */
	char uuid[64];       /* U */
	char flags[4096];    /* kernel flags that unlock it (dracut's rd.luks.*), "" when none are needed */
};

/*
 * The same facts notes_print prints as steps, for luksipc finalize to apply.
 * typed: the device is unlocked by a passphrase or recovery key typed at
 * boot (the key field none), whatever key the conversion used.
 * 0; -EINVAL for a record of an older luksipc or values these lines cannot
 * carry unquoted; -ENAMETOOLONG.
 */
int notes_boot_config(const char *stored, const char *framework, int typed, struct notes_boot *ret);

/*
 * The /dev path a device spec names: /dev/... as it is, UUID=, PARTUUID=,
 * LABEL=, PARTLABEL= as udev's /dev/disk/by-* link. 0, or -EINVAL for any
 * other spec or a short buffer.
 */
int notes_dev_node(const char *spec, char *buf, size_t len);

/* 1 when name is a framework notes_print knows. */
int notes_framework_ok(const char *name);

#endif
