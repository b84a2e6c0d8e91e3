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

#include <gatehouse/accesslog.h>
#include <gatehouse/admin.h>
#include <gatehouse/file.h>
#include <gatehouse/keyring.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>
#include <gatehouse/server.h>
#include <gatehouse/trace.h>

#include "admin/views.h"
#include "cli/apply.h"
#include "proxy/fdlimit.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

/* /ready lists every provider without keys up to this many, each reason
 * cut to this length, then how many more (the answer stays bounded). */
#define READY_REASONS_MAX 32
#define READY_REASON_LEN 512

typedef struct {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sigusr1;
    uv_timer_t deadline;
    uv_async_t exited;   /* a worker's loop ended */
    unsigned num_exited; /* atomic */
    gh_worker_t *workers;
    unsigned num_workers;
    uint64_t drain_ms;
    int stopping;

    /* Reload. */
    const char *path;
    gh_snapshot_t *snap; /* the running snapshot; reference */
    uint64_t generation;
    uv_signal_t sighup;
    uv_fs_event_t watch;
    uv_timer_t debounce;
    char *last_text; /* the file as last loaded, to ignore touch-only events */
    size_t last_len;

    gh_admin_t *admin;
    char ready_reason[READY_REASONS_MAX * READY_REASON_LEN +
                      64]; /* filters' reasons (gh_snapshot_not_ready) */
    int serving;           /* every worker runs the first snapshot */
    /* Tracers by config: the last is current. One that a reload replaced is
     * stopped (its thread ends) but freed only at exit, since a worker may
     * still be submitting to it. */
    gh_trace_exporter_t **tracers;
    unsigned num_tracers;
} server_t;

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
    /* The admin API stays up while draining: /ready answers 503
     * "draining", so an orchestrator stops sending traffic. */
}

