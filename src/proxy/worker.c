/*
 * Workers: one libuv loop per thread, each with its own SO_REUSEPORT
 * listening sockets (bound by the main thread, so a bind error is found
 * before anything changes), its own upstream pools and scratch space.
 * Nothing on the request path is shared between workers but the immutable
 * snapshot.
 *
 * A reload reaches a worker as a message (snapshot + sockets for listeners
 * it does not have yet) and a wakeup. The worker builds a new view
 * (gh_wsnap_t) and makes it current; connections and streams keep the view
 * they hold until they finish or, for idle keep-alive connections, until
 * their next request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/log.h>

#include "proxy/fdlimit.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

/* ---- views ---- */

static void wsnap_free(gh_wsnap_t *ws)
{
    const gh_config_t *cfg = ws->snap->cfg;
    if (ws->pools != NULL) {
        for (size_t i = 0; i < cfg->num_clusters; i++) {
            if (ws->pools[i] == NULL)
                continue;
            for (size_t j = 0; j < cfg->clusters[i].num_endpoints; j++)
                gh_pool_dispose(&ws->pools[i][j]);
            free(ws->pools[i]);
        }
        free(ws->pools);
    }
    free(ws->rr_next);
    gh_snapshot_unref(ws->snap);
    free(ws);
}

gh_wsnap_t *gh_wsnap_ref(gh_wsnap_t *ws)
{
    ws->refs++;
    return ws;
}

void gh_wsnap_unref(gh_wsnap_t *ws)
{
    if (--ws->refs == 0)
        wsnap_free(ws);
}

static gh_wsnap_t *wsnap_new(gh_worker_t *w, gh_snapshot_t *snap)
{
    const gh_config_t *cfg = snap->cfg;
    gh_wsnap_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    ws->worker = w;
    ws->snap = gh_snapshot_ref(snap);
    ws->refs = 1;
    ws->pools = calloc(cfg->num_clusters + 1, sizeof(*ws->pools));
    ws->rr_next = calloc(cfg->num_clusters + 1, sizeof(*ws->rr_next));
    if (ws->pools == NULL || ws->rr_next == NULL)
        goto fail;
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        /* + 1: a lambda cluster has no endpoints, and calloc(0) may be NULL */
        ws->pools[i] = calloc(c->num_endpoints + 1, sizeof(gh_pool_t));
        if (ws->pools[i] == NULL)
            goto fail;
        for (size_t j = 0; j < c->num_endpoints; j++) {
            ws->pools[i][j].worker = w;
            ws->pools[i][j].ws = ws;
            ws->pools[i][j].cluster = c;
            ws->pools[i][j].ep = &c->endpoints[j];
            ws->pools[i][j].stats = gh_metrics_cluster(w->metrics, snap->cluster_ids[i]);
            ws->pools[i][j].ep_stats = gh_metrics_endpoint(w->metrics, snap->endpoint_ids[i][j]);
        }
        /* Start workers at different points of the ring so that N workers
         * do not all send their first request to the same endpoint. */
        ws->rr_next[i] = w->id;
    }
    return ws;
fail:
    wsnap_free(ws);
    return NULL;
}

/* Parser scratch big enough for every listener and cluster of snap. */
static int scratch_fit(gh_worker_t *w, const gh_snapshot_t *snap)
{
    const gh_config_t *cfg = snap->cfg;
    size_t maxh = 1;
    for (size_t i = 0; i < cfg->num_listeners; i++)
        if (cfg->listeners[i].max_headers > maxh)
            maxh = cfg->listeners[i].max_headers;
    for (size_t i = 0; i < cfg->num_clusters; i++)
        if (cfg->clusters[i].max_response_headers > maxh)
            maxh = cfg->clusters[i].max_response_headers;
    if (maxh <= w->max_hdrs)
        return 0;
    gh_h1_header_t *h = realloc(w->hdrs, maxh * sizeof(*h));
    if (h == NULL)
        return -1;
    w->hdrs = h;
    w->max_hdrs = maxh;
    return 0;
}

/* ---- listeners ---- */

