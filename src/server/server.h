/*
 * What the files of the process supervisor share: the main thread's state
 * and the calls one job makes into another. Not a public header: the
 * program sees only gatehouse/server.h.
 *
 *   server.c   gh_server_run: load, set up, serve, tear down
 *   workers.c  starting the worker threads, joining them, the loop's end
 *   signals.c  SIGTERM/SIGINT (drain, then force), SIGHUP, SIGUSR1
 *   reload.c   the reload transaction: prepare, then commit or abort
 *   watch.c    the config file watch that triggers a reload
 *   ready.c    what the admin API asks of the process (/ready, /config, /clusters)
 *   metrics.c  the process's own lines in /metrics
 *   apply.c    the checks a config must pass to be applied (also validate)
 *
 * Everything here runs on the main thread.
 */
#ifndef GATEHOUSE_SERVER_INTERNAL_H
#define GATEHOUSE_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <gatehouse/admin.h>
#include <gatehouse/config.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/trace.h>

#include "proxy/proxy.h"

/* /ready lists every provider without keys up to this many, each reason
 * cut to this length, then how many more (the answer stays bounded). */
#define READY_REASONS_MAX 32
#define READY_REASON_LEN 512

/* The config loader's own limit is 16 MiB; this copy only compares. */
#define CONFIG_TEXT_MAX (64u << 20)

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
    gh_issuer_keys_conf_t issuer_keys; /* what the admin API's /issuer/keys last asked for */
    char ready_reason[READY_REASONS_MAX * READY_REASON_LEN + 64];
    int serving; /* every worker runs the first snapshot */
    /* Tracers by config: the last is current. One that a reload replaced is
     * stopped (its thread ends) but freed only at exit, since a worker may
     * still be submitting to it. */
    gh_trace_exporter_t **tracers;
    unsigned num_tracers;
} server_t;

static inline void close_if_open(uv_handle_t *h)
{
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* workers.c. Binds every listener once per worker and starts the threads
 * on snap (borrowed; each worker takes its own reference). Returns 0, or
 * -1 (logged) with nothing left running. */
int gh_server_workers_start(server_t *sv, gh_snapshot_t *snap);
/* Arms sv->exited: when the last worker's loop ends, the main loop's
 * handles close and uv_run returns. */
void gh_server_workers_exit_init(server_t *sv);
/* After uv_run: joins and frees every worker. */
void gh_server_workers_join(server_t *sv);

/* signals.c. Catches SIGTERM and SIGINT (drain, a second one forces),
 * SIGHUP (reload) and SIGUSR1 (reopen the access log). */
void gh_server_signals_start(server_t *sv);

/* reload.c. Loads sv->path and, if every step can be applied, makes it the
 * running snapshot; why names the trigger in the log. */
void gh_server_reload(server_t *sv, const char *why);

/* watch.c. Reloads when the config file's content changes. */
void gh_server_watch_start(server_t *sv);

/* ready.c. The hooks the admin API calls; they borrow sv. */
gh_admin_hooks_t gh_server_admin_hooks(server_t *sv);

/* metrics.c. Adds the tracing, keyring and access log lines to /metrics
 * (they borrow sv until detached). */
void gh_server_metrics_attach(server_t *sv);
void gh_server_metrics_detach(void);

#endif
