/*
 * Workers: one libuv loop per thread, each with its own SO_REUSEPORT
 * listening sockets (bound by the main thread, so a bind error stops the
 * start before any thread runs), its own upstream pools and scratch space.
 * Nothing on the request path is shared between workers but the immutable
 * snapshot.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <gatehouse/log.h>

#include "proxy/proxy.h"
#include "proxy/worker.h"

static void on_connection(uv_stream_t *server, int status)
{
    gh_listener_t *l = server->data;
    if (status < 0) {
        GH_LOG(GH_LOG_WARN, "worker", "worker=%u accept on %s: %s", l->worker->id,
               l->conf->address, uv_strerror(status));
        return;
    }
    gh_conn_accept(l);
}

static int pools_init(gh_worker_t *w)
{
    const gh_config_t *cfg = w->snap->cfg;
    w->pools = calloc(cfg->num_clusters + 1, sizeof(*w->pools));
    w->rr_next = calloc(cfg->num_clusters + 1, sizeof(*w->rr_next));
    if (w->pools == NULL || w->rr_next == NULL)
        return -1;
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        w->pools[i] = calloc(c->num_endpoints, sizeof(gh_pool_t));
        if (w->pools[i] == NULL)
            return -1;
        for (size_t j = 0; j < c->num_endpoints; j++) {
            w->pools[i][j].worker = w;
            w->pools[i][j].cluster = c;
            w->pools[i][j].ep = &c->endpoints[j];
        }
        /* Start workers at different points of the ring so that N workers
         * do not all send their first request to the same endpoint. */
        w->rr_next[i] = w->id;
    }
    size_t maxh = 1;
    for (size_t i = 0; i < cfg->num_listeners; i++)
        if (cfg->listeners[i].max_headers > maxh)
            maxh = cfg->listeners[i].max_headers;
    for (size_t i = 0; i < cfg->num_clusters; i++)
        if (cfg->clusters[i].max_response_headers > maxh)
            maxh = cfg->clusters[i].max_response_headers;
    w->hdrs = calloc(maxh, sizeof(*w->hdrs));
    w->max_hdrs = maxh;
    w->md = pcre2_match_data_create(1, NULL);
    return w->hdrs != NULL && w->md != NULL ? 0 : -1;
}

static void pools_dispose(gh_worker_t *w)
{
    const gh_config_t *cfg = w->snap->cfg;
    if (w->pools != NULL) {
        for (size_t i = 0; i < cfg->num_clusters; i++) {
            if (w->pools[i] == NULL)
                continue;
            for (size_t j = 0; j < cfg->clusters[i].num_endpoints; j++)
                gh_pool_dispose(&w->pools[i][j]);
        }
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void check_drained(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    if (w->num_conns > 0 && !w->force)
        return;
    /* Everything left is idle pools, timers and (on force) connections:
     * close what remains; the loop ends when the last handle is closed. */
    pools_dispose(w);
    uv_walk(&w->loop, close_walk, NULL);
}

/* Closes idle downstream connections, or all of them when forced. Busy
 * ones finish their exchange and then close (keep-alive is off while
 * stopping). */
static void close_conns(gh_worker_t *w)
{
    gh_conn_t *c = w->conns;
    while (c != NULL) {
        gh_conn_t *next = c->next;
        if (c->state != GH_CONN_CLOSING &&
            (w->force || (c->state == GH_CONN_HEAD && c->stream == NULL && !c->wpending)))
            gh_conn_close(c);
        c = next;
    }
}

static void on_wakeup(uv_async_t *a)
{
    gh_worker_t *w = a->data;
    int force = __atomic_load_n(&w->force_req, __ATOMIC_ACQUIRE);
    if (!w->stopping) {
        w->stopping = 1;
        for (size_t i = 0; i < w->num_listeners; i++)
            uv_close((uv_handle_t *)&w->listeners[i].tcp, NULL);
        uv_timer_start(&w->drain_timer, check_drained, 0, 50);
    }
    if (force)
        w->force = 1;
    close_conns(w);
}

static void worker_main(void *arg)
{
    gh_worker_t *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->on_exit != NULL) {
        __atomic_add_fetch(w->num_exited, 1, __ATOMIC_RELEASE);
        uv_async_send(w->on_exit);
    }
}

int gh_worker_init(gh_worker_t *w, unsigned id, gh_snapshot_t *snap, const int *fds)
{
    uv_async_t *on_exit = w->on_exit;
    unsigned *num_exited = w->num_exited;
    memset(w, 0, sizeof(*w));
    w->on_exit = on_exit;
    w->num_exited = num_exited;
    w->id = id;
    w->snap = gh_snapshot_ref(snap);
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
        w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 32);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    w->loop_ok = 1;
    if (pools_init(w) < 0)
        return -1;
    const gh_config_t *cfg = snap->cfg;
    w->listeners = calloc(cfg->num_listeners + 1, sizeof(gh_listener_t));
    if (w->listeners == NULL)
        return -1;
    w->num_listeners = cfg->num_listeners;
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        gh_listener_t *l = &w->listeners[i];
        l->worker = w;
        l->conf = &cfg->listeners[i];
        l->index = i;
        l->tcp.data = l;
        uv_tcp_init(&w->loop, &l->tcp);
        int r = uv_tcp_open(&l->tcp, fds[i]);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
        if (r < 0) {
            GH_LOG(GH_LOG_ERROR, "worker", "listen on %s: %s", l->conf->address, uv_strerror(r));
            return -1;
        }
    }
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    return 0;
}

int gh_worker_start(gh_worker_t *w)
{
    return uv_thread_create(&w->thread, worker_main, w);
}

void gh_worker_stop(gh_worker_t *w, int force)
{
    if (force)
        __atomic_store_n(&w->force_req, 1, __ATOMIC_RELEASE);
    uv_async_send(&w->wakeup);
}

void gh_worker_join(gh_worker_t *w)
{
    uv_thread_join(&w->thread);
}

void gh_worker_dispose(gh_worker_t *w)
{
    if (w->loop_ok) {
        uv_walk(&w->loop, close_walk, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    if (w->pools != NULL) {
        for (size_t i = 0; i < w->snap->cfg->num_clusters; i++)
            free(w->pools[i]);
        free(w->pools);
    }
    free(w->rr_next);
    free(w->listeners);
    free(w->hdrs);
    if (w->md != NULL)
        pcre2_match_data_free(w->md);
    gh_snapshot_unref(w->snap);
}