/* ---- running out of descriptors ----
 *
 * libuv 1.44's accept loop (uv__server_io) calls accept until it would
 * block; when accept fails for lack of a descriptor it tries its own
 * reserve once, and after that hands every failure to on_connection and
 * tries again, for as long as the handle is open: a worker out of
 * descriptors would never return to its loop (no reload, no stop, a log
 * line per try). fdlimit.c caps connections so that this should not
 * happen; when it still does (the limit lowered under a running process,
 * descriptors held elsewhere in the process), the listener's handle is
 * closed, which is what ends libuv's loop, and opened again on a dup of
 * its socket once descriptors are free. The socket itself stays open
 * (spare_fd), so its backlog waits rather than being reset.
 *
 * The admin API needs a descriptor at just those times (/live), and gets
 * it by closing its reserve; another thread can take the freed one first
 * (the race is drawn in fdlimit.c). So the reserve steps here run under
 * gh_fdlimit_lock, and once the process ran out a connection libuv
 * accepted is kept, and a listener listens again, only with room left
 * (gh_fdlimit_room); else the listener goes down, which gives back the
 * descriptor libuv took. */

#define FD_RETRY_MS 100
#define AERR_LOG_NS 1000000000ull

static void listener_free(gh_listener_t *l)
{
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    free(l->address);
    free(l);
}

static void listener_closed(uv_handle_t *h)
{
    gh_listener_t *l = h->data;
    if (l->down == 0 || l->gone) {
        listener_free(l);
        return;
    }
    l->down = 2; /* closed for lack of descriptors: fd_tick reopens it */
}

static void listener_close(gh_listener_t *l)
{
    gh_conn_listener_gone(l);
    l->gone = 1;
    if (l->down == 2)
        listener_free(l);
    else if (l->down == 0)
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
    /* down == 1: its close callback frees it */
}

static void on_connection(uv_stream_t *server, int status);

/* Listens on fd (taken, also on failure) with l's handle. */
static int listener_listen(gh_listener_t *l, int fd)
{
    gh_worker_t *w = l->worker;
    l->tcp.data = l;
    uv_tcp_init(&w->loop, &l->tcp);
    int r = uv_tcp_open(&l->tcp, fd);
    if (r < 0)
        close(fd);
    else
        r = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    return r;
}

static int reserve_open(gh_worker_t *w)
{
    if (w->reserve_fd < 0)
        w->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return w->reserve_fd;
}

/* Accept errors are logged at most once a second per worker, with how
 * many were not: a client can cause them at will. */
static void accept_error_log(gh_listener_t *l, const char *what)
{
    gh_worker_t *w = l->worker;
    uint64_t now = uv_hrtime();
    if (w->aerr_logged_ns != 0 && now - w->aerr_logged_ns < AERR_LOG_NS) {
        w->aerr_unlogged++;
        return;
    }
    GH_LOG(GH_LOG_WARN, "worker", "worker=%u accept on %s: %s (%llu more accept errors not logged)",
           w->id, l->address, what, (unsigned long long)w->aerr_unlogged);
    w->aerr_logged_ns = now;
    w->aerr_unlogged = 0;
}

static void count_refused(gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    gh_listener_stats_t *st =
        gh_metrics_listener(w->metrics, w->cur->snap->lids[l->li].listener_id);
    if (st != NULL)
        GH_STAT_INC(st->conns_refused);
}

/* The reserve descriptor makes room to accept the oldest pending
 * connection and close it, so that its client learns at once; the others
 * wait in the backlog until the listener is back. */
static void refuse_one(gh_listener_t *l)
{
    gh_worker_t *w = l->worker;
    uv_os_fd_t lfd;
    if (w->reserve_fd < 0 || uv_fileno((uv_handle_t *)&l->tcp, &lfd) != 0)
        return;
    gh_fdlimit_lock();
    close(w->reserve_fd);
    w->reserve_fd = -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    reserve_open(w);
    gh_fdlimit_unlock();
    if (fd >= 0)
        count_refused(l);
}

/* Every FD_RETRY_MS while a listener is down: reopens it once the reserve
 * is back and its socket can be duplicated again. */
static void fd_tick(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    int waiting = 0;
    gh_fdlimit_lock();
    for (gh_listener_t *l = w->listeners; l != NULL && !w->stopping; l = l->next) {
        if (l->down == 0 || l->spare_fd < 0)
            continue;
        int fd = -1, had_reserve = w->reserve_fd >= 0;
        if (l->down == 2 && reserve_open(w) >= 0)
            fd = fcntl(l->spare_fd, F_DUPFD_CLOEXEC, 0);
        /* Listening again would let libuv accept into the last free
         * descriptors, which the admin API may be about to need. */
        if (fd >= 0 && !gh_fdlimit_room()) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            /* A reserve taken now without the socket to go with it would
             * keep a descriptor another thread just freed for itself (the
             * admin API's own reserve, for /live): give it back. */
            if (!had_reserve && w->reserve_fd >= 0) {
                close(w->reserve_fd);
                w->reserve_fd = -1;
            }
            waiting = 1;
            continue;
        }
        l->down = 0;
        int r = listener_listen(l, fd);
        if (r < 0) {
            accept_error_log(l, uv_strerror(r));
            l->down = 1;
            uv_close((uv_handle_t *)&l->tcp, listener_closed);
            waiting = 1;
        }
    }
    gh_fdlimit_unlock();
    if (!waiting)
        uv_timer_stop(t);
}

