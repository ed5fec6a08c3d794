/* luksipc: option parsing, verb dispatch and the exit-code table. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm.h"
#include "convert.h"
#include "engine.h"
#include "luks.h"
#include "luksipc.h"
#include "notes.h"
#include "status.h"

static const char usage_text[] =
	"usage: luksipc convert -d DEVICE --state PATH [options]\n"
	"       luksipc status --state PATH [-d DEVICE] [--json] [--notes [--framework FW]]\n"
	"       luksipc status                  (on an armed system: the plan and finalize's steps)\n"
	"       luksipc finalize --state PATH [-d DEVICE] [--batch]\n"
	"       luksipc finalize [--if-done]    (on a system armed by luksipc arm)\n"
	"       luksipc arm --state PART [-d DEVICE] [--key-file PATH:KEYDEV | --bootstrap-key\n"
	"                   --enroll passphrase,recovery [--recovery-key-file PATH]]\n"
	"                   [--also DEVICE,STATE[,NAME]]... [--dry-run]\n"
	"       luksipc disarm [--dry-run]\n"
	"\n"
	"Encrypts DEVICE (a block device or image file) in place with LUKS. Rerun the\n"
	"same command after any interruption to resume. See luksipc(8).\n"
	"\n"
	"convert options:\n"
	"  -d, --device DEV          device or image file to convert\n"
	"      --state PATH          state store: small raw partition or file (--resume)\n"
	"      --type luks2|luks1    LUKS version (default luks2)\n"
	"      --key-size 256|512    " LUKS_CIPHER_SPEC " key bits (default 512)\n"
	"      --sector-size 512|4096  encryption sector size (default 512)\n"
	"      --header-size SIZE    data offset (default 16M for luks2, 2M for luks1);\n"
	"                            with --header, the detached header's size\n"
	"      --header PATH         detached header: write the LUKS header to PATH (a\n"
	"                            new or all-zero file, or an empty partition) and\n"
	"                            encrypt DEVICE where it lies, from byte 0: no\n"
	"                            shrink needed (XFS, full filesystems)\n"
	"      --step-size SIZE      bytes per crash-safe step (default min(header, 16M))\n"
	"      --pbkdf NAME          argon2id, argon2i or pbkdf2\n"
	"      --pbkdf-force-iterations N, --iter-time MS, --pbkdf-memory KIB\n"
	"      --label LABEL, --uuid UUID\n"
	"  -k, --key-file FILE       key is the whole file ('-' = stdin)\n"
	"      --generate-key-file PATH  4096 random bytes, mode 0600\n"
	"      --reencrypt           LUKS to LUKS: new volume key and parameters\n"
	"      --decrypt             LUKS to plaintext in place: the data moves down\n"
	"                            into the header's place (with --header: the\n"
	"                            detached header of DEVICE, wiped at the end)\n"
	"      --old-key-file FILE   key of the current header (default: --key-file)\n"
	"      --old-header PATH     with --reencrypt: the current header is detached,\n"
	"                            in PATH; the new one goes onto DEVICE (the data\n"
	"                            shifts up by its size: the filesystem must leave\n"
	"                            that much free at the end)\n"
	"      --readdev MAPPING     with --reencrypt: read the plaintext from this\n"
	"                            open dm-crypt mapping of DEVICE (luksipc's mode)\n"
	"      --used-only[=wipe]    ext2/3/4 or vfat: read and encrypt only the blocks\n"
	"                            the filesystem uses (it must be clean). Free\n"
	"                            space keeps what it held: deleted files stay\n"
	"                            readable in plaintext; =wipe overwrites free\n"
	"                            space with ciphertext too (reading only used\n"
	"                            blocks)\n"
	"      --batch               do not ask for confirmation\n"
	"      --no-seatbelt         convert even if no filesystem is recognised\n"
	"      --force-state         use a state store that carries a signature\n"
	"      --progress-json       progress as JSON lines on stderr\n"
	"      --note-name NAME, --note-key-file PATH  mapper name and key file\n"
	"                            to name in the admin notes (status --notes)\n"
	"      --note-header SPEC    with --header, where the admin finds the header:\n"
	"                            DEVICE[:/PATH] (set by the boot hooks)\n"
	"      --note-framework FW   the boot framework converting: initramfs-tools,\n"
	"                            dracut or other (set by the boot hooks)\n"
	"  -l, --loglevel 0..4       0 errors ... 4 debug (default 2)\n"
	"\n"
	"status options:\n"
	"      --json                one JSON object\n"
	"      --notes               the admin notes: the steps to boot without the flags\n"
	"      --framework FW        notes for initramfs-tools or dracut (default: the one\n"
	"                            that converted, else the one installed)\n"
	"\n"
	"arm (in the running system: the next boot converts DEVICE, by default the\n"
	"root filesystem's; writes the boot loader's flags, rebuilds the initramfs):\n"
	"      --state PART          the state partition (PARTUUID=, PARTLABEL=, /dev/...)\n"
	"  -k, --key-file PATH:KEYDEV  the key file on another device; without it the\n"
	"                            boot asks for a passphrase\n"
	"      --bootstrap-key       a generated key (/boot/luksipc/bootstrap.key, 0600) in\n"
	"                            the initramfs only; finalize adds the --enroll keys,\n"
	"                            verifies them and destroys the bootstrap keyslot\n"
	"      --enroll LIST         passphrase, recovery or both (comma-separated): a new\n"
	"                            passphrase asked twice; a recovery key shown once and\n"
	"                            typed back\n"
	"      --recovery-key-file PATH  unattended: write the recovery key there (0600)\n"
	"      --also DEVICE,STATE[,NAME]  convert DEVICE too in the same boot (a /home, a\n"
	"                            data partition), its own state partition STATE,\n"
	"                            opened as NAME; repeatable (up to 8); with\n"
	"                            --key-file or a passphrase only\n"
	"      --framework FW        initramfs-tools or dracut (default: the installed one)\n"
	"      --dry-run             print the plan, write nothing\n"
	"disarm: undo arm before the conversion has started (refused after)\n"
	"\n"
	"finalize options:\n"
	"      --batch               wipe without asking for confirmation\n"
	"      --header PATH         a detached header not where it was written (at boot:\n"
	"                            under /run): where it is now, checked before the wipe\n"
	"without --state, on an armed system: writes /etc/crypttab, rebuilds the\n"
	"initramfs, removes the rd.luksipc flags; on the next boot without them,\n"
	"wipes the state store (luksipc-finalize.service runs it)\n"
	"      --if-done             exit 0 while the conversion is unfinished\n"
	"\n"
	"exit codes: 0 ok or already converted, 1 internal error, 2 usage error,\n"
	"3 refused (nothing written), 4 key error (nothing written),\n"
	"5 I/O error (rerun to resume), 6 interrupted (rerun to resume)\n";

enum {
	OPT_STATE = 256, OPT_TYPE, OPT_KEY_SIZE, OPT_SECTOR_SIZE, OPT_HEADER_SIZE, OPT_STEP_SIZE,
	OPT_PBKDF, OPT_PBKDF_ITER, OPT_ITER_TIME, OPT_PBKDF_MEM, OPT_LABEL, OPT_UUID, OPT_GEN_KEY,
	OPT_REENCRYPT, OPT_OLD_KEY, OPT_READDEV, OPT_NOTE_NAME, OPT_NOTE_KEY, OPT_NOTE_FW, OPT_FRAMEWORK,
	OPT_BATCH, OPT_NO_SEATBELT, OPT_FORCE_STATE, OPT_PROGRESS_JSON, OPT_JSON, OPT_NOTES, OPT_VERSION, OPT_DRY_RUN, OPT_IF_DONE,
	OPT_BOOTSTRAP_KEY, OPT_ENROLL, OPT_RECOVERY_FILE, OPT_ALSO, OPT_USED_ONLY, OPT_HEADER, OPT_DECRYPT, OPT_NOTE_HEADER, OPT_OLD_HEADER,
};

static const struct option long_options[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "resume", required_argument, NULL, OPT_STATE },
	{ "type", required_argument, NULL, OPT_TYPE },
	{ "key-size", required_argument, NULL, OPT_KEY_SIZE },
	{ "sector-size", required_argument, NULL, OPT_SECTOR_SIZE },
	{ "header-size", required_argument, NULL, OPT_HEADER_SIZE },
	{ "header", required_argument, NULL, OPT_HEADER },
	{ "step-size", required_argument, NULL, OPT_STEP_SIZE },
	{ "pbkdf", required_argument, NULL, OPT_PBKDF },
	{ "pbkdf-force-iterations", required_argument, NULL, OPT_PBKDF_ITER },
	{ "iter-time", required_argument, NULL, OPT_ITER_TIME },
	{ "pbkdf-memory", required_argument, NULL, OPT_PBKDF_MEM },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "uuid", required_argument, NULL, OPT_UUID },
	{ "key-file", required_argument, NULL, 'k' },
	{ "keyfile", required_argument, NULL, 'k' },
	{ "generate-key-file", required_argument, NULL, OPT_GEN_KEY },
	{ "reencrypt", no_argument, NULL, OPT_REENCRYPT },
	{ "decrypt", no_argument, NULL, OPT_DECRYPT },
	{ "readdev", required_argument, NULL, OPT_READDEV },
	{ "used-only", optional_argument, NULL, OPT_USED_ONLY },
	{ "note-name", required_argument, NULL, OPT_NOTE_NAME },
	{ "note-key-file", required_argument, NULL, OPT_NOTE_KEY },
	{ "note-header", required_argument, NULL, OPT_NOTE_HEADER },
	{ "note-framework", required_argument, NULL, OPT_NOTE_FW },
	{ "framework", required_argument, NULL, OPT_FRAMEWORK },
	{ "old-key-file", required_argument, NULL, OPT_OLD_KEY },
	{ "old-header", required_argument, NULL, OPT_OLD_HEADER },
	{ "batch", no_argument, NULL, OPT_BATCH },
	{ "i-know-what-im-doing", no_argument, NULL, OPT_BATCH },
	{ "no-seatbelt", no_argument, NULL, OPT_NO_SEATBELT },
	{ "force-state", no_argument, NULL, OPT_FORCE_STATE },
	{ "progress-json", no_argument, NULL, OPT_PROGRESS_JSON },
	{ "loglevel", required_argument, NULL, 'l' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "notes", no_argument, NULL, OPT_NOTES },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "if-done", no_argument, NULL, OPT_IF_DONE },
	{ "bootstrap-key", no_argument, NULL, OPT_BOOTSTRAP_KEY },
	{ "enroll", required_argument, NULL, OPT_ENROLL },
	{ "recovery-key-file", required_argument, NULL, OPT_RECOVERY_FILE },
	{ "also", required_argument, NULL, OPT_ALSO },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	struct convert_opts c;
	int json, notes, dry_run, if_done, bootstrap;
	const char *framework, *enroll, *recovery_file;
	const char *also[ARM_ALSO_MAX];
	int n_also;
};

static int bad_value(const char *opt, const char *val, const char *want)
{
	log_error("invalid value '%s' for %s; expected %s", val, opt, want);
	return E_USAGE;
}

static int parse_u32_opt(const char *opt, const char *val, uint32_t *ret)
{
	uint64_t v;

	if (parse_u64(val, &v) < 0 || v == 0 || v > UINT32_MAX)
		return bad_value(opt, val, "a positive number");
	*ret = (uint32_t)v;
	return 0;
}

static int parse_option(struct cli *cli, int c, const char *arg)
{
	struct convert_opts *o = &cli->c;
	uint64_t v;

	switch (c) {
	case 'd': o->device = arg; return 0;
	case OPT_STATE: o->state = arg; return 0;
	case OPT_HEADER: o->header = arg; return 0;
	case OPT_TYPE:
		if (strcmp(arg, "luks2") && strcmp(arg, "luks1") && strcmp(arg, "luks"))
			return bad_value("--type", arg, "luks2 or luks1");
		o->luks_version = strcmp(arg, "luks2") == 0 ? 2 : 1;
		return 0;
	case OPT_KEY_SIZE:
		if (parse_u64(arg, &v) < 0 || (v != 256 && v != 512))
			return bad_value("--key-size", arg, "256 or 512");
		o->key_bits = (uint32_t)v;
		return 0;
	case OPT_SECTOR_SIZE:
		if (parse_u64(arg, &v) < 0 || (v != 512 && v != 4096))
			return bad_value("--sector-size", arg, "512 or 4096");
		o->sector_size = (uint32_t)v;
		return 0;
	case OPT_HEADER_SIZE:
		if (parse_size(arg, &o->header_size) < 0 || o->header_size == 0 || o->header_size % 4096)
			return bad_value("--header-size", arg, "a multiple of 4096 bytes, e.g. 16M");
		return 0;
	case OPT_STEP_SIZE:
		if (parse_size(arg, &o->step_size) < 0 || o->step_size == 0 || o->step_size % 512)
			return bad_value("--step-size", arg, "a multiple of 512 bytes, e.g. 4M");
		return 0;
	case OPT_PBKDF:
		if (strcmp(arg, "argon2id") && strcmp(arg, "argon2i") && strcmp(arg, "pbkdf2"))
			return bad_value("--pbkdf", arg, "argon2id, argon2i or pbkdf2");
		o->pbkdf = arg;
		return 0;
	case OPT_PBKDF_ITER: return parse_u32_opt("--pbkdf-force-iterations", arg, &o->pbkdf_iterations);
	case OPT_ITER_TIME: return parse_u32_opt("--iter-time", arg, &o->iter_time_ms);
	case OPT_PBKDF_MEM: return parse_u32_opt("--pbkdf-memory", arg, &o->pbkdf_memory_kib);
	case OPT_LABEL: o->label = arg; return 0;
	case OPT_UUID: o->uuid = arg; return 0;
	case 'k': o->key_file = arg; return 0;
	case OPT_GEN_KEY: o->generate_key_file = arg; return 0;
	case OPT_REENCRYPT: o->reencrypt = 1; return 0;
	case OPT_DECRYPT: o->decrypt = 1; return 0;
	case OPT_READDEV: o->readdev = arg; return 0;
	case OPT_USED_ONLY:
		if (arg && strcmp(arg, "wipe"))
			return bad_value("--used-only", arg, "nothing, or =wipe");
		o->used_only = arg ? 2 : 1;
		return 0;
	case OPT_NOTE_NAME: o->note_name = arg; return 0;
	case OPT_NOTE_KEY: o->note_key = arg; return 0;
	case OPT_NOTE_HEADER: o->note_header = arg; return 0;
	case OPT_NOTE_FW:
		if (strcmp(arg, "other") && !notes_framework_ok(arg))
			return bad_value("--note-framework", arg, "initramfs-tools, dracut or other");
		o->note_framework = arg;
		return 0;
	case OPT_FRAMEWORK:
		if (!notes_framework_ok(arg))
			return bad_value("--framework", arg, "initramfs-tools or dracut");
		cli->framework = arg;
		return 0;
	case OPT_OLD_KEY: o->old_key_file = arg; return 0;
	case OPT_OLD_HEADER: o->old_header = arg; return 0;
	case OPT_BATCH: o->batch = 1; return 0;
	case OPT_NO_SEATBELT: o->no_seatbelt = 1; return 0;
	case OPT_FORCE_STATE: o->force_state = 1; return 0;
	case OPT_PROGRESS_JSON: o->progress_json = 1; return 0;
	case 'l':
		if (parse_u64(arg, &v) < 0 || v > 4)
			return bad_value("--loglevel", arg, "0 to 4");
		log_level = (int)v;
		return 0;
	case OPT_JSON: cli->json = 1; return 0;
	case OPT_NOTES: cli->notes = 1; return 0;
	case OPT_DRY_RUN: cli->dry_run = 1; return 0;
	case OPT_IF_DONE: cli->if_done = 1; return 0;
	case OPT_BOOTSTRAP_KEY: cli->bootstrap = 1; return 0;
	case OPT_ENROLL: cli->enroll = arg; return 0;
	case OPT_RECOVERY_FILE: cli->recovery_file = arg; return 0;
	case OPT_ALSO:
		if (cli->n_also == ARM_ALSO_MAX) {
			log_error("--also: at most %d other devices in one boot (rd.luksipc.2 to rd.luksipc.%d)", ARM_ALSO_MAX,
				  ARM_ALSO_MAX + 1);
			return E_USAGE;
		}
		cli->also[cli->n_also++] = arg;
		return 0;
	default: return E_USAGE;
	}
}

/* LUKSIPC_CRYPT_THREADS, for benchmarks and tests (docs/performance.md): unset, or 1 to ENGINE_THREADS_MAX. */
static int crypt_threads_env(struct convert_opts *o)
{
	const char *env = getenv("LUKSIPC_CRYPT_THREADS");
	char want[32];
	uint64_t v;

	if (!env || !env[0])
		return 0;
	snprintf(want, sizeof(want), "1 to %d, or unset it", ENGINE_THREADS_MAX);
	if (parse_u64(env, &v) < 0 || v < 1 || v > ENGINE_THREADS_MAX)
		return bad_value("LUKSIPC_CRYPT_THREADS", env, want);
	o->crypt_threads = (unsigned)v;
	return 0;
}

