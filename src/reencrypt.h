/*
 * LUKS to LUKS in place (reencrypt.c), the second mode over job.c. The
 * functions return 0 or an error code for main and log their refusals.
 */
#ifndef LUKSIPC_REENCRYPT_H
#define LUKSIPC_REENCRYPT_H

#include "job.h"

/* A fresh start: checks the LUKS device, then plans, prepares and runs it. */
int reencrypt_start(struct job *j);
/*
 * Resume: opens the old header backup in the state store with the old key,
 * or, with --readdev and no journal, only the mapping.
 */
int reencrypt_unlock_old(struct job *j);
/* --readdev: opens the mapping and checks it sits on the device. */
int reencrypt_open_readdev(struct job *j);

#endif
