/*
 * The main thread: load the config, bind every listener once per worker,
 * start the workers, wait for a signal, drain, join. The jobs it sets up
 * live in the files server.h lists.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/admin.h>
#include <gatehouse/file.h>
#include <gatehouse/filter.h>
#include <gatehouse/log.h>
#include <gatehouse/metrics.h>
#include <gatehouse/server.h>
#include <gatehouse/store.h>
#include <gatehouse/trace.h>

#include "proxy/fdlimit.h"
#include "server/apply.h"
#include "server/server.h"

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
    if (gh_filter_services_start(&sv.loop) < 0) {
        GH_LOG(GH_LOG_ERROR, "server", "a filter's service did not start");
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        uv_loop_close(&sv.loop);
        free(sv.last_text);
        gh_config_free(cfg);
        return 1;
    }
    /* The store the config names, before the snapshot: the API-key
     * providers' runtimes take it from here (gatehouse/store.h). */
    gh_store_current_init(&sv.loop);
    if (gh_store_current_select(&cfg->store) == 0)
        sv.snap = gh_snapshot_new(cfg, 1);
    else
        gh_config_free(cfg);
    if (sv.snap == NULL) {
        GH_LOG(GH_LOG_ERROR, "server", "out of memory");
        free(sv.last_text);
        gh_filter_services_stop();
        gh_store_current_stop();
        uv_run(&sv.loop, UV_RUN_DEFAULT);
        uv_loop_close(&sv.loop);
        gh_filter_services_free();
        gh_store_current_free();
        return 1;
    }
    gh_store_current_commit();
    gh_stats_set_generation(1);
    gh_fdlimit_apply(sv.snap, sv.num_workers);
    gh_server_workers_exit_init(&sv);
    int rc = 1;
    char reason[512];
    if (sv.snap->cfg->access_log.enabled && gh_access_log_open(&sv.snap->cfg->access_log) < 0)
        goto out_loop;
    if (sv.snap->cfg->admin.enabled) {
        gh_admin_hooks_t hooks = gh_server_admin_hooks(&sv);
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
    gh_server_metrics_attach(&sv);
    /* Before the workers accept anything (see signals.c). */
    gh_server_signals_start(&sv);
    if (gh_server_workers_start(&sv, sv.snap) < 0)
        goto out_loop;

    gh_server_watch_start(&sv);
    sv.serving = 1;
    for (size_t i = 0; i < sv.snap->cfg->num_listeners; i++)
        GH_LOG(GH_LOG_INFO, "server", "listener '%s' on %s (%zu routes)",
               sv.snap->cfg->listeners[i].name, sv.snap->cfg->listeners[i].address,
               sv.snap->cfg->listeners[i].num_routes);
    GH_LOG(GH_LOG_INFO, "server", "gatehouse %s serving with %u workers", GH_VERSION,
           sv.num_workers);
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    gh_server_workers_join(&sv);
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
    gh_filter_services_stop();
    gh_store_current_stop();
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    uv_loop_close(&sv.loop);
    gh_observe_set_tracer(NULL);
    for (unsigned i = 0; i < sv.num_tracers; i++)
        gh_trace_exporter_free(sv.tracers[i]);
    free(sv.tracers);
    gh_access_log_close();
    gh_snapshot_unref(sv.snap);
    gh_filter_services_free();
    gh_store_current_free();
    gh_server_metrics_detach();
    gh_metrics_shutdown();
    gh_issuer_keys_conf_dispose(&sv.issuer_keys);
    free(sv.last_text);
    return rc;
}
