/*
 * What a finished exchange leaves behind: metrics in the worker's shard, an
 * access log line, and a span for the tracer. Runs once per stream, on the
 * worker, from gh_stream_end().
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/h1.h>
#include <gatehouse/trace.h>

#include "proxy/proxy.h"

static gh_trace_exporter_t *tracer; /* published by the main thread */

void gh_observe_set_tracer(gh_trace_exporter_t *e)
{
    __atomic_store_n(&tracer, e, __ATOMIC_RELEASE);
}

gh_trace_exporter_t *gh_observe_tracer(void)
{
    return __atomic_load_n(&tracer, __ATOMIC_ACQUIRE);
}

static uint64_t rnd(void *arg)
{
    return gh_rand(arg);
}

void gh_observe_start(gh_stream_t *s)
{
    const gh_tracing_conf_t *t = &s->snap->cfg->tracing;
    if (!t->enabled || gh_observe_tracer() == NULL)
        return;
    gh_trace_ctx_t in;
    s->span = gh_arena_alloc(&s->arena, sizeof(*s->span));
    if (s->span == NULL)
        return;
    int has = gh_trace_extract(s->req.headers, s->req.num_headers, &in);
    /* The trace id and parent are kept from anyone (they only link spans);
     * the sampled flag only from whom the config trusts with it: a client
     * that sets it on every request would have every request exported. */
    if (has && (t->incoming_sampled == GH_TRACE_SAMPLED_FROM_NONE ||
                (t->incoming_sampled == GH_TRACE_SAMPLED_FROM_TRUSTED && !s->peer_trusted)))
        in.sample_deferred = 1;
    gh_trace_start(s->span, has ? &in : NULL, t->sampling, rnd, s->conn->worker);
    s->traced = 1;
}

static uint64_t unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const gh_h1_header_t *find_header(const gh_stream_t *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < s->req.num_headers; i++)
        if (gh_h1_name_is(&s->req.headers[i], lower, n))
            return &s->req.headers[i];
    return NULL;
}

/* Room for the access log's user_agent cap and a little more, so that a
 * cut value is still marked truncated by the log. */
#define UA_JOINED_MAX 1100

/* The User-Agent value, or every one joined with ", " when the request
 * carries several (the upstream may read any of them). NULL when none. */
static const char *user_agents(const gh_stream_t *s, char *buf, size_t *len)
{
    const gh_h1_header_t *first = find_header(s, "user-agent", 10);
    size_t n = 0, count = 0;
    *len = 0;
    if (first == NULL)
        return NULL;
    for (size_t i = 0; i < s->req.num_headers; i++) {
        const gh_h1_header_t *h = &s->req.headers[i];
        if (!gh_h1_name_is(h, "user-agent", 10))
            continue;
        if (count++ > 0 && n + 2 <= UA_JOINED_MAX) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }
        size_t k = h->value_len < UA_JOINED_MAX - n ? h->value_len : UA_JOINED_MAX - n;
        memcpy(buf + n, h->value, k);
        n += k;
    }
    if (count == 1) {
        *len = first->value_len;
        return first->value;
    }
    *len = n;
    return buf;
}

static void record_metrics(gh_stream_t *s, uint64_t dur_us, uint64_t now)
{
    gh_worker_t *w = s->conn->worker;
    const gh_snapshot_t *snap = s->snap;
    uint32_t series, route;
    if (s->route == NULL) {
        series = snap->lids[s->conn->li].noroute_series_id;
        route = snap->lids[s->conn->li].noroute_route_id;
    } else {
        const gh_chain_t *ch = &snap->chains[s->conn->li][s->route->index];
        series = ch->series_ids[s->cluster != NULL ? s->target + 1 : 0];
        route = ch->route_id;
    }
    if (s->status >= 100 && s->status <= 599) {
        gh_series_stats_t *ss = gh_metrics_series(w->metrics, series);
        if (ss != NULL)
            GH_STAT_INC(ss->codes[s->status / 100 - 1]);
    }
    gh_route_stats_t *rs = gh_metrics_route(w->metrics, route);
    if (rs != NULL) {
        gh_hist_observe(&rs->duration, dur_us);
        GH_STAT_ADD(rs->bytes_in, s->bytes_in);
        GH_STAT_ADD(rs->bytes_out, s->bytes_out);
    }
    if (s->cluster != NULL && s->up_start_ns != 0 && s->res_up_done) {
        gh_cluster_stats_t *cs =
            gh_metrics_cluster(w->metrics, snap->cluster_ids[s->cluster->index]);
        if (cs != NULL)
            gh_hist_observe(&cs->duration, (now - s->up_start_ns) / 1000);
    }
}

