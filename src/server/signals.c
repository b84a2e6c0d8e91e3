/*
 * Signals on the main thread. SIGTERM or SIGINT drains: the workers stop
 * accepting and finish what they have, for up to drain_timeout, then every
 * connection left is closed; a second signal closes them at once. SIGHUP
 * reloads the config; SIGUSR1 reopens the access log (after a rotation).
 */
#include <signal.h>
#include <stdlib.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/file.h>
#include <gatehouse/log.h>

#include "proxy/worker.h"
#include "server/server.h"

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

static void on_sigusr1(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    if (gh_access_log_reopen() == 0)
        GH_LOG(GH_LOG_INFO, "accesslog", "reopened on SIGUSR1");
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    server_t *sv = h->data;
    if (sv->stopping)
        return;
    free(sv->last_text);
    sv->last_text = gh_file_read(sv->path, CONFIG_TEXT_MAX, &sv->last_len);
    gh_server_reload(sv, "SIGHUP");
}

/* Signals are caught before the workers accept anything: a SIGTERM right
 * after start must drain, not kill. They are handled once the loop runs. */
void gh_server_signals_start(server_t *sv)
{
    uv_signal_init(&sv->loop, &sv->sigterm);
    uv_signal_init(&sv->loop, &sv->sigint);
    uv_signal_init(&sv->loop, &sv->sighup);
    uv_signal_init(&sv->loop, &sv->sigusr1);
    uv_timer_init(&sv->loop, &sv->deadline);
    sv->sigterm.data = sv->sigint.data = sv->sighup.data = sv->deadline.data = sv;
    uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&sv->sigint, on_signal, SIGINT);
    uv_signal_start(&sv->sighup, on_sighup, SIGHUP);
    uv_signal_start(&sv->sigusr1, on_sigusr1, SIGUSR1);
}
