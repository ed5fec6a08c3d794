/*
 * The convert verb: opens the device and the state store, then starts a
 * conversion (plaintext to LUKS here, LUKS to LUKS in reencrypt.c) or
 * resumes the one the store records. Logs, and returns 0 or an error code
 * for main.
 */
#ifndef LUKSIPC_CONVERT_H
#define LUKSIPC_CONVERT_H

#include "opts.h"

int convert_run(const struct convert_opts *o);

#endif
