/*
 * The reload transaction: load the file into a new config, prepare every
 * step that can fail (bind new listeners, open the access log's new
 * destination, load file and inline key sets, start a new span exporter),
 * then either commit all of it (hand the snapshot to every worker's
 * mailbox, swap the running one) or undo all of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/file.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>
#include <gatehouse/store.h>

#include "proxy/fdlimit.h"
#include "proxy/worker.h"
#include "server/apply.h"
#include "server/server.h"

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
            sv->tracers[sv->num_tracers++] = t->tracer; /* room made in gh_server_reload */
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
void gh_server_reload(server_t *sv, const char *why)
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
    /* The store the new config names becomes the process's before the
     * snapshot is built (its API-key runtimes take it); a reload that fails
     * from here puts the running one back. */
    int store_selected = 0;
    if (ok) {
        ok = gh_store_current_select(&cfg->store) == 0;
        store_selected = ok;
        if (!ok)
            snprintf(reason, sizeof(reason), "out of memory");
    }
    /* The issuer's keys likewise (a new directory or settings start a
     * watcher: its first load must work, or the reload is refused). */
    if (ok)
        ok = gh_issuer_current_select(cfg, reason, sizeof(reason)) == 0;
    if (ok) {
        snap = gh_snapshot_new(cfg, sv->generation + 1);
        cfg = NULL; /* the snapshot owns it, or gh_snapshot_new freed it */
        ok = snap != NULL;
        if (!ok)
            snprintf(reason, sizeof(reason), "out of memory building the snapshot");
    }
    if (!ok) {
        if (store_selected)
            gh_store_current_rollback();
        gh_issuer_current_rollback();
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
    gh_store_current_commit();
    gh_issuer_current_commit();
    gh_issuer_current_reload(); /* SIGHUP also rereads the key directory */
    gh_stats_reload(1);
    gh_stats_set_generation(sv->generation);
    GH_LOG(GH_LOG_INFO, "config", "reload (%s): generation %llu serving, %zu listeners", why,
           (unsigned long long)sv->generation, nl);
}