static void close_if_open(uv_handle_t *h)
{
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_worker_exit(uv_async_t *a)
{
    server_t *sv = a->data;
    if (__atomic_load_n(&sv->num_exited, __ATOMIC_ACQUIRE) < sv->num_workers)
        return;
    /* Every worker is done: let the main loop end. */
    gh_admin_stop(sv->admin);
    sv->admin = NULL;
    gh_keyring_shutdown();
    close_if_open((uv_handle_t *)&sv->exited);
    close_if_open((uv_handle_t *)&sv->deadline);
    close_if_open((uv_handle_t *)&sv->sigterm);
    close_if_open((uv_handle_t *)&sv->sigint);
    close_if_open((uv_handle_t *)&sv->sighup);
    close_if_open((uv_handle_t *)&sv->sigusr1);
    close_if_open((uv_handle_t *)&sv->watch);
    close_if_open((uv_handle_t *)&sv->debounce);
}

static void on_sigusr1(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    if (gh_access_log_reopen() == 0)
        GH_LOG(GH_LOG_INFO, "accesslog", "reopened on SIGUSR1");
}

static int tracing_same(const gh_tracing_conf_t *a, const gh_tracing_conf_t *b)
{
    return a->enabled == b->enabled &&
           (!a->enabled ||
            (strcmp(a->collector, b->collector) == 0 &&
             strcmp(a->service_name, b->service_name) == 0 && a->queue_size == b->queue_size &&
             a->batch_size == b->batch_size && a->flush_interval_ms == b->flush_interval_ms &&
             a->export_timeout_ms == b->export_timeout_ms));
}

/* Reaps the export threads of tracers that reloads stopped: their stacks
 * go as soon as the threads end, never waited for. */
static void tracers_reap(server_t *sv)
{
    for (unsigned i = 0; i + 1 < sv->num_tracers; i++)
        gh_trace_exporter_reap(sv->tracers[i]);
}

/* The admin API is bound once, at start. A reload is compared with what it
 * is bound to (the previous config may have had no admin section). */
static void admin_apply(server_t *sv, const gh_config_t *cfg)
{
    if (sv->admin == NULL) {
        if (cfg->admin.enabled)
            GH_LOG(GH_LOG_WARN, "admin", "adding the admin API needs a restart");
        return;
    }
    if (gh_admin_is_bound_to(sv->admin, &cfg->admin))
        gh_admin_update(sv->admin, &cfg->admin);
    else
        GH_LOG(GH_LOG_WARN, "admin",
               "admin listen address changes need a restart; keeping the running one and its "
               "token");
}

static size_t tracing_metrics(char *buf, size_t cap, void *arg)
{
    server_t *sv = arg;
    gh_trace_stats_t sum = {0, 0, 0, 0};
    for (unsigned i = 0; i < sv->num_tracers; i++) {
        gh_trace_stats_t st;
        gh_trace_exporter_stats(sv->tracers[i], &st);
        sum.exported += st.exported;
        sum.dropped_queue_full += st.dropped_queue_full;
        sum.dropped_export_failed += st.dropped_export_failed;
    }
    int n = snprintf(buf, cap,
                     "# HELP gatehouse_tracing_spans_exported_total Spans the collector accepted.\n"
                     "# TYPE gatehouse_tracing_spans_exported_total counter\n"
                     "gatehouse_tracing_spans_exported_total %llu\n"
                     "# HELP gatehouse_tracing_spans_dropped_total Spans not exported.\n"
                     "# TYPE gatehouse_tracing_spans_dropped_total counter\n"
                     "gatehouse_tracing_spans_dropped_total{reason=\"queue_full\"} %llu\n"
                     "gatehouse_tracing_spans_dropped_total{reason=\"export_failed\"} %llu\n",
                     (unsigned long long)sum.exported, (unsigned long long)sum.dropped_queue_full,
                     (unsigned long long)sum.dropped_export_failed);
    return n < 0 ? 0 : (size_t)n;
}

static size_t access_log_metrics(char *buf, size_t cap, void *arg)
{
    (void)arg;
    int n = snprintf(
        buf, cap,
        "# HELP gatehouse_access_log_lines_lost_total Access log lines a failed write lost.\n"
        "# TYPE gatehouse_access_log_lines_lost_total counter\n"
        "gatehouse_access_log_lines_lost_total %llu\n"
        "# HELP gatehouse_access_log_lines_truncated_total Access log lines with a field cut at "
        "its cap.\n"
        "# TYPE gatehouse_access_log_lines_truncated_total counter\n"
        "gatehouse_access_log_lines_truncated_total %llu\n",
        (unsigned long long)gh_access_log_lines_lost(),
        (unsigned long long)gh_access_log_lines_truncated());
    return n < 0 ? 0 : (size_t)n;
}

static int hook_ready(void *arg, int detailed, const char **reason)
{
    server_t *sv = arg;
    if (sv->stopping) {
        *reason = "draining";
        return 0;
    }
    if (!sv->serving) {
        *reason = "starting";
        return 0;
    }
    /* Every filter runtime must be ready (the JWT providers' keys loaded
     * once). Each part that is not is a line of its own (the admin API
     * splits them at '\n'), so an operator sees them all at once. */
    size_t listed =
        gh_snapshot_not_ready(sv->snap, detailed, sv->ready_reason, sizeof(sv->ready_reason));
    if (listed > 0) {
        *reason = sv->ready_reason;
        return 0;
    }
    return 1;
}

static char *hook_config(void *arg, size_t *len)
{
    server_t *sv = arg;
    return gh_admin_config_json(sv->snap, len);
}

static char *hook_clusters(void *arg, size_t *len)
{
    server_t *sv = arg;
    return gh_admin_clusters_json(sv->snap, len);
}

/* The config loader's own limit is 16 MiB; this copy only compares. */
#define CONFIG_TEXT_MAX (64u << 20)

static int listener_kept(const gh_config_t *old, const gh_listener_conf_t *l)
{
    for (size_t i = 0; i < old->num_listeners; i++) {
        const gh_listener_conf_t *o = &old->listeners[i];
        if (o->addrlen == l->addrlen && memcmp(&o->addr, &l->addr, l->addrlen) == 0)
            return 1;
    }
    return 0;
}

/* What a reload prepares before anything changes: every step that can
 * fail is here, and either all of it is committed or all of it undone. */
typedef struct {
    int **fds; /* [worker][listener]: new sockets, -1 for kept ones */
    size_t num_listeners;
    int log_fd;     /* the access log's new destination, or -1 */
    int new_tracer; /* tracing changed: tracer replaces the current one */
    gh_trace_exporter_t *tracer;
} txn_t;

static void txn_abort(server_t *sv, txn_t *t)
{
    for (unsigned w = 0; t->fds != NULL && w < sv->num_workers; w++) {
        for (size_t i = 0; t->fds[w] != NULL && i < t->num_listeners; i++)
            if (t->fds[w][i] >= 0)
                close(t->fds[w][i]);
        free(t->fds[w]);
    }
    free(t->fds);
    gh_access_log_abort(t->log_fd);
    /* A tracer that never served: its thread has nothing queued and ends
     * at once. */
    gh_trace_exporter_free(t->tracer);
}

static int txn_bind(server_t *sv, const gh_config_t *cfg, txn_t *t, char *why, size_t cap)
{
    t->num_listeners = cfg->num_listeners;
    t->fds = calloc(sv->num_workers, sizeof(int *));
    if (t->fds == NULL)
        goto oom;
    for (unsigned w = 0; w < sv->num_workers; w++) {
        t->fds[w] = malloc((t->num_listeners + 1) * sizeof(int));
        if (t->fds[w] == NULL)
            goto oom;
        for (size_t i = 0; i < t->num_listeners; i++)
            t->fds[w][i] = -1;
        for (size_t i = 0; i < t->num_listeners; i++) {
            if (listener_kept(sv->snap->cfg, &cfg->listeners[i]))
                continue;
            int fd = gh_apply_bind_listener(&cfg->listeners[i]);
            if (fd < 0) {
                snprintf(why, cap, "listener '%s' cannot bind %s: %s", cfg->listeners[i].name,
                         cfg->listeners[i].address, strerror(-fd));
                return -1;
            }
            t->fds[w][i] = fd;
        }
    }
    return 0;
oom:
    snprintf(why, cap, "out of memory");
    return -1;
}

static int txn_prepare(server_t *sv, const gh_config_t *cfg, txn_t *t, char *why, size_t cap)
{
    t->log_fd = -1;
    if (txn_bind(sv, cfg, t, why, cap) < 0)
        return -1;
    int r = gh_access_log_prepare(&cfg->access_log, &t->log_fd);
    if (r < 0) {
        snprintf(why, cap, "access_log: cannot open %s: %s",
                 cfg->access_log.path ? cfg->access_log.path : "stdout", gh_file_strerror(-r));
        return -1;
    }
    if (gh_apply_check_jwks(cfg, why, cap) < 0)
        return -1;
    t->new_tracer = !tracing_same(&sv->snap->cfg->tracing, &cfg->tracing);
    if (t->new_tracer && cfg->tracing.enabled) {
        t->tracer = gh_trace_exporter_new(&cfg->tracing);
        if (t->tracer == NULL) {
            snprintf(why, cap, "tracing: cannot start the span exporter");
            return -1;
        }
    }
    return 0;
}

/* Everything here succeeds: the steps that could fail are done. */
static void txn_commit(server_t *sv, txn_t *t, gh_snapshot_t *snap)
{
    for (unsigned w = 0; w < sv->num_workers; w++)
        gh_worker_post(&sv->workers[w], snap, t->fds[w]);
    free(t->fds);
    t->fds = NULL;
    gh_snapshot_t *old_snap = sv->snap;
    sv->snap = snap;
    sv->generation++;
    sv->drain_ms = snap->cfg->drain_timeout_ms;
    gh_access_log_commit(&snap->cfg->access_log, t->log_fd);
    t->log_fd = -1;
    if (t->new_tracer) {
        gh_trace_exporter_t *old_t = gh_observe_tracer();
        if (t->tracer != NULL)
            sv->tracers[sv->num_tracers++] = t->tracer; /* room made in reload() */
        gh_observe_set_tracer(t->tracer);
        t->tracer = NULL;
        gh_trace_exporter_stop(old_t);
    }
    tracers_reap(sv);
    admin_apply(sv, snap->cfg);
    gh_snapshot_unref(old_snap);
}

/* Builds a snapshot from the file and hands it to every worker. A reload
 * is a transaction: a config that does not load, or whose application
 * would fail (a listener that cannot bind, an access log that cannot be
 * opened, a JWKS file or inline set that does not load, a tracer that
 * cannot start) changes nothing, is logged and counted as failed, and the
 * running snapshot keeps serving. */
static void reload(server_t *sv, const char *why)
{
    gh_config_error_t err;
    char reason[512];
    gh_config_t *cfg = gh_config_load(sv->path, &err);
    if (cfg == NULL) {
        GH_LOG(GH_LOG_ERROR, "config", "reload (%s) refused, still serving generation %llu: %s",
               why, (unsigned long long)sv->generation, err.msg);
        gh_stats_reload(0);
        return;
    }
    txn_t t;
    memset(&t, 0, sizeof(t));
    t.log_fd = -1;
    gh_snapshot_t *snap = NULL;
    /* Room for one more tracer first, so the commit cannot fail. */
    gh_trace_exporter_t **nt = realloc(sv->tracers, (sv->num_tracers + 1) * sizeof(*sv->tracers));
    if (nt != NULL)
        sv->tracers = nt;
    int ok = nt != NULL;
    if (!ok)
        snprintf(reason, sizeof(reason), "out of memory");
    else
        ok = txn_prepare(sv, cfg, &t, reason, sizeof(reason)) == 0;
    if (ok) {
        snap = gh_snapshot_new(cfg, sv->generation + 1);
        cfg = NULL; /* the snapshot owns it, or gh_snapshot_new freed it */
        ok = snap != NULL;
        if (!ok)
            snprintf(reason, sizeof(reason), "out of memory building the snapshot");
    }
    if (!ok) {
        GH_LOG(GH_LOG_ERROR, "config", "reload (%s) refused, still serving generation %llu: %s",
               why, (unsigned long long)sv->generation, reason);
        txn_abort(sv, &t);
        gh_config_free(cfg);
        gh_stats_reload(0);
        return;
    }
    size_t nl = t.num_listeners;
    gh_fdlimit_apply(snap, sv->num_workers);
    txn_commit(sv, &t, snap);
    gh_stats_reload(1);
    gh_stats_set_generation(sv->generation);
    GH_LOG(GH_LOG_INFO, "config", "reload (%s): generation %llu serving, %zu listeners", why,
           (unsigned long long)sv->generation, nl);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    server_t *sv = h->data;
    if (sv->stopping)
        return;
    free(sv->last_text);
    sv->last_text = gh_file_read(sv->path, CONFIG_TEXT_MAX, &sv->last_len);
    reload(sv, "SIGHUP");
}

static void on_debounce(uv_timer_t *t)
{
    server_t *sv = t->data;
    size_t len;
    if (sv->stopping)
        return;
    char *text = gh_file_read(sv->path, CONFIG_TEXT_MAX, &len);
    if (text == NULL)
        return; /* mid-replace; the rename's own event follows */
    if (sv->last_text != NULL && len == sv->last_len && memcmp(text, sv->last_text, len) == 0) {
        free(text);
        return;
    }
    free(sv->last_text);
    sv->last_text = text;
    sv->last_len = len;
    reload(sv, "file changed");
}

/* Watches the directory, not the file: editors and Kubernetes replace the
 * file by rename, which a watch on the old inode would never see. Events
 * come in bursts, so a short debounce makes one reload out of them. */
static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    server_t *sv = h->data;
    (void)events;
    if (status < 0)
        return;
    const char *base = strrchr(sv->path, '/');
    base = base ? base + 1 : sv->path;
    /* Kubernetes updates a mounted ConfigMap by swapping a "..data"
     * symlink, so events under another name count too; the content
     * comparison in on_debounce drops the ones that change nothing. */
    if (filename != NULL && strcmp(filename, base) != 0 && strncmp(filename, "..", 2) != 0)
        return;
    uv_timer_start(&sv->debounce, on_debounce, 100, 0);
}