/* Takes l down until fd_tick finds descriptors for it again. refuse: the
 * oldest pending connection is refused first (when the connection that
 * found the process out of descriptors was not taken already). */
static void listener_starved(gh_listener_t *l, int refuse)
{
    gh_worker_t *w = l->worker;
    if (refuse)
        refuse_one(l);
    if (l->spare_fd < 0)
        GH_LOG(GH_LOG_ERROR, "worker",
               "worker=%u stops accepting on %s: out of descriptors and no spare socket", w->id,
               l->address);
    l->down = 1;
    uv_close((uv_handle_t *)&l->tcp, listener_closed);
    if (!uv_is_active((uv_handle_t *)&w->fd_timer))
        uv_timer_start(&w->fd_timer, fd_tick, FD_RETRY_MS, FD_RETRY_MS);
}

/* Out of descriptors (or memory) is not the one connection's fault and
 * does not go away by trying again: the listener goes down for a while.
 * Any other error belongs to the connection libuv tried to take (accept
 * reports a pending network error that way), and the next one is fine. */
static int accept_starved(int status)
{
    return status == UV_EMFILE || status == UV_ENFILE || status == UV_ENOBUFS ||
           status == UV_ENOMEM;
}

/* Whether the connection libuv just accepted may be kept: the common
 * case is one atomic load. */
static int room_for_it(void)
{
    if (!gh_fdlimit_is_short())
        return 1;
    gh_fdlimit_lock();
    int ok = gh_fdlimit_room();
    gh_fdlimit_unlock();
    return ok;
}

static void on_connection(uv_stream_t *server, int status)
{
    gh_listener_t *l = server->data;
    if (status < 0) {
        accept_error_log(l, uv_strerror(status));
        if (accept_starved(status))
            listener_starved(l, 1);
        return;
    }
    if (!room_for_it()) {
        /* The process ran out and this connection took one of the last
         * descriptors: closing the handle closes it too (libuv holds it
         * until uv_accept), and the listener stays down until there is
         * room. */
        accept_error_log(l, "too few descriptors left, kept for the admin API");
        count_refused(l);
        listener_starved(l, 0);
        return;
    }
    gh_conn_accept(l);
}

static int listener_open(gh_worker_t *w, const gh_listener_conf_t *conf, size_t li, int fd)
{
    gh_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->address = strdup(conf->address)) == NULL) {
        free(l);
        close(fd);
        return -1;
    }
    l->worker = w;
    l->li = li;
    l->spare_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    int r = listener_listen(l, fd);
    if (r < 0) {
        GH_LOG(GH_LOG_ERROR, "worker", "worker=%u listen on %s: %s", w->id, conf->address,
               uv_strerror(r));
        listener_close(l);
        return -1;
    }
    if (l->spare_fd < 0)
        GH_LOG(GH_LOG_WARN, "worker",
               "worker=%u no spare descriptor for %s: out of descriptors it would stop accepting "
               "there",
               w->id, conf->address);
    l->next = w->listeners;
    w->listeners = l;
    return 0;
}

static const gh_listener_conf_t *listener_conf_of(const gh_worker_t *w, const gh_listener_t *l)
{
    return &w->cur->snap->cfg->listeners[l->li];
}