static int check_convert_opts(const struct convert_opts *o)
{
	if (!o->device || !o->state) {
		log_error("convert needs -d DEVICE and --state PATH; see luksipc --help");
		return E_USAGE;
	}
	if (o->luks_version == 1 && o->sector_size != 512) {
		log_error("LUKS1 supports only --sector-size 512; use --type luks2 for 4096-byte sectors");
		return E_USAGE;
	}
	if (o->luks_version == 1 && o->pbkdf && strcmp(o->pbkdf, "pbkdf2")) {
		log_error("LUKS1 supports only --pbkdf pbkdf2");
		return E_USAGE;
	}
	if (o->luks_version == 1 && o->label) {
		log_error("LUKS1 has no label; use --type luks2 for --label");
		return E_USAGE;
	}
	if (o->used_only && o->reencrypt) {
		log_error("--used-only converts plaintext to LUKS; drop it with --reencrypt");
		return E_USAGE;
	}
	if (o->decrypt && (o->reencrypt || o->used_only || o->generate_key_file || o->readdev)) {
		log_error("--decrypt goes with none of --reencrypt, --used-only, --generate-key-file and --readdev; drop them");
		return E_USAGE;
	}
	if (o->header && o->readdev) {
		log_error("--readdev does not go with --header: the data is read from DEVICE and decrypted with the old key; drop --readdev");
		return E_USAGE;
	}
	if (o->header && o->old_header) {
		log_error("--header with --old-header (a detached header replaced by another detached one) is not supported yet; use one of them");
		return E_USAGE;
	}
	if (o->old_header && (!o->reencrypt || o->readdev || !o->old_header[0])) {
		log_error("--old-header PATH names the detached header of a device that --reencrypt gives a header of its own; it goes with --reencrypt, without --readdev");
		return E_USAGE;
	}
	if (o->header && o->used_only) {
		log_error("--used-only does not work with --header yet; drop one of them");
		return E_USAGE;
	}
	if (o->header && !o->header[0]) {
		log_error("--header needs a path: a new file, or an empty partition for the LUKS header");
		return E_USAGE;
	}
	if (o->readdev && !o->reencrypt) {
		log_error("--readdev goes with --reencrypt; for plaintext devices drop it");
		return E_USAGE;
	}
	if (o->key_file && o->generate_key_file) {
		log_error("give either --key-file or --generate-key-file, not both");
		return E_USAGE;
	}
	return 0;
}

