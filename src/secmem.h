/*
 * Locked, wiped memory for keys and passphrases. secmem_alloc returns
 * zeroed memory that is mlock'ed (never swapped) and excluded from core
 * dumps; secmem_free wipes it before releasing. Both are NULL-safe.
 */
#ifndef LUKSIPC_SECMEM_H
#define LUKSIPC_SECMEM_H

#include <stddef.h>

void *secmem_alloc(size_t len);
void secmem_free(void *p);

#endif