static void watch_start(server_t *sv)
{
    char dir[4096];
    const char *slash = strrchr(sv->path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - sv->path);
        if (n == 0)
            n = 1;
        if (n >= sizeof(dir))
            return;
        memcpy(dir, sv->path, n);
        dir[n] = '\0';
    }
    uv_fs_event_init(&sv->loop, &sv->watch);
    uv_timer_init(&sv->loop, &sv->debounce);
    sv->watch.data = sv->debounce.data = sv;
    int r = uv_fs_event_start(&sv->watch, on_fs_event, dir, 0);
    if (r < 0)
        GH_LOG(GH_LOG_WARN, "config", "cannot watch %s for changes (%s); SIGHUP still reloads", dir,
               uv_strerror(r));
}

static int start_workers(server_t *sv, gh_snapshot_t *snap)
{
    const gh_config_t *cfg = snap->cfg;
    size_t nl = cfg->num_listeners;
    int rc = -1;
    int *fds = calloc(sv->num_workers * nl + 1, sizeof(int));
    sv->workers = calloc(sv->num_workers, sizeof(gh_worker_t));
    if (fds == NULL || sv->workers == NULL)
        goto out;
    for (size_t i = 0; i < sv->num_workers * nl; i++)
        fds[i] = -1;
    for (unsigned w = 0; w < sv->num_workers; w++) {
        for (size_t i = 0; i < nl; i++) {
            int fd = gh_apply_bind_listener(&cfg->listeners[i]);
            if (fd < 0) {
                GH_LOG(GH_LOG_ERROR, "server", "listener '%s': cannot bind %s: %s",
                       cfg->listeners[i].name, cfg->listeners[i].address, strerror(-fd));
                goto out;
            }
            fds[w * nl + i] = fd;
        }
    }
    for (unsigned w = 0; w < sv->num_workers; w++) {
        sv->workers[w].on_exit = &sv->exited;
        sv->workers[w].num_exited = &sv->num_exited;
        if (gh_worker_init(&sv->workers[w], w, snap, &fds[w * nl]) < 0) {
            GH_LOG(GH_LOG_ERROR, "server", "worker %u failed to start", w);
            for (unsigned k = 0; k <= w; k++)
                gh_worker_dispose(&sv->workers[k]);
            goto out;
        }
    }
    unsigned started = 0;
    for (; started < sv->num_workers; started++)
        if (gh_worker_start(&sv->workers[started]) != 0)
            break;
    if (started < sv->num_workers) {
        GH_LOG(GH_LOG_ERROR, "server", "cannot start worker threads");
        for (unsigned w = 0; w < started; w++)
            gh_worker_stop(&sv->workers[w], 1);
        for (unsigned w = 0; w < started; w++)
            gh_worker_join(&sv->workers[w]);
        for (unsigned w = 0; w < sv->num_workers; w++)
            gh_worker_dispose(&sv->workers[w]);
        goto out;
    }
    rc = 0;
out:
    if (fds != NULL)
        for (size_t i = 0; i < sv->num_workers * nl; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    free(fds);
    if (rc < 0) {
        free(sv->workers);
        sv->workers = NULL;
    }
    return rc;
}

int gh_server_run(const gh_server_opts_t *opts)
{
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load(opts->config_path, &err);
    if (cfg == NULL) {
        GH_LOG(GH_LOG_ERROR, "config", "%s", err.msg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    server_t sv;
    memset(&sv, 0, sizeof(sv));
    sv.path = opts->config_path;
    sv.generation = 1;
    sv.num_workers = opts->workers ? opts->workers : cfg->workers;
    if (sv.num_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        sv.num_workers = n > 0 ? (unsigned)n : 1;
    }
    sv.drain_ms = cfg->drain_timeout_ms;
    sv.last_text = gh_file_read(sv.path, CONFIG_TEXT_MAX, &sv.last_len);
    uv_loop_init(&sv.loop);
    gh_keyring_init(&sv.loop);
    sv.snap = gh_snapshot_new(cfg, 1);
    if (sv.snap == NULL) {
        GH_LOG(GH_LOG_ERROR, "server", "out of memory");
        free(sv.last_text);
        gh_keyring_shutdown();
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        uv_loop_close(&sv.loop);
        gh_keyring_free_all();
        return 1;
    }
    gh_stats_set_generation(1);
    gh_fdlimit_apply(sv.snap, sv.num_workers);
    uv_async_init(&sv.loop, &sv.exited, on_worker_exit);
    sv.exited.data = &sv;
    int rc = 1;
    char reason[512];
    if (sv.snap->cfg->access_log.enabled && gh_access_log_open(&sv.snap->cfg->access_log) < 0)
        goto out_loop;
    if (sv.snap->cfg->admin.enabled) {
        gh_admin_hooks_t hooks = {hook_ready, hook_config, hook_clusters, &sv};
        sv.admin = gh_admin_start(&sv.loop, &sv.snap->cfg->admin, &hooks);
        if (sv.admin == NULL)
            goto out_loop;
    }
    if (gh_apply_check_jwks(sv.snap->cfg, reason, sizeof(reason)) < 0) {
        GH_LOG(GH_LOG_ERROR, "config", "%s", reason);
        goto out_loop;
    }
    if (sv.snap->cfg->tracing.enabled) {
        sv.tracers = calloc(1, sizeof(*sv.tracers));
        if (sv.tracers == NULL ||
            (sv.tracers[0] = gh_trace_exporter_new(&sv.snap->cfg->tracing)) == NULL)
            goto out_loop;
        sv.num_tracers = 1;
        gh_observe_set_tracer(sv.tracers[0]);
    }
    gh_metrics_set_extra(tracing_metrics, &sv);
    gh_metrics_set_extra(gh_keyring_metrics, &sv);
    gh_metrics_set_extra(access_log_metrics, &sv);
    /* Signals are caught before the workers accept anything: a SIGTERM
     * right after start must drain, not kill. They are handled once the
     * loop runs. */
    uv_signal_init(&sv.loop, &sv.sigterm);
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sighup);
    uv_signal_init(&sv.loop, &sv.sigusr1);
    uv_timer_init(&sv.loop, &sv.deadline);
    sv.sigterm.data = sv.sigint.data = sv.sighup.data = sv.deadline.data = &sv;
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sighup, on_sighup, SIGHUP);
    uv_signal_start(&sv.sigusr1, on_sigusr1, SIGUSR1);
    if (start_workers(&sv, sv.snap) < 0)
        goto out_loop;

    watch_start(&sv);
    sv.serving = 1;
    for (size_t i = 0; i < sv.snap->cfg->num_listeners; i++)
        GH_LOG(GH_LOG_INFO, "server", "listener '%s' on %s (%zu routes)",
               sv.snap->cfg->listeners[i].name, sv.snap->cfg->listeners[i].address,
               sv.snap->cfg->listeners[i].num_routes);
    GH_LOG(GH_LOG_INFO, "server", "gatehouse %s serving with %u workers", GH_VERSION,
           sv.num_workers);
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    for (unsigned w = 0; w < sv.num_workers; w++)
        gh_worker_join(&sv.workers[w]);
    for (unsigned w = 0; w < sv.num_workers; w++)
        gh_worker_dispose(&sv.workers[w]);
    free(sv.workers);
    rc = 0;
    GH_LOG(GH_LOG_INFO, "server", "stopped");
out_loop:
    gh_admin_stop(sv.admin);
    close_if_open((uv_handle_t *)&sv.exited);
    close_if_open((uv_handle_t *)&sv.sigterm);
    close_if_open((uv_handle_t *)&sv.sigint);
    close_if_open((uv_handle_t *)&sv.sighup);
    close_if_open((uv_handle_t *)&sv.sigusr1);
    close_if_open((uv_handle_t *)&sv.deadline);
    gh_keyring_shutdown();
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    uv_loop_close(&sv.loop);
    gh_observe_set_tracer(NULL);
    for (unsigned i = 0; i < sv.num_tracers; i++)
        gh_trace_exporter_free(sv.tracers[i]);
    free(sv.tracers);
    gh_access_log_close();
    gh_snapshot_unref(sv.snap);
    gh_keyring_free_all();
    gh_metrics_set_extra(tracing_metrics, NULL);
    gh_metrics_set_extra(gh_keyring_metrics, NULL);
    gh_metrics_set_extra(access_log_metrics, NULL);
    gh_metrics_shutdown();
    free(sv.last_text);
    return rc;
}
