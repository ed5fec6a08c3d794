/* Locked memory for secrets: one mmap per allocation, length kept in front. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "luksipc.h"
#include "secmem.h"

#define SECMEM_HDR 64

void *secmem_alloc(size_t len)
{
	size_t total = len + SECMEM_HDR;
	uint8_t *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mlock(p, total) < 0)
		log_debug("cannot lock key memory; it may be swapped");
	madvise(p, total, MADV_DONTDUMP);
	memcpy(p, &total, sizeof(total));
	return p + SECMEM_HDR;
}

void secmem_free(void *ptr)
{
	uint8_t *p;
	size_t total;

	if (!ptr)
		return;
	p = (uint8_t *)ptr - SECMEM_HDR;
	memcpy(&total, p, sizeof(total));
	explicit_bzero(p, total);
	munlock(p, total);
	munmap(p, total);
}
