/*
 * The worker threads seen from the main thread: every listener is bound
 * once per worker (SO_REUSEPORT: the kernel spreads connections over the
 * workers' sockets), the threads start on the first snapshot, and when the
 * last one's loop ends the main loop is let go. Later snapshots reach the
 * workers through their mailboxes (gh_worker_post, in reload.c).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gatehouse/admin.h>
#include <gatehouse/filter.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/log.h>
#include <gatehouse/store.h>

#include "proxy/worker.h"
#include "server/apply.h"
#include "server/server.h"

static void on_worker_exit(uv_async_t *a)
{
    server_t *sv = a->data;
    if (__atomic_load_n(&sv->num_exited, __ATOMIC_ACQUIRE) < sv->num_workers)
        return;
    /* Every worker is done: let the main loop end. */
    gh_admin_stop(sv->admin);
    sv->admin = NULL;
    gh_filter_services_stop();
    gh_store_current_stop();
    gh_issuer_current_stop();
    close_if_open((uv_handle_t *)&sv->exited);
    close_if_open((uv_handle_t *)&sv->deadline);
    close_if_open((uv_handle_t *)&sv->sigterm);
    close_if_open((uv_handle_t *)&sv->sigint);
    close_if_open((uv_handle_t *)&sv->sighup);
    close_if_open((uv_handle_t *)&sv->sigusr1);
    close_if_open((uv_handle_t *)&sv->watch);
    close_if_open((uv_handle_t *)&sv->debounce);
}

int gh_server_workers_start(server_t *sv, gh_snapshot_t *snap)
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

void gh_server_workers_exit_init(server_t *sv)
{
    uv_async_init(&sv->loop, &sv->exited, on_worker_exit);
    sv->exited.data = sv;
}

void gh_server_workers_join(server_t *sv)
{
    for (unsigned w = 0; w < sv->num_workers; w++)
        gh_worker_join(&sv->workers[w]);
    for (unsigned w = 0; w < sv->num_workers; w++)
        gh_worker_dispose(&sv->workers[w]);
    free(sv->workers);
}
