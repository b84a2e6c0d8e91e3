/*
 * The main thread: load the config, bind every listener once per worker
 * (SO_REUSEPORT: the kernel spreads connections over the workers' sockets),
 * start the workers, wait for a signal, drain, join.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gatehouse/log.h>
#include <gatehouse/server.h>

#include "proxy/proxy.h"
#include "proxy/worker.h"

typedef struct {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sigpipe_unused;
    uv_timer_t deadline;
    uv_async_t exited; /* a worker's loop ended */
    unsigned num_exited; /* atomic */
    gh_worker_t *workers;
    unsigned num_workers;
    uint64_t drain_ms;
    int stopping;
} server_t;

static int bind_listener(const gh_listener_conf_t *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void on_deadline(uv_timer_t *t)
{
    server_t *sv = t->data;
    GH_LOG(GH_LOG_WARN, "server", "drain deadline passed, closing remaining connections");
    for (unsigned i = 0; i < sv->num_workers; i++)
        gh_worker_stop(&sv->workers[i], 1);
}

static void on_signal(uv_signal_t *h, int signum)
{
    server_t *sv = h->data;
    if (sv->stopping) {
        GH_LOG(GH_LOG_WARN, "server", "second signal %d, stopping now", signum);
        on_deadline(&sv->deadline);
        return;
    }
    sv->stopping = 1;
    GH_LOG(GH_LOG_INFO, "server", "signal %d: draining for up to %llums", signum,
           (unsigned long long)sv->drain_ms);
    for (unsigned i = 0; i < sv->num_workers; i++)
        gh_worker_stop(&sv->workers[i], 0);
    uv_timer_start(&sv->deadline, on_deadline, sv->drain_ms, 0);
    /* The main loop's only job now is the deadline; the workers' threads
     * are joined after it returns. */
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
}

static void on_worker_exit(uv_async_t *a)
{
    server_t *sv = a->data;
    if (__atomic_load_n(&sv->num_exited, __ATOMIC_ACQUIRE) < sv->num_workers)
        return;
    /* Every worker is done: let the main loop end. */
    uv_close((uv_handle_t *)&sv->exited, NULL);
    uv_close((uv_handle_t *)&sv->deadline, NULL);
    if (!uv_is_closing((uv_handle_t *)&sv->sigterm))
        uv_close((uv_handle_t *)&sv->sigterm, NULL);
    if (!uv_is_closing((uv_handle_t *)&sv->sigint))
        uv_close((uv_handle_t *)&sv->sigint, NULL);
}

int gh_server_run(const gh_server_opts_t *opts)
{
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load(opts->config_path, &err);
    if (cfg == NULL) {
        GH_LOG(GH_LOG_ERROR, "config", "%s", err.msg);
        return 1;
    }
    gh_snapshot_t *snap = gh_snapshot_new(cfg, 1);
    if (snap == NULL) {
        GH_LOG(GH_LOG_ERROR, "server", "out of memory");
        return 1;
    }
    server_t sv;
    memset(&sv, 0, sizeof(sv));
    sv.num_workers = opts->workers ? opts->workers : cfg->workers;
    if (sv.num_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        sv.num_workers = n > 0 ? (unsigned)n : 1;
    }
    sv.drain_ms = cfg->drain_timeout_ms;
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    size_t nl = cfg->num_listeners;
    int *fds = calloc(sv.num_workers * nl + 1, sizeof(int));
    sv.workers = calloc(sv.num_workers, sizeof(gh_worker_t));
    if (fds == NULL || sv.workers == NULL)
        goto out;
    for (size_t i = 0; i < sv.num_workers * nl; i++)
        fds[i] = -1;
    for (unsigned w = 0; w < sv.num_workers; w++) {
        for (size_t i = 0; i < nl; i++) {
            int fd = bind_listener(&cfg->listeners[i]);
            if (fd < 0) {
                GH_LOG(GH_LOG_ERROR, "server", "listener '%s': cannot bind %s: %s",
                       cfg->listeners[i].name, cfg->listeners[i].address, strerror(-fd));
                goto out_fds;
            }
            fds[w * nl + i] = fd;
        }
    }
    unsigned started = 0;
    uv_loop_init(&sv.loop);
    uv_async_init(&sv.loop, &sv.exited, on_worker_exit);
    sv.exited.data = &sv;
    for (unsigned w = 0; w < sv.num_workers; w++) {
        sv.workers[w].on_exit = &sv.exited;
        sv.workers[w].num_exited = &sv.num_exited;
        if (gh_worker_init(&sv.workers[w], w, snap, &fds[w * nl]) < 0) {
            GH_LOG(GH_LOG_ERROR, "server", "worker %u failed to start", w);
            for (unsigned k = 0; k <= w; k++)
                gh_worker_dispose(&sv.workers[k]);
            uv_close((uv_handle_t *)&sv.exited, NULL);
            uv_run(&sv.loop, UV_RUN_DEFAULT);
            uv_loop_close(&sv.loop);
            goto out;
        }
        for (size_t i = 0; i < nl; i++)
            fds[w * nl + i] = -1; /* the worker's handle owns it now */
    }
    for (unsigned w = 0; w < sv.num_workers; w++) {
        if (gh_worker_start(&sv.workers[w]) != 0)
            break;
        started++;
    }
    uv_signal_init(&sv.loop, &sv.sigterm);
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_timer_init(&sv.loop, &sv.deadline);
    sv.sigterm.data = sv.sigint.data = sv.deadline.data = &sv;
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    if (started == sv.num_workers) {
        for (size_t i = 0; i < nl; i++)
            GH_LOG(GH_LOG_INFO, "server", "listener '%s' on %s (%zu routes)",
                   cfg->listeners[i].name, cfg->listeners[i].address,
                   cfg->listeners[i].num_routes);
        GH_LOG(GH_LOG_INFO, "server", "gatehouse %s serving with %u workers", GH_VERSION,
               sv.num_workers);
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        rc = 0;
    } else {
        GH_LOG(GH_LOG_ERROR, "server", "cannot start worker threads");
        for (unsigned w = 0; w < started; w++)
            gh_worker_stop(&sv.workers[w], 1);
    }
    for (unsigned w = 0; w < started; w++)
        gh_worker_join(&sv.workers[w]);
    if (!uv_is_closing((uv_handle_t *)&sv.exited)) {
        __atomic_store_n(&sv.num_exited, sv.num_workers, __ATOMIC_RELEASE);
        on_worker_exit(&sv.exited);
    }
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    uv_loop_close(&sv.loop);
    for (unsigned w = 0; w < sv.num_workers; w++)
        gh_worker_dispose(&sv.workers[w]);
    if (rc == 0)
        GH_LOG(GH_LOG_INFO, "server", "stopped");
    goto out;
out_fds:
    for (size_t i = 0; i < sv.num_workers * nl; i++)
        if (fds[i] >= 0)
            close(fds[i]);
out:
    free(fds);
    free(sv.workers);
    gh_snapshot_unref(snap);
    return rc;
}