void gh_observe_end(gh_stream_t *s)
{
    gh_worker_t *w = s->conn->worker;
    uint64_t now = uv_hrtime();
    uint64_t dur_us = (now - s->start_ns) / 1000;
    record_metrics(s, dur_us, now);

    const gh_config_t *cfg = s->snap->cfg;
    gh_trace_exporter_t *tr = gh_observe_tracer();
    int export = s->traced && s->span->sampled && tr != NULL;
    /* The plain path (no access log, no sampled span) stops at the metrics:
     * the rest is per-request work nobody asked for. */
    if (!cfg->access_log.enabled && !export)
        return;
    const char *upstream = NULL;
    if (s->cluster != NULL && s->up_start_ns != 0)
        upstream = s->upstream_name != NULL ? s->upstream_name
                                            : s->cluster->endpoints[s->endpoint].address;
    char ua_joined[UA_JOINED_MAX];
    size_t ua_len = 0;
    const char *ua = user_agents(s, ua_joined, &ua_len);
    const char *route = s->route != NULL ? s->route->name : NULL;
    char trace_id[33] = "";
    if (s->traced)
        gh_trace_id_hex(s->span, trace_id);

    if (cfg->access_log.enabled) {
        gh_access_log_entry_t e;
        memset(&e, 0, sizeof(e));
        e.unix_ms = unix_ns() / 1000000;
        e.request_id = s->request_id;
        e.listener = s->lconf != NULL ? s->lconf->name : NULL;
        e.route = route;
        e.method = s->req.method;
        e.method_len = s->req.method_len;
        e.path = s->path;
        e.path_len = s->path_len;
        e.query = s->query;
        e.query_len = s->query_len;
        e.status = s->status;
        e.bytes_in = s->bytes_in;
        e.bytes_out = s->bytes_out;
        e.duration_us = dur_us;
        e.upstream = upstream;
        e.upstream_duration_us =
            upstream != NULL && s->res_up_done ? (int64_t)((now - s->up_start_ns) / 1000) : -1;
        e.client = s->client;
        e.user_agent = ua;
        e.user_agent_len = ua_len;
        e.trace_id = s->traced ? trace_id : NULL;
        e.principal = s->identity.subject;
        e.consumer = s->identity.consumer;
        e.error = s->error;
        e.filter = s->log_note;
        gh_access_log_append(&w->alog, &cfg->access_log, &e);
    }

    if (export) {
        char method[32], host[256], ua_text[256];
        size_t ml = s->req.method_len < sizeof(method) - 1 ? s->req.method_len : sizeof(method) - 1;
        memcpy(method, s->req.method, ml);
        method[ml] = '\0';
        size_t hl = s->host_len < sizeof(host) - 1 ? s->host_len : sizeof(host) - 1;
        memcpy(host, s->host, hl);
        host[hl] = '\0';
        size_t ul = ua_len < sizeof(ua_text) - 1 ? ua_len : sizeof(ua_text) - 1;
        if (ua)
            memcpy(ua_text, ua, ul);
        ua_text[ul] = '\0';
        /* Strings are copied by submit; the path and query are not
         * NUL-terminated in the head, so copy them into the arena. */
        char *path = gh_arena_memdup(&s->arena, s->path, s->path_len);
        gh_span_t sp;
        memset(&sp, 0, sizeof(sp));
        sp.ctx = *s->span;
        uint64_t end = unix_ns();
        sp.end_unix_ns = end;
        sp.start_unix_ns = end - dur_us * 1000;
        sp.method = method;
        sp.path = path;
        sp.scheme = "http";
        sp.route = route;
        sp.status = s->status;
        sp.server_address = host;
        sp.server_port = gh_listener_port(s->lconf);
        sp.client_address = s->client;
        sp.user_agent = ua ? ua_text : NULL;
        sp.upstream = upstream;
        sp.request_id = s->request_id;
        sp.error = s->status >= 500 || s->status == 0 ? (s->error ? s->error : "aborted") : NULL;
        sp.protocol_minor = s->req.minor_version;
        gh_trace_exporter_submit(tr, &sp);
    }
}

int gh_listener_port(const gh_listener_conf_t *l)
{
    if (l == NULL)
        return 0;
    if (l->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
}

/* The method and target of a request line that looks like one ("TOKEN SP
 * target SP"), for a head the parser refused; left NULL otherwise. */
static void request_line_of(const char *p, size_t n, gh_access_log_entry_t *e)
{
    const char *nl = memchr(p, '\n', n);
    size_t line = nl ? (size_t)(nl - p) : n, m = 0;
    while (m < line && m < 32 && gh_h1_is_tchar((unsigned char)p[m]))
        m++;
    if (m == 0 || m >= line || p[m] != ' ')
        return;
    e->method = p;
    e->method_len = m;
    const char *t = p + m + 1;
    const char *sp = memchr(t, ' ', line - m - 1);
    if (sp == NULL || sp == t)
        return;
    const char *q = memchr(t, '?', (size_t)(sp - t));
    e->path = t;
    e->path_len = (size_t)((q ? q : sp) - t);
    if (q != NULL) {
        e->query = q + 1;
        e->query_len = (size_t)(sp - q - 1);
    }
}

void gh_observe_refused(gh_conn_t *c, int status, const char *error)
{
    const gh_config_t *cfg = c->ws->snap->cfg;
    if (!cfg->access_log.enabled)
        return;
    gh_access_log_entry_t e;
    memset(&e, 0, sizeof(e));
    e.unix_ms = unix_ns() / 1000000;
    e.listener = gh_conn_lconf(c)->name;
    request_line_of(c->rbuf, c->rbuf != NULL ? c->rlen : 0, &e);
    e.status = status;
    e.bytes_in = c->rlen;
    e.upstream_duration_us = -1;
    e.client = c->peer; /* forwarding fields of a refused head are not believed */
    e.error = error;
    gh_access_log_append(&c->worker->alog, &cfg->access_log, &e);
}
