/*
 * The watcher: the main thread's copy of the key set, kept current.
 *
 * The manifest is polled every second (uv_fs_poll: a rename changes the
 * inode, so a rotation written elsewhere is seen even on file systems
 * without inotify, such as NFS); a change loads the directory again, and
 * a set that does not load never replaces the current one. A timer fires
 * when the first loaded key retires, to prune it (the private key of a
 * retired key is deleted, not kept): with the lock taken without waiting,
 * so two servers never wait on each other, and a read-only directory (a
 * mounted secret) only logs that it cannot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gatehouse/log.h>

#include "issuer/keys_internal.h"

#define POLL_MS 1000
/* A retirement far away is checked again at least this often: the clock
 * may have been set, and the timer runs on the monotonic one. */
#define PRUNE_MAX_WAIT_MS (3600 * 1000)

struct gh_issuer_keys_s {
    uv_loop_t *loop;
    gh_issuer_keys_conf_t conf; /* dir owned */
    char *manifest_path;
    uv_mutex_t lock; /* guards current between a worker's load and ref */
    gh_issuer_keyset_t *current;
    uint64_t generation; /* atomic */
    uv_fs_poll_t poll;
    uv_timer_t prune;
    int closing, open_handles;
    int last_failed;
    char last_error[512];
};

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

static void install(gh_issuer_keys_t *k, gh_issuer_keyset_t *set)
{
    uv_mutex_lock(&k->lock);
    gh_issuer_keyset_t *old = k->current;
    k->current = set;
    __atomic_add_fetch(&k->generation, 1, __ATOMIC_RELEASE);
    uv_mutex_unlock(&k->lock);
    gh_issuer_keyset_unref(old);
}

/* The next time a loaded key retires (and so can be pruned), or 0. */
static int64_t next_retirement(const gh_issuer_keyset_t *set, int64_t now)
{
    const gh_issuer_manifest_t *m = gh_issuer_keyset_manifest(set);
    int64_t t = 0;
    for (size_t i = 0; i < m->n; i++) {
        int64_t r = m->keys[i].retire_at;
        if (r != 0 && (t == 0 || r < t))
            t = r <= now ? now : r;
    }
    return t;
}

static void on_prune(uv_timer_t *t);

static void prune_schedule(gh_issuer_keys_t *k)
{
    if (k->closing)
        return;
    int64_t now = wall_now(), at = next_retirement(k->current, now);
    if (at == 0) {
        uv_timer_stop(&k->prune);
        return;
    }
    uint64_t ms = (uint64_t)(at - now) * 1000;
    uv_timer_start(&k->prune, on_prune, ms < PRUNE_MAX_WAIT_MS ? ms : PRUNE_MAX_WAIT_MS, 0);
}

static void on_prune(uv_timer_t *t)
{
    gh_issuer_keys_t *k = t->data;
    char err[512];
    int64_t now = wall_now();
    if (next_retirement(k->current, now) > now) {
        prune_schedule(k);
        return;
    }
    int n = gh_issuer_keys_prune(k->conf.dir, now, 0, err, sizeof(err));
    if (n == -EBUSY) {
        uv_timer_start(&k->prune, on_prune, POLL_MS, 0); /* another process is at it */
        return;
    }
    if (n < 0) {
        /* Read-only (a mounted secret): whoever writes it prunes. The
         * retired key is out of the JWKS whatever happens here. */
        GH_LOG(GH_LOG_WARN, "issuer", "cannot prune retired keys: %s", err);
        return;
    }
    if (n > 0)
        GH_LOG(GH_LOG_INFO, "issuer", "deleted %d retired signing key%s", n, n == 1 ? "" : "s");
    gh_issuer_keys_reload(k); /* not waiting for the poll to see it */
}

