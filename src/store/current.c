/*
 * The process's store (gatehouse/store.h, "the process's store"): the one
 * the running config names, shared by the authn filter's API-key providers
 * and the admin API. Main thread only, so no lock.
 *
 * Why one object rather than one per user: usage counts are batched in
 * the store object that counts them, and gh_store_usage_get adds the
 * counts still pending in that object; with one object the admin API
 * reports the requests a worker counted a moment ago. And a reload that
 * keeps the store section keeps the object, so nothing pending is lost or
 * written twice.
 */
#include <errno.h>
#include <string.h>

#include <gatehouse/log.h>
#include <gatehouse/store.h>

#include "store/backend.h"

typedef struct {
    int selected;
    gh_store_conf_t conf; /* when selected */
    gh_store_t *st;       /* open and started, or NULL (not used yet, or failed) */
} slot_t;

static uv_loop_t *g_loop;
static slot_t g_cur;
static slot_t g_prev; /* between select and commit/rollback */
static int g_pending;

static int str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Same store and same settings: a reload that changes busy_timeout or
 * usage_flush gets a new object with them (the old one's counts are
 * written when it stops). */
static int conf_equal(const gh_store_conf_t *a, const gh_store_conf_t *b)
{
    return a->kind == b->kind && a->max_pending == b->max_pending &&
           a->usage_flush_ms == b->usage_flush_ms && str_eq(a->path, b->path) &&
           a->path_is_default == b->path_is_default && str_eq(a->state_dir, b->state_dir) &&
           a->busy_timeout_ms == b->busy_timeout_ms && str_eq(a->address, b->address) &&
           a->timeout_ms == b->timeout_ms && a->pool == b->pool && str_eq(a->prefix, b->prefix);
}

static void slot_release(slot_t *s)
{
    if (s->st != NULL) {
        gh_store_stop(s->st);
        gh_store_unref(s->st);
    }
    if (s->selected)
        gh_store_conf_dispose(&s->conf);
    memset(s, 0, sizeof(*s));
}

void gh_store_current_init(uv_loop_t *loop)
{
    g_loop = loop;
}

int gh_store_current_select(const gh_store_conf_t *conf)
{
    slot_t next;
    memset(&next, 0, sizeof(next));
    if (g_pending)
        gh_store_current_commit();
    if (gh_store_conf_copy(&next.conf, conf) != 0)
        return -ENOMEM;
    next.selected = 1;
    if (g_cur.selected && conf_equal(&g_cur.conf, conf) && g_cur.st != NULL)
        next.st = gh_store_ref(g_cur.st);
    g_prev = g_cur;
    g_cur = next;
    g_pending = 1;
    return 0;
}

void gh_store_current_commit(void)
{
    if (!g_pending)
        return;
    g_pending = 0;
    /* Kept: the reference the selection took is the current one's; the
     * previous slot's is dropped without stopping the shared object. */
    if (g_prev.st != NULL && g_prev.st == g_cur.st) {
        gh_store_unref(g_prev.st);
        g_prev.st = NULL;
    }
    slot_release(&g_prev);
}

void gh_store_current_rollback(void)
{
    if (!g_pending)
        return;
    g_pending = 0;
    if (g_cur.st != NULL && g_cur.st == g_prev.st) {
        gh_store_unref(g_cur.st);
        g_cur.st = NULL;
    }
    slot_release(&g_cur);
    g_cur = g_prev;
    memset(&g_prev, 0, sizeof(g_prev));
}

gh_store_t *gh_store_current_get(gh_store_error_t *err)
{
    if (!g_cur.selected) {
        gh_store_fail(err, -ENOENT, "no store is configured");
        return NULL;
    }
    if (g_cur.st == NULL) {
        gh_store_t *st;
        if (gh_store_open(&g_cur.conf, GH_STORE_CREATE, &st, err) != 0)
            return NULL;
        if (g_loop != NULL && gh_store_start(st, g_loop) != 0)
            GH_LOG(GH_LOG_WARN, "store",
                   "%s: cannot start the usage writes (counts are written at exit)",
                   gh_store_describe(st));
        GH_LOG(GH_LOG_INFO, "store", "opened %s", gh_store_describe(st));
        g_cur.st = st;
    }
    return gh_store_ref(g_cur.st);
}

void gh_store_current_stop(void)
{
    if (g_cur.st != NULL)
        gh_store_stop(g_cur.st);
    if (g_prev.st != NULL)
        gh_store_stop(g_prev.st);
}

void gh_store_current_free(void)
{
    gh_store_current_rollback();
    slot_release(&g_cur);
    g_loop = NULL;
}
