/* The process's own lines in /metrics: span export, filters' services, access log. */
#include <stdio.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/filter.h>
#include <gatehouse/metrics.h>

#include "server/server.h"

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

void gh_server_metrics_attach(server_t *sv)
{
    gh_metrics_set_extra(tracing_metrics, sv);
    gh_filter_metrics_attach(sv);
    gh_metrics_set_extra(access_log_metrics, sv);
}

void gh_server_metrics_detach(void)
{
    gh_metrics_set_extra(tracing_metrics, NULL);
    gh_filter_metrics_attach(NULL);
    gh_metrics_set_extra(access_log_metrics, NULL);
}