void gh_issuer_keys_reload(gh_issuer_keys_t *k)
{
    char err[512];
    int rc;
    gh_issuer_keyset_t *set =
        gh_issuer_keyset_load(k->conf.dir, wall_now(), k->current, &rc, err, sizeof(err));
    if (set == NULL) {
        /* Keeping the old set: the keys it trusts are still the ones some
         * live tokens need, and its signer still signs. */
        if (!k->last_failed || strcmp(err, k->last_error) != 0)
            GH_LOG(GH_LOG_ERROR, "issuer",
                   "signing keys not reloaded, keeping the current ones: %s", err);
        snprintf(k->last_error, sizeof(k->last_error), "%s", err);
        k->last_failed = 1;
        return;
    }
    const gh_issuer_manifest_t *m = gh_issuer_keyset_manifest(set);
    if (k->current == NULL || memcmp(m, gh_issuer_keyset_manifest(k->current), sizeof(*m)) != 0)
        GH_LOG(GH_LOG_INFO, "issuer", "signing keys loaded: %zu key%s in %s", m->n,
               m->n == 1 ? "" : "s", k->conf.dir);
    k->last_failed = 0;
    k->last_error[0] = '\0';
    install(k, set);
    prune_schedule(k);
}

static void on_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    gh_issuer_keys_t *k = h->data;
    (void)prev;
    (void)curr;
    if (status < 0) {
        /* Gone for a moment (between a rename's unlink and link on some
         * file systems) or for good: the keys in memory stay. */
        return;
    }
    gh_issuer_keys_reload(k);
}

static void watcher_free(gh_issuer_keys_t *k)
{
    gh_issuer_keyset_unref(k->current);
    gh_issuer_keys_conf_dispose(&k->conf);
    free(k->manifest_path);
    uv_mutex_destroy(&k->lock);
    free(k);
}

gh_issuer_keys_t *gh_issuer_keys_start(uv_loop_t *loop, const gh_issuer_keys_conf_t *c, char *err,
                                       size_t cap)
{
    int64_t now = wall_now();
    int rc = gh_issuer_keys_ensure(c, now, err, cap);
    if (rc < 0)
        return NULL;
    gh_issuer_keys_t *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        gh_issuer_seterr(err, cap, "out of memory");
        return NULL;
    }
    k->conf = *c;
    k->conf.dir = strdup(c->dir);
    if (k->conf.dir == NULL ||
        asprintf(&k->manifest_path, "%s/%s", c->dir, GH_ISSUER_KEYS_MANIFEST) < 0) {
        k->manifest_path = NULL;
        free(k->conf.dir);
        free(k);
        gh_issuer_seterr(err, cap, "out of memory");
        return NULL;
    }
    uv_mutex_init(&k->lock);
    k->current = gh_issuer_keyset_load(c->dir, now, NULL, NULL, err, cap);
    if (k->current == NULL) {
        watcher_free(k);
        return NULL;
    }
    k->generation = 1;
    if (rc == 1)
        GH_LOG(GH_LOG_INFO, "issuer", "made the first signing key (%s, kid %s) in %s",
               gh_jwt_alg_name(c->alg), gh_issuer_keyset_manifest(k->current)->keys[0].kid, c->dir);
    k->loop = loop;
    uv_fs_poll_init(loop, &k->poll);
    uv_timer_init(loop, &k->prune);
    k->poll.data = k->prune.data = k;
    k->open_handles = 2;
    uv_fs_poll_start(&k->poll, on_poll, k->manifest_path, POLL_MS);
    prune_schedule(k);
    return k;
}

gh_issuer_keyset_t *gh_issuer_keys_get(gh_issuer_keys_t *k)
{
    uv_mutex_lock(&k->lock);
    gh_issuer_keyset_t *s = gh_issuer_keyset_ref(k->current);
    uv_mutex_unlock(&k->lock);
    return s;
}

uint64_t gh_issuer_keys_generation(gh_issuer_keys_t *k)
{
    return __atomic_load_n(&k->generation, __ATOMIC_ACQUIRE);
}

int gh_issuer_keys_ok(gh_issuer_keys_t *k, const char **why)
{
    if (!k->last_failed)
        return 1;
    *why = k->last_error;
    return 0;
}

static void closed(uv_handle_t *h)
{
    gh_issuer_keys_t *k = h->data;
    if (--k->open_handles == 0)
        watcher_free(k);
}

void gh_issuer_keys_stop(gh_issuer_keys_t *k)
{
    if (k == NULL || k->closing)
        return;
    k->closing = 1;
    uv_close((uv_handle_t *)&k->poll, closed);
    uv_close((uv_handle_t *)&k->prune, closed);
}
