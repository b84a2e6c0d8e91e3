/*
 * Fitting client connections to RLIMIT_NOFILE.
 *
 * A worker that runs out of descriptors cannot accept, and libuv's accept
 * loop then never returns (worker.c copes with it, but every client of that
 * worker waits). So the number of client connections a worker takes is
 * capped, besides the listeners' max_connections, by what the descriptor
 * limit can hold: each client connection may bring one upstream connection,
 * and the process needs some for itself.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gatehouse/log.h>

#include "proxy/fdlimit.h"

/* Descriptors the process needs whatever the traffic: standard streams,
 * logs, the admin API (64 connections, cli/admin), JWKS fetches, the
 * tracer, the main loop's own. */
#define PROCESS_HEADROOM 128
/* Per worker besides its connections: the loop's epoll and wakeup
 * descriptors, libuv's and worker.c's reserve descriptors. */
#define WORKER_HEADROOM 8

static uint64_t listeners_sum(const gh_config_t *cfg)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < cfg->num_listeners; i++)
        sum += cfg->listeners[i].max_connections;
    return sum;
}

/* Idle pooled upstream connections one worker may keep beyond one per
 * client connection. A stream opens a connection to an endpoint only when
 * none is idle there, so an endpoint's busy and idle connections together
 * never exceed the client connections; the pools of the other endpoints
 * can hold up to their max_idle more. */
static uint64_t idle_beyond(const gh_config_t *cfg)
{
    uint64_t sum = 0, most = 0;
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        const gh_cluster_t *c = &cfg->clusters[i];
        uint64_t each = c->max_idle < c->max_connections ? c->max_idle : c->max_connections;
        sum += each * c->num_endpoints;
        if (c->num_endpoints > 0 && each > most)
            most = each;
    }
    return sum - most;
}

uint32_t gh_fdlimit_conn_cap(const gh_config_t *cfg, unsigned workers, uint64_t nofile)
{
    uint64_t want = listeners_sum(cfg);
    if (want > UINT32_MAX)
        want = UINT32_MAX;
    if (workers == 0)
        workers = 1;
    uint64_t fixed =
        PROCESS_HEADROOM +
        (uint64_t)workers * (WORKER_HEADROOM + 2 * cfg->num_listeners + idle_beyond(cfg));
    /* Two descriptors per client connection: its own and its upstream's. */
    uint64_t fits = nofile > fixed ? (nofile - fixed) / workers / 2 : 0;
    if (fits < 1)
        fits = 1; /* a limit this small cannot serve; one connection still answers */
    return (uint32_t)(fits < want ? fits : want);
}

/* Raises the soft limit to the hard one and returns the soft limit now in
 * force, or 0 when it is not known (unlimited counts as unknown). */
static uint64_t nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur != rl.rlim_max && rl.rlim_max != RLIM_INFINITY) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            GH_LOG(GH_LOG_INFO, "server", "RLIMIT_NOFILE raised from %llu to its hard limit %llu",
                   (unsigned long long)was, (unsigned long long)rl.rlim_max);
        else if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 0;
    }
    return rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
}

void gh_fdlimit_apply(gh_snapshot_t *snap, unsigned workers)
{
    const gh_config_t *cfg = snap->cfg;
    uint64_t want = listeners_sum(cfg);
    uint64_t nofile = nofile_raise();
    if (nofile == 0) {
        snap->conn_cap = want > UINT32_MAX ? UINT32_MAX : (uint32_t)want;
        return;
    }
    snap->conn_cap = gh_fdlimit_conn_cap(cfg, workers, nofile);
    if (snap->conn_cap < want)
        GH_LOG(GH_LOG_WARN, "server",
               "RLIMIT_NOFILE is %llu: with %u workers, each takes at most %u client connections "
               "over all listeners (two descriptors each, with its upstream), not the %llu their "
               "max_connections allow; raise the limit (ulimit -n, LimitNOFILE=) to take more",
               (unsigned long long)nofile, workers, snap->conn_cap, (unsigned long long)want);
}

/* ---- running out all the same ----
 *
 * The cap above keeps the data plane PROCESS_HEADROOM descriptors short of
 * the limit it was computed for. When the limit is lowered under the
 * running process, or something else holds descriptors, the process runs
 * out all the same, and then every thread that needs a descriptor (the
 * admin API for /live, a worker for its reserve or its listener) gets one
 * by closing a descriptor it holds in reserve and taking the next one
 * (accept, dup, open). The descriptor table is the process's, so another
 * thread can take the freed slot in between, and then keep it:
 *
 *   main (admin)                       worker
 *   accept4: EMFILE
 *   close(reserve)
 *                                      accept4 on its listener (libuv's
 *                                      loop, a client waits): the slot,
 *                                      kept as one more idle connection
 *   accept4: EMFILE; the reserve is
 *   gone, every descriptor is taken,
 *   and /live waits until a client of
 *   the data plane leaves
 *
 * A worker's dup of its listening socket (fd_tick) or its own reserve can
 * take the slot the same way. libuv's accept loop hides its own EMFILE
 * (it drops the pending connections with a reserve of its own and keeps
 * listening), so the worker need not even have seen the limit.
 *
 * Two rules close this. The steps that give up a reserve to take a
 * descriptor run under one process-wide lock, so they never interleave.
 * libuv's accept cannot take that lock, so once the admin API ran out
 * (it says so before it gives up its reserve), a worker keeps a connection
 * it accepted only when GH_FDLIMIT_KEEP descriptors stay free besides it,
 * and a listener that went down comes back under the same condition;
 * otherwise the connection is closed and the listener goes down
 * (worker.c), which gives the taken slot back. A lost race then costs the
 * admin API one retry, not its reserve for good.
 * Finding GH_FDLIMIT_CLEAR free ends the check, so that normal operation
 * pays nothing for it. Upstream and filter connections opened by requests
 * already accepted are not held back by this. */

static pthread_mutex_t short_lock = PTHREAD_MUTEX_INITIALIZER;
static int is_short;

void gh_fdlimit_lock(void)
{
    pthread_mutex_lock(&short_lock);
}

void gh_fdlimit_unlock(void)
{
    pthread_mutex_unlock(&short_lock);
}

void gh_fdlimit_ran_out(void)
{
    __atomic_store_n(&is_short, 1, __ATOMIC_SEQ_CST);
}

int gh_fdlimit_is_short(void)
{
    return __atomic_load_n(&is_short, __ATOMIC_SEQ_CST);
}

int gh_fdlimit_room(void)
{
    if (!gh_fdlimit_is_short())
        return 1;
    int probe[GH_FDLIMIT_CLEAR];
    int n = 0;
    while (n < GH_FDLIMIT_CLEAR && (probe[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    for (int i = 0; i < n; i++)
        close(probe[i]);
    if (n == GH_FDLIMIT_CLEAR)
        __atomic_store_n(&is_short, 0, __ATOMIC_SEQ_CST);
    return n >= GH_FDLIMIT_KEEP;
}
