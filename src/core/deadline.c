/* Deadlines: see include/gatehouse/deadline.h. */
#include <gatehouse/deadline.h>

#include <errno.h>
#include <stdlib.h>

struct gh_deadline_list_s {
    gh_deadline_t *head, *tail;
    uint64_t ms;
};

static void on_timer(uv_timer_t *t);

void gh_deadlines_init(gh_deadlines_t *ds, uv_loop_t *loop)
{
    ds->lists = NULL;
    ds->num_lists = 0;
    ds->armed_at = UINT64_MAX;
    uv_timer_init(loop, &ds->timer);
    ds->timer.data = ds;
    /* A worker with only idle connections must still be able to exit
     * when its other handles close. */
    uv_unref((uv_handle_t *)&ds->timer);
}

void gh_deadlines_dispose(gh_deadlines_t *ds)
{
    if (!uv_is_closing((uv_handle_t *)&ds->timer))
        uv_close((uv_handle_t *)&ds->timer, NULL);
    free(ds->lists);
    ds->lists = NULL;
    ds->num_lists = 0;
}

static void arm(gh_deadlines_t *ds, uint64_t at)
{
    uint64_t now = uv_now(ds->timer.loop);
    ds->armed_at = at;
    uv_timer_start(&ds->timer, on_timer, at > now ? at - now : 0, 0);
}

static void unlink_d(gh_deadline_t *d)
{
    gh_deadline_list_t *l = d->list;
    if (d->prev)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = d->next = NULL;
    d->list = NULL;
}

void gh_deadline_stop(gh_deadline_t *d)
{
    /* The loop timer is left as it is: when it fires for nothing it just
     * re-arms for the earliest head. */
    if (d->list != NULL)
        unlink_d(d);
}

int gh_deadline_start(gh_deadlines_t *ds, gh_deadline_t *d, uint64_t ms, gh_deadline_cb cb)
{
    gh_deadline_list_t *l = NULL;
    gh_deadline_stop(d);
    /* Durations are unique among the lists: the first match is the one.
     * The lists made first (connections', upstreams') are the most used;
     * a list made later (an authorizer's call timeout) costs them nothing. */
    for (size_t i = 0; i < ds->num_lists; i++)
        if (ds->lists[i].ms == ms) {
            l = &ds->lists[i];
            break;
        }
    if (l == NULL) {
        /* Lists move when the array grows: fix the back pointers. */
        gh_deadline_list_t *nl = realloc(ds->lists, (ds->num_lists + 1) * sizeof(*nl));
        if (nl == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < ds->num_lists; i++)
            for (gh_deadline_t *x = nl[i].head; x != NULL; x = x->next)
                x->list = &nl[i];
        ds->lists = nl;
        l = &ds->lists[ds->num_lists++];
        l->head = l->tail = NULL;
        l->ms = ms;
    }
    d->at = uv_now(ds->timer.loop) + ms;
    d->cb = cb;
    d->list = l;
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    if (d->at < ds->armed_at || !uv_is_active((uv_handle_t *)&ds->timer))
        arm(ds, d->at);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    gh_deadlines_t *ds = t->data;
    uint64_t now = uv_now(t->loop);
    ds->armed_at = UINT64_MAX;
    /* Due deadlines fire in order of expiry across lists (a loop that ran
     * late may find several due). A callback may start or stop any
     * deadline and grow the list array, so the heads are re-read after
     * each call. Lists are few: one per configured duration. */
    for (;;) {
        gh_deadline_t *first = NULL;
        for (size_t i = 0; i < ds->num_lists; i++) {
            gh_deadline_t *h = ds->lists[i].head;
            if (h != NULL && h->at <= now && (first == NULL || h->at < first->at))
                first = h;
        }
        if (first == NULL)
            break;
        unlink_d(first);
        first->cb(first);
    }
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < ds->num_lists; i++)
        if (ds->lists[i].head != NULL && ds->lists[i].head->at < next)
            next = ds->lists[i].head->at;
    if (next != UINT64_MAX && (next < ds->armed_at || !uv_is_active((uv_handle_t *)t)))
        arm(ds, next);
}
