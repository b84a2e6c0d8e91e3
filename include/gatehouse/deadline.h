/*
 * Deadlines: many timeouts of few distinct durations, at O(1) per start
 * and stop, on one libuv timer per loop.
 *
 * Connections re-arm their timeout several times per request. With one
 * uv_timer_t each, every re-arm is a heap operation (and 152 bytes per
 * connection). Here deadlines of the same duration sit in one list: a new
 * one always expires last among them, so it goes to the tail and the list
 * stays sorted by itself. The loop's single timer is set for the earliest
 * head. Durations come from the configuration, so there are few lists.
 */
#ifndef GATEHOUSE_DEADLINE_H
#define GATEHOUSE_DEADLINE_H

#include <stdint.h>
#include <uv.h>

typedef struct gh_deadline_s gh_deadline_t;
typedef struct gh_deadline_list_s gh_deadline_list_t;
typedef void (*gh_deadline_cb)(gh_deadline_t *d);

/* Lives inside its owner (caller's memory, zeroed); idle when list == NULL. */
struct gh_deadline_s {
    gh_deadline_t *prev, *next;
    gh_deadline_list_t *list;
    uint64_t at; /* loop time, ms */
    gh_deadline_cb cb;
};

typedef struct {
    uv_timer_t timer;
    gh_deadline_list_t *lists; /* owned */
    size_t num_lists;
    uint64_t armed_at; /* when the timer fires; UINT64_MAX when stopped */
} gh_deadlines_t;

void gh_deadlines_init(gh_deadlines_t *ds, uv_loop_t *loop);
/* Closes the timer (run the loop after) and frees the lists; deadlines
 * still pending never fire. */
void gh_deadlines_dispose(gh_deadlines_t *ds);

/* (Re)starts d to fire cb(d) ms from the loop's now. Returns 0, or -ENOMEM
 * (d is then stopped). */
int gh_deadline_start(gh_deadlines_t *ds, gh_deadline_t *d, uint64_t ms, gh_deadline_cb cb);
void gh_deadline_stop(gh_deadline_t *d);
static inline int gh_deadline_is_active(const gh_deadline_t *d)
{
    return d->list != NULL;
}

#endif