static int same_addr(const gh_listener_conf_t *a, const gh_listener_conf_t *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Makes snap current: keeps the sockets of listeners whose address stays,
 * opens the new ones from fds (taking them), closes the ones that went. */
static int apply_snapshot(gh_worker_t *w, gh_snapshot_t *snap, int *fds)
{
    const gh_config_t *cfg = snap->cfg;
    gh_wsnap_t *ws = wsnap_new(w, snap);
    if (ws == NULL || scratch_fit(w, snap) < 0) {
        if (ws != NULL)
            wsnap_free(ws);
        return -1;
    }
    /* Re-point or close the listeners we have. */
    gh_listener_t **pp = &w->listeners;
    while (*pp != NULL) {
        gh_listener_t *l = *pp;
        const gh_listener_conf_t *old = w->cur ? listener_conf_of(w, l) : NULL;
        size_t found = SIZE_MAX;
        for (size_t i = 0; old != NULL && i < cfg->num_listeners; i++)
            if (same_addr(old, &cfg->listeners[i]))
                found = i;
        if (found == SIZE_MAX) {
            *pp = l->next;
            listener_close(l);
            continue;
        }
        l->li = found;
        pp = &l->next;
    }
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        if (fds[i] < 0)
            continue;
        listener_open(w, &cfg->listeners[i], i, fds[i]);
        fds[i] = -1;
    }
    gh_wsnap_t *old = w->cur;
    w->cur = ws;
    if (old != NULL)
        gh_wsnap_unref(old);
    gh_conn_resume_accepting(w); /* a limit may have grown */
    /* Idle keep-alive connections move to the new view when their next
     * request arrives (gh_conn_take_current), nothing to do for them now. */
    return 0;
}

/* ---- stopping ---- */

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
    /* Only idle pools, timers and (on force) connections remain: close the
     * view (and so its idle pooled connections), then every handle; the
     * loop ends when the last one is closed. */
    if (w->cur != NULL) {
        gh_wsnap_t *ws = w->cur;
        w->cur = NULL;
        gh_wsnap_unref(ws);
    }
    uv_timer_stop(t);
    gh_access_log_flush(&w->alog);
    uv_walk(&w->loop, close_walk, NULL);
}

/* Closes idle downstream connections, or all of them when forced. Busy
 * ones finish their exchange and then close (keep-alive is off while
 * stopping). Forced, a connection in its lingering close (GH_CONN_CLOSING
 * with its socket still open) is closed too: left to the final walk, its
 * socket would be closed without conn_on_close, and the connection (and
 * the snapshot its view holds) never freed. gh_conn_close does nothing
 * for one that is closing already. */
static void close_conns(gh_worker_t *w)
{
    gh_conn_t *c = w->conns;
    while (c != NULL) {
        gh_conn_t *next = c->next;
        if (w->force || (c->state == GH_CONN_HEAD && c->stream == NULL && !c->wpending))
            gh_conn_close(c);
        c = next;
    }
}