static int exit_code(int r)
{
	switch (r) {
	case 0: return EXIT_OK;
	case E_REFUSED: return EXIT_REFUSED;
	case E_KEY: return EXIT_KEY;
	case E_USAGE: return EXIT_USAGE;
	case -EINTR: return EXIT_INTERRUPTED;
	case -ENOMEM: return EXIT_INTERNAL;
	default: return r < 0 ? EXIT_IO : EXIT_INTERNAL;
	}
}

static int dispatch(const char *verb, struct cli *cli)
{
	if (cli->n_also && strcmp(verb, "arm")) {
		log_error("--also is an option of luksipc arm (the other devices to convert at boot), not of %s", verb);
		return E_USAGE;
	}
	if (!strcmp(verb, "convert")) {
		int r = check_convert_opts(&cli->c);

		if (r == 0)
			r = crypt_threads_env(&cli->c);
		return r < 0 ? r : convert_run(&cli->c);
	}
	if (!strcmp(verb, "arm") || !strcmp(verb, "disarm")) {
		struct arm_opts a = { .device = cli->c.device, .state = cli->c.state, .key = cli->c.key_file,
				      .framework = cli->framework, .bootstrap = cli->bootstrap, .enroll = cli->enroll,
				      .recovery_file = cli->recovery_file, .dry_run = cli->dry_run, .n_also = cli->n_also };

		memcpy(a.also, cli->also, sizeof(a.also));

		return !strcmp(verb, "arm") ? arm_run(&a) : disarm_run(&a);
	}
	if (!strcmp(verb, "finalize") && !cli->c.state)
		return arm_finalize(cli->if_done);
	if (!strcmp(verb, "status") && !cli->c.state)
		return arm_status();
	if (!cli->c.state) {
		log_error("%s needs --state PATH; see luksipc --help", verb);
		return E_USAGE;
	}
	if (!strcmp(verb, "status"))
		return status_run(cli->c.state, cli->c.device, cli->json, cli->notes, cli->framework);
	return finalize_run(cli->c.state, cli->c.device, cli->c.header, cli->c.batch);
}

