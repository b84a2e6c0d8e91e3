#include <gatehouse/arena.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct gh_arena_block_s {
    gh_arena_block_t *next;
    size_t size, used;
    _Alignas(16) char data[];
};

struct gh_arena_cleanup_s {
    gh_arena_cleanup_t *next;
    void (*fn)(void *);
    void *arg;
};

void gh_arena_init(gh_arena_t *a, size_t block_size)
{
    a->head = NULL;
    a->cleanups = NULL;
    a->block_size = block_size;
    a->first = NULL;
}

void gh_arena_init_first(gh_arena_t *a, size_t block_size, void *mem, size_t size)
{
    gh_arena_block_t *b = mem;
    b->next = NULL;
    b->size = size - sizeof(*b);
    b->used = 0;
    a->head = b;
    a->cleanups = NULL;
    a->block_size = block_size;
    a->first = b;
}

void gh_arena_dispose(gh_arena_t *a)
{
    for (gh_arena_cleanup_t *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->arg);
    a->cleanups = NULL;
    gh_arena_block_t *b = a->head;
    while (b != NULL) {
        gh_arena_block_t *next = b->next;
        if (b != a->first)
            free(b);
        b = next;
    }
    a->head = NULL;
}

void *gh_arena_alloc(gh_arena_t *a, size_t size)
{
    /* Rounding up and the block header must not wrap around. */
    if (size > SIZE_MAX / 2)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    gh_arena_block_t *b = a->head;
    if (b == NULL || b->size - b->used < size) {
        size_t bs = a->block_size > size ? a->block_size : size;
        b = malloc(sizeof(*b) + bs);
        if (b == NULL)
            return NULL;
        b->size = bs;
        b->used = 0;
        /* A big one-off allocation goes behind the current block so the
         * current block's free space stays usable. */
        /* cppcheck-suppress knownConditionTrueFalse ; bs > block_size when size is */
        if (a->head != NULL && bs > a->block_size) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void *gh_arena_calloc(gh_arena_t *a, size_t size)
{
    void *p = gh_arena_alloc(a, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

char *gh_arena_memdup(gh_arena_t *a, const void *p, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *d = gh_arena_alloc(a, len + 1);
    if (d == NULL)
        return NULL;
    if (len)
        memcpy(d, p, len);
    d[len] = '\0';
    return d;
}

int gh_arena_on_dispose(gh_arena_t *a, void (*fn)(void *), void *arg)
{
    gh_arena_cleanup_t *c = gh_arena_alloc(a, sizeof(*c));
    if (c == NULL)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}