static void take_mail(gh_worker_t *w)
{
    uv_mutex_lock(&w->mbox_lock);
    gh_snapshot_t *snap = w->mbox_snap;
    int *fds = w->mbox_fds;
    w->mbox_snap = NULL;
    w->mbox_fds = NULL;
    uv_mutex_unlock(&w->mbox_lock);
    if (snap == NULL)
        return;
    /* Every worker says when it switched: a reload is complete once all have.
     * A draining worker keeps its view for what is in flight. */
    if (!w->stopping && apply_snapshot(w, snap, fds) < 0)
        GH_LOG(GH_LOG_ERROR, "worker", "worker=%u cannot apply generation %llu: out of memory",
               w->id, (unsigned long long)snap->generation);
    else if (!w->stopping)
        GH_LOG(GH_LOG_INFO, "worker", "worker=%u serving generation %llu", w->id,
               (unsigned long long)snap->generation);
    for (size_t i = 0; i < snap->cfg->num_listeners; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    gh_snapshot_unref(snap);
}

static void on_wakeup(uv_async_t *a)
{
    gh_worker_t *w = a->data;
    take_mail(w);
    int stop = __atomic_load_n(&w->stop_req, __ATOMIC_ACQUIRE);
    if (stop == 0)
        return;
    if (!w->stopping) {
        w->stopping = 1;
        while (w->listeners != NULL) {
            gh_listener_t *l = w->listeners;
            w->listeners = l->next;
            listener_close(l);
        }
        uv_timer_start(&w->drain_timer, check_drained, 0, 50);
    }
    if (stop > 1)
        w->force = 1;
    close_conns(w);
}

static void flush_alog(uv_timer_t *t)
{
    gh_worker_t *w = t->data;
    gh_access_log_flush(&w->alog);
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

/* ---- API ---- */

static void reap_dead(uv_check_t *h)
{
    gh_worker_t *w = h->data;
    if (w->dead != NULL)
        gh_stream_reap(w);
}

int gh_worker_init(gh_worker_t *w, unsigned id, gh_snapshot_t *snap, int *fds)
{
    uv_async_t *on_exit = w->on_exit;
    unsigned *num_exited = w->num_exited;
    memset(w, 0, sizeof(*w));
    w->on_exit = on_exit;
    w->num_exited = num_exited;
    w->id = id;
    w->reserve_fd = -1;
    if (getrandom(&w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || w->rng == 0)
        w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 32);
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    w->loop_ok = 1;
    gh_sockwrite_init(w);
    uv_mutex_init(&w->mbox_lock);
    uv_timer_init(&w->loop, &w->fd_timer);
    w->fd_timer.data = w;
    reserve_open(w);
    gh_deadlines_init(&w->deadlines, &w->loop);
    /* The reaper runs every loop turn: starting and stopping it per
     * request cost more than its empty turns. */
    uv_check_init(&w->loop, &w->reaper);
    w->reaper.data = w;
    uv_check_start(&w->reaper, reap_dead);
    w->metrics = gh_metrics_shard_new();
    w->md = pcre2_match_data_create(1, NULL);
    if (w->md == NULL || apply_snapshot(w, snap, fds) < 0)
        return -1;
    size_t open = 0;
    for (gh_listener_t *l = w->listeners; l != NULL; l = l->next)
        open++;
    if (open != snap->cfg->num_listeners)
        return -1;
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->alog.buf = malloc(GH_ACCESS_LOG_BUF);
    if (w->alog.buf == NULL)
        return -1;
    uv_timer_init(&w->loop, &w->alog_timer);
    w->alog_timer.data = w;
    uv_timer_start(&w->alog_timer, flush_alog, 1000, 1000);
    return 0;
}

int gh_worker_start(gh_worker_t *w)
{
    return uv_thread_create(&w->thread, worker_main, w);
}

void gh_worker_post(gh_worker_t *w, gh_snapshot_t *snap, int *fds)
{
    uv_mutex_lock(&w->mbox_lock);
    gh_snapshot_t *old = w->mbox_snap;
    int *old_fds = w->mbox_fds;
    w->mbox_snap = gh_snapshot_ref(snap);
    w->mbox_fds = fds;
    uv_mutex_unlock(&w->mbox_lock);
    if (old != NULL) {
        /* Superseded before the worker saw it. Its new sockets are closed;
         * the newer message carries its own. */
        for (size_t i = 0; i < old->cfg->num_listeners; i++)
            if (old_fds[i] >= 0)
                close(old_fds[i]);
        free(old_fds);
        gh_snapshot_unref(old);
    }
    uv_async_send(&w->wakeup);
}

void gh_worker_stop(gh_worker_t *w, int force)
{
    __atomic_store_n(&w->stop_req, force ? 2 : 1, __ATOMIC_RELEASE);
    uv_async_send(&w->wakeup);
}

void gh_worker_join(gh_worker_t *w)
{
    uv_thread_join(&w->thread);
}

void gh_worker_dispose(gh_worker_t *w)
{
    if (w->loop_ok) {
        gh_stream_reap(w);
        if (w->cur != NULL) {
            gh_wsnap_unref(w->cur);
            w->cur = NULL;
        }
        while (w->listeners != NULL) {
            gh_listener_t *l = w->listeners;
            w->listeners = l->next;
            listener_close(l);
        }
        uv_walk(&w->loop, close_walk, NULL);
        gh_deadlines_dispose(&w->deadlines);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        uv_mutex_destroy(&w->mbox_lock);
    }
    if (w->mbox_snap != NULL) {
        for (size_t i = 0; i < w->mbox_snap->cfg->num_listeners; i++)
            if (w->mbox_fds[i] >= 0)
                close(w->mbox_fds[i]);
        free(w->mbox_fds);
        gh_snapshot_unref(w->mbox_snap);
    }
    for (size_t i = 0; i < sizeof(w->fstate) / sizeof(w->fstate[0]); i++)
        if (w->fstate[i].type != NULL)
            w->fstate[i].destroy(w->fstate[i].state);
    if (w->alog.buf != NULL)
        gh_access_log_flush(&w->alog);
    free(w->alog.buf);
    for (unsigned i = 0; i < w->num_rbuf_free; i++)
        free(w->rbuf_free[i]);
    for (unsigned i = 0; i < w->num_wreq_free; i++)
        free(w->wreq_free[i]);
    gh_sockwrite_dispose(w);
    gh_stream_cache_free(w);
    free(w->hdrs);
    if (w->reserve_fd >= 0)
        close(w->reserve_fd);
    if (w->md != NULL)
        pcre2_match_data_free(w->md);
}