int main(int argc, char **argv)
{
	struct cli cli = { .c = { .luks_version = 2, .key_bits = 512, .sector_size = 512 } };
	const char *verb = "convert";
	int c, r;

	if (argc > 1 && argv[1][0] != '-') {
		verb = argv[1];
		if (strcmp(verb, "convert") && strcmp(verb, "status") && strcmp(verb, "finalize") && strcmp(verb, "arm") &&
		    strcmp(verb, "disarm")) {
			log_error("unknown command '%s'; use convert, status, finalize, arm or disarm", verb);
			return EXIT_USAGE;
		}
		argv++;
		argc--;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:k:l:h", long_options, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage_text, stdout);
			return EXIT_OK;
		}
		if (c == OPT_VERSION) {
			printf("luksipc %s\n", LUKSIPC_VERSION);
			return EXIT_OK;
		}
		if (c == '?' || c == ':') {
			log_error("unknown option or missing value: '%s'; see luksipc --help", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if ((r = parse_option(&cli, c, optarg)) < 0)
			return exit_code(r);
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'; see luksipc --help", argv[optind]);
		return EXIT_USAGE;
	}
	signals_install();
	log_debug("%s: started", verb); /* the origin of the debug timestamps */
	/* No openssl.cnf: it could name modules to load, which a static binary cannot. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	r = dispatch(verb, &cli);
	log_debug("%s: finished", verb);
	return exit_code(r);
}
