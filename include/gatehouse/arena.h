/*
 * Per-request arena: bump allocation from chained blocks, everything freed
 * at once by gh_arena_dispose(). Cleanup hooks run (in reverse order of
 * registration) before the memory goes, for resources that are not memory.
 */
#ifndef GATEHOUSE_ARENA_H
#define GATEHOUSE_ARENA_H

#include <stddef.h>

typedef struct gh_arena_block_s gh_arena_block_t;
typedef struct gh_arena_cleanup_s gh_arena_cleanup_t;

typedef struct {
    gh_arena_block_t *head;
    gh_arena_cleanup_t *cleanups;
    size_t block_size;
    gh_arena_block_t *first; /* caller's memory, never freed; NULL if none */
} gh_arena_t;

void gh_arena_init(gh_arena_t *a, size_t block_size);
/* Same, with a first block in the caller's memory (16-byte aligned, size
 * bytes, borrowed; must outlive the arena): a request whose allocations fit
 * in it costs no malloc. Dispose leaves it ready for the next init. */
void gh_arena_init_first(gh_arena_t *a, size_t block_size, void *mem, size_t size);
void gh_arena_dispose(gh_arena_t *a);
/* Returns NULL when out of memory; memory is 16-byte aligned, not zeroed. */
void *gh_arena_alloc(gh_arena_t *a, size_t size);
void *gh_arena_calloc(gh_arena_t *a, size_t size);
char *gh_arena_memdup(gh_arena_t *a, const void *p, size_t len); /* adds a NUL */
int gh_arena_on_dispose(gh_arena_t *a, void (*fn)(void *), void *arg);

#endif
