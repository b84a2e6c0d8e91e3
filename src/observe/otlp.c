/*
 * The span exporter: a bounded queue that workers copy finished spans into,
 * and one thread that drains it in batches as OTLP/HTTP JSON
 * (ExportTraceServiceRequest, opentelemetry-proto trace/v1) POSTed with
 * libcurl to the configured collector.
 *
 * The request path only ever takes the queue's mutex for a bounded copy: the
 * export thread holds it to move spans out, never across I/O. A collector
 * that is slow or down therefore costs spans (dropped and counted), never
 * request latency: each export attempt is bounded by export_timeout, a
 * failed batch is dropped rather than retried, and while it is in flight new
 * spans either fit in the queue or are dropped as "queue full".
 *
 * Memory: the queue is queue_size fixed-size slots, allocated once with
 * calloc (pages are touched only as the queue fills). Strings are packed
 * into each slot and truncated, each to its own cap, so one long URL cannot
 * crowd out the rest.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include <gatehouse/log.h>
#include <gatehouse/redact.h>
#include <gatehouse/trace.h>

#include "observe/otlp.h"

#define COMPONENT "trace"

/* Per-string caps (bytes, before JSON escaping). */
enum {
    F_METHOD,
    F_PATH,
    F_QUERY,
    F_SCHEME,
    F_ROUTE,
    F_SERVER_ADDRESS,
    F_CLIENT_ADDRESS,
    F_USER_AGENT,
    F_UPSTREAM,
    F_REQUEST_ID,
    F_ERROR,
    F_TRACESTATE,
    F_COUNT
};

static const uint16_t field_cap[F_COUNT] = {
    [F_METHOD] = 32,         [F_PATH] = 1024,      [F_QUERY] = 512,
    [F_SCHEME] = 16,         [F_ROUTE] = 128,      [F_SERVER_ADDRESS] = 256,
    [F_CLIENT_ADDRESS] = 64, [F_USER_AGENT] = 256, [F_UPSTREAM] = 128,
    [F_REQUEST_ID] = 64,     [F_ERROR] = 64,       [F_TRACESTATE] = GH_TRACESTATE_MAX,
};

/* Sum of the caps plus one NUL per field. */
#define SLOT_STRINGS (32 + 1024 + 512 + 16 + 128 + 256 + 64 + 256 + 128 + 64 + 64 + 512 + F_COUNT)

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8];
    uint8_t has_parent;
    uint64_t start_ns, end_ns;
    int status, server_port, protocol_minor;
    /* Offsets into str of each field's NUL-terminated copy; 0xffff = NULL. */
    uint16_t off[F_COUNT];
    uint16_t str_len;
    char str[SLOT_STRINGS];
} slot_t;

struct gh_trace_exporter_s {
    /* Configuration (copied). */
    char *collector;
    char *collector_log; /* for messages: userinfo redacted */
    char *service_name;
    uint32_t queue_size, batch_size;
    uint64_t flush_interval_ms, export_timeout_ms;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* signalled by submit at batch_size, and by free */
    slot_t *ring;
    uint32_t head, count; /* under lock */
    int stopping;         /* under lock */
    int joined;           /* main thread: the export thread has ended */
    pthread_t thread;

    /* Export thread only. */
    CURL *curl;
    struct curl_slist *curl_headers;
    gh_otlp_buf_t body;
    int failing; /* last export failed: log the next success, not every failure */

    _Atomic uint64_t exported, dropped_queue_full, dropped_export_failed, export_requests;
};

static const char *slot_get(const slot_t *s, int f)
{
    return s->off[f] == 0xffff ? NULL : s->str + s->off[f];
}

/* Copies the span into the slot; strings truncated to their cap. Truncation
 * may split a UTF-8 sequence: the JSON writer replaces the broken tail. */
static void slot_fill(slot_t *s, const gh_span_t *span)
{
    const char *src[F_COUNT] = {
        [F_METHOD] = span->method,
        [F_PATH] = span->path,
        [F_QUERY] = span->query,
        [F_SCHEME] = span->scheme,
        [F_ROUTE] = span->route,
        [F_SERVER_ADDRESS] = span->server_address,
        [F_CLIENT_ADDRESS] = span->client_address,
        [F_USER_AGENT] = span->user_agent,
        [F_UPSTREAM] = span->upstream,
        [F_REQUEST_ID] = span->request_id,
        [F_ERROR] = span->error,
        [F_TRACESTATE] = span->ctx.tracestate[0] != '\0' ? span->ctx.tracestate : NULL,
    };
    size_t pos = 0;
    memcpy(s->trace_id, span->ctx.trace_id, 16);
    memcpy(s->span_id, span->ctx.span_id, 8);
    memcpy(s->parent_span_id, span->ctx.parent_span_id, 8);
    s->has_parent = span->ctx.has_parent;
    s->start_ns = span->start_unix_ns;
    s->end_ns = span->end_unix_ns;
    s->status = span->status;
    s->server_port = span->server_port;
    s->protocol_minor = span->protocol_minor;
    for (int f = 0; f < F_COUNT; f++) {
        if (src[f] == NULL) {
            s->off[f] = 0xffff;
            continue;
        }
        size_t n = strnlen(src[f], field_cap[f]);
        s->off[f] = (uint16_t)pos;
        memcpy(s->str + pos, src[f], n);
        s->str[pos + n] = '\0';
        pos += n + 1;
    }
    s->str_len = (uint16_t)pos;
}

/* ---- JSON writing ---- */

static void buf_reserve(gh_otlp_buf_t *b, size_t more)
{
    if (b->failed)
        return;
    if (more <= b->cap - b->len)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return;
    }
    b->data = p;
    b->cap = cap;
}

static void buf_put(gh_otlp_buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void buf_puts(gh_otlp_buf_t *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return len;
}

void gh_otlp_put_string(gh_otlp_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    /* Worst case: every byte becomes a 6-byte escape. */
    buf_reserve(b, 6 * n + 2);
    if (b->failed)
        return;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            /* Header values are bytes, not text; JSON must be UTF-8, so a
             * byte that does not start a valid sequence becomes U+FFFD. */
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i++;
            } else {
                memcpy(o, p + i, l);
                o += l;
                i += l;
            }
            continue;
        }
        i++;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 0xf];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

static void put_hex(gh_otlp_buf_t *b, const uint8_t *id, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[34];
    tmp[0] = '"';
    for (size_t i = 0; i < n; i++) {
        tmp[1 + 2 * i] = digits[id[i] >> 4];
        tmp[2 + 2 * i] = digits[id[i] & 0xf];
    }
    tmp[1 + 2 * n] = '"';
    buf_put(b, tmp, 2 * n + 2);
}

static void put_u64_str(gh_otlp_buf_t *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "\"%" PRIu64 "\"", v);
    buf_put(b, tmp, (size_t)n);
}

static void attr_str(gh_otlp_buf_t *b, int *first, const char *key, const char *v)
{
    if (v == NULL)
        return;
    buf_puts(b, *first ? "{\"key\":\"" : ",{\"key\":\"");
    *first = 0;
    buf_puts(b, key);
    buf_puts(b, "\",\"value\":{\"stringValue\":");
    gh_otlp_put_string(b, v);
    buf_puts(b, "}}");
}

/* proto3 JSON: int64 values are decimal strings. */
static void attr_int(gh_otlp_buf_t *b, int *first, const char *key, int64_t v)
{
    char tmp[24];
    buf_puts(b, *first ? "{\"key\":\"" : ",{\"key\":\"");
    *first = 0;
    buf_puts(b, key);
    buf_puts(b, "\",\"value\":{\"intValue\":\"");
    snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    buf_puts(b, tmp);
    buf_puts(b, "\"}}");
}

/* HTTP semantic conventions: http.request.method is one of the well-known
 * methods, else "_OTHER" with the original in http.request.method_original
 * (this keeps the attribute's cardinality bounded). */
static int known_method(const char *m)
{
    static const char *const known[] = {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS",
                                        "PATCH",   "POST",   "PUT", "TRACE"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(m, known[i]) == 0)
            return 1;
    }
    return 0;
}

static void put_span(gh_otlp_buf_t *b, const slot_t *s)
{
    const char *method = slot_get(s, F_METHOD);
    const char *route = slot_get(s, F_ROUTE);
    const char *error = slot_get(s, F_ERROR);
    const char *ts = slot_get(s, F_TRACESTATE);
    int known = method != NULL && known_method(method);
    char tmp[16];
    int first = 1;

    buf_puts(b, "{\"traceId\":");
    put_hex(b, s->trace_id, 16);
    buf_puts(b, ",\"spanId\":");
    put_hex(b, s->span_id, 8);
    if (s->has_parent) {
        buf_puts(b, ",\"parentSpanId\":");
        put_hex(b, s->parent_span_id, 8);
    }
    if (ts != NULL) {
        buf_puts(b, ",\"traceState\":");
        gh_otlp_put_string(b, ts);
    }
    /* Span name per the HTTP conventions: "{method} {http.route}", or the
     * method alone without a route; "HTTP" stands in for an unknown method. */
    {
        char name[32 + 1 + 128 + 1];
        snprintf(name, sizeof(name), "%s%s%s", known ? method : "HTTP", route ? " " : "",
                 route ? route : "");
        buf_puts(b, ",\"name\":");
        gh_otlp_put_string(b, name);
    }
    buf_puts(b, ",\"kind\":2,\"startTimeUnixNano\":");
    put_u64_str(b, s->start_ns);
    buf_puts(b, ",\"endTimeUnixNano\":");
    put_u64_str(b, s->end_ns);

    buf_puts(b, ",\"attributes\":[");
    if (method != NULL) {
        attr_str(b, &first, "http.request.method", known ? method : "_OTHER");
        if (!known)
            attr_str(b, &first, "http.request.method_original", method);
    }
    attr_str(b, &first, "url.scheme", slot_get(s, F_SCHEME));
    attr_str(b, &first, "url.path", slot_get(s, F_PATH));
    if (slot_get(s, F_QUERY) != NULL && slot_get(s, F_QUERY)[0] != '\0')
        attr_str(b, &first, "url.query", slot_get(s, F_QUERY));
    attr_str(b, &first, "http.route", route);
    if (s->status > 0)
        attr_int(b, &first, "http.response.status_code", s->status);
    attr_str(b, &first, "server.address", slot_get(s, F_SERVER_ADDRESS));
    if (s->server_port > 0)
        attr_int(b, &first, "server.port", s->server_port);
    attr_str(b, &first, "client.address", slot_get(s, F_CLIENT_ADDRESS));
    attr_str(b, &first, "user_agent.original", slot_get(s, F_USER_AGENT));
    attr_str(b, &first, "network.protocol.name", "http");
    snprintf(tmp, sizeof(tmp), "1.%d", s->protocol_minor);
    attr_str(b, &first, "network.protocol.version", tmp);
    attr_str(b, &first, "gatehouse.upstream", slot_get(s, F_UPSTREAM));
    attr_str(b, &first, "gatehouse.request_id", slot_get(s, F_REQUEST_ID));
    /* error.type: the failure's name, else for a 5xx the status code as a
     * string (a server span's 4xx is the client's error, not ours). */
    if (error != NULL) {
        attr_str(b, &first, "error.type", error);
    } else if (s->status >= 500) {
        snprintf(tmp, sizeof(tmp), "%d", s->status);
        attr_str(b, &first, "error.type", tmp);
    }
    buf_puts(b, "]");
    if (error != NULL || s->status >= 500) {
        buf_puts(b, ",\"status\":{\"code\":2");
        if (error != NULL) {
            buf_puts(b, ",\"message\":");
            gh_otlp_put_string(b, error);
        }
        buf_puts(b, "}");
    } else {
        buf_puts(b, ",\"status\":{}");
    }
    buf_puts(b, "}");
}

/* The request for the n spans that start at ring[head] (wrapping at size). */
static void build_body(gh_otlp_buf_t *b, const char *service_name, const slot_t *ring, size_t size,
                       size_t head, size_t n)
{
    b->len = 0;
    b->failed = 0;
    buf_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                "\"value\":{\"stringValue\":");
    gh_otlp_put_string(b, service_name);
    buf_puts(b, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"gatehouse\"");
#ifdef GH_VERSION
    buf_puts(b, ",\"version\":\"" GH_VERSION "\"");
#endif
    buf_puts(b, "},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_puts(b, ",");
        put_span(b, &ring[(head + i) % size]);
    }
    buf_puts(b, "]}]}]}");
}

/* Exposed for tests: the body for one span, NUL-terminated, caller frees. */
char *gh_otlp_encode_span(const char *service_name, const gh_span_t *span)
{
    slot_t *s = calloc(1, sizeof(*s));
    gh_otlp_buf_t b = {0};
    if (s == NULL)
        return NULL;
    slot_fill(s, span);
    build_body(&b, service_name, s, 1, 0, 1);
    free(s);
    buf_put(&b, "", 1);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

/* ---- export ---- */

static size_t discard_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Encodes the n spans at the head of the ring and releases their slots.
 * The slots are read without the lock: submitters only write past
 * head + count, and these are inside it until released here. Encoding
 * first and releasing after keeps the queue's bound honest (a span is in
 * the queue or in the body, never in neither). */
static size_t encode_and_release(gh_trace_exporter_t *e, uint32_t head, size_t n)
{
    build_body(&e->body, e->service_name, e->ring, e->queue_size, head, n);
    pthread_mutex_lock(&e->lock);
    e->head = (uint32_t)((head + n) % e->queue_size);
    e->count -= (uint32_t)n;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* POSTs e->body (n spans) within timeout_ms in total, connect included.
 * Returns 0 when the collector took it (2xx), else -1. */
static int export_body(gh_trace_exporter_t *e, size_t n, uint64_t timeout_ms)
{
    long code = 0;
    CURLcode rc;
    atomic_fetch_add(&e->export_requests, 1);
    if (e->body.failed) {
        atomic_fetch_add(&e->dropped_export_failed, n);
        GH_LOG(GH_LOG_ERROR, COMPONENT, "out of memory encoding %zu spans; dropped", n);
        return -1;
    }
    if (timeout_ms == 0)
        timeout_ms = 1;
    curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, e->body.data);
    curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->body.len);
    curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    rc = curl_easy_perform(e->curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code >= 200 && code < 300) {
        /* A 200 with partialSuccess.rejectedSpans is still counted as
         * exported: the collector took the batch, and its own metrics
         * say what it then refused. */
        atomic_fetch_add(&e->exported, n);
        if (e->failing)
            GH_LOG(GH_LOG_INFO, COMPONENT, "export to %s recovered", e->collector_log);
        e->failing = 0;
        return 0;
    }
    /* OTLP lets a client retry 429/502/503/504 with backoff; gatehouse does
     * not: a retry holds the batch while the queue keeps filling, and
     * under a sustained outage every strategy ends in dropping spans. The
     * drop is counted instead, and logged once per outage. */
    atomic_fetch_add(&e->dropped_export_failed, n);
    if (!e->failing) {
        if (rc != CURLE_OK)
            GH_LOG(GH_LOG_WARN, COMPONENT, "export to %s failed: %s; dropping %zu spans",
                   e->collector_log, curl_easy_strerror(rc), n);
        else
            GH_LOG(GH_LOG_WARN, COMPONENT, "export to %s: HTTP %ld; dropping %zu spans",
                   e->collector_log, code, n);
    }
    e->failing = 1;
    return -1;
}

static void deadline_after(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *export_main(void *arg)
{
    gh_trace_exporter_t *e = arg;
    struct timespec next;
    deadline_after(&next, e->flush_interval_ms);
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->stopping && e->count < e->batch_size) {
            if (pthread_cond_timedwait(&e->wake, &e->lock, &next) == ETIMEDOUT)
                break;
        }
        if (e->stopping)
            break;
        size_t n = e->count < e->batch_size ? e->count : e->batch_size;
        uint32_t head = e->head;
        pthread_mutex_unlock(&e->lock);
        /* The interval restarts when a batch leaves, so a full batch and a
         * timer flush do not follow each other back to back. */
        deadline_after(&next, e->flush_interval_ms);
        if (n > 0)
            export_body(e, encode_and_release(e, head, n), e->export_timeout_ms);
        pthread_mutex_lock(&e->lock);
    }
    /* Shutdown: what is queued gets one attempt, all of it within one
     * export_timeout; after a failure, or past that deadline, the rest is
     * counted as failed without trying. */
    uint64_t end = mono_ms() + e->export_timeout_ms;
    int give_up = 0;
    while (e->count > 0) {
        size_t n = e->count < e->batch_size ? e->count : e->batch_size;
        uint32_t head = e->head;
        pthread_mutex_unlock(&e->lock);
        uint64_t now = mono_ms();
        if (give_up || now >= end) {
            pthread_mutex_lock(&e->lock);
            e->head = (uint32_t)((head + n) % e->queue_size);
            e->count -= (uint32_t)n;
            pthread_mutex_unlock(&e->lock);
            atomic_fetch_add(&e->dropped_export_failed, n);
        } else if (export_body(e, encode_and_release(e, head, n), end - now) != 0) {
            give_up = 1;
        }
        pthread_mutex_lock(&e->lock);
    }
    /* Nothing reads the queue after stopping (submit drops first), so it
     * goes now rather than when the exporter is freed at exit. */
    free(e->ring);
    e->ring = NULL;
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void exporter_destroy(gh_trace_exporter_t *e)
{
    if (e->curl_headers != NULL)
        curl_slist_free_all(e->curl_headers);
    if (e->curl != NULL)
        curl_easy_cleanup(e->curl);
    free(e->body.data);
    free(e->ring);
    free(e->collector);
    free(e->collector_log);
    free(e->service_name);
    free(e);
}

gh_trace_exporter_t *gh_trace_exporter_new(const gh_tracing_conf_t *conf)
{
    gh_trace_exporter_t *e;
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    if (conf->collector == NULL || conf->queue_size == 0 || conf->batch_size == 0) {
        GH_LOG(GH_LOG_ERROR, COMPONENT, "exporter needs a collector and non-zero sizes");
        return NULL;
    }
    /* Refcounted by libcurl; not thread-safe before 7.84, so this is called
     * from the main thread at startup, as the rest of the program does. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        GH_LOG(GH_LOG_ERROR, COMPONENT, "curl_global_init failed");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        goto oom;
    e->queue_size = conf->queue_size;
    e->batch_size = conf->batch_size < conf->queue_size ? conf->batch_size : conf->queue_size;
    e->flush_interval_ms = conf->flush_interval_ms ? conf->flush_interval_ms : 1000;
    e->export_timeout_ms = conf->export_timeout_ms ? conf->export_timeout_ms : 2000;
    e->collector = strdup(conf->collector);
    e->collector_log = gh_url_redact(conf->collector);
    e->service_name = strdup(conf->service_name ? conf->service_name : "gatehouse");
    e->ring = calloc(e->queue_size, sizeof(slot_t));
    if (e->collector == NULL || e->collector_log == NULL || e->service_name == NULL ||
        e->ring == NULL)
        goto oom;

    e->curl = curl_easy_init();
    /* "Expect:" off: libcurl would otherwise wait for a 100 Continue before
     * sending a large body, which costs a round trip (or a second, against
     * a collector that never sends one). */
    e->curl_headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (e->curl_headers != NULL) {
        struct curl_slist *l = curl_slist_append(e->curl_headers, "Expect:");
        if (l == NULL) {
            curl_slist_free_all(e->curl_headers);
            e->curl_headers = NULL;
        }
    }
    if (e->curl == NULL || e->curl_headers == NULL)
        goto oom;
    /* NOSIGNAL: this is not the main thread, and libcurl's alarm()-based
     * DNS timeout would deliver SIGALRM to the whole process. */
    curl_easy_setopt(e->curl, CURLOPT_URL, e->collector);
    curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->curl_headers);
    curl_easy_setopt(e->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e->curl, CURLOPT_USERAGENT, "gatehouse-otlp");
    curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");

    if ((rc = pthread_mutex_init(&e->lock, NULL)) != 0)
        goto fail_rc;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&e->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&e->lock);
        goto fail_rc;
    }
    /* Signals belong to the main loop (SIGHUP, SIGTERM): the export thread
     * starts with all of them blocked and inherits nothing to handle. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&e->thread, NULL, export_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&e->wake);
        pthread_mutex_destroy(&e->lock);
        goto fail_rc;
    }
    GH_LOG(GH_LOG_INFO, COMPONENT, "exporting spans to %s (queue %u, batch %u)", e->collector_log,
           e->queue_size, e->batch_size);
    return e;

fail_rc:
    GH_LOG(GH_LOG_ERROR, COMPONENT, "starting the exporter: %s", strerror(rc));
    exporter_destroy(e);
    curl_global_cleanup();
    return NULL;
oom:
    GH_LOG(GH_LOG_ERROR, COMPONENT, "starting the exporter: out of memory");
    if (e != NULL)
        exporter_destroy(e);
    curl_global_cleanup();
    return NULL;
}

int gh_trace_exporter_submit(gh_trace_exporter_t *e, const gh_span_t *span)
{
    if (e == NULL || !span->ctx.sampled)
        return 0;
    pthread_mutex_lock(&e->lock);
    if (e->count == e->queue_size || e->stopping) {
        pthread_mutex_unlock(&e->lock);
        atomic_fetch_add(&e->dropped_queue_full, 1);
        return -1;
    }
    slot_fill(&e->ring[(e->head + e->count) % e->queue_size], span);
    e->count++;
    if (e->count == e->batch_size)
        pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

void gh_trace_exporter_stats(gh_trace_exporter_t *e, gh_trace_stats_t *out)
{
    if (e == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    out->exported = atomic_load(&e->exported);
    out->dropped_queue_full = atomic_load(&e->dropped_queue_full);
    out->dropped_export_failed = atomic_load(&e->dropped_export_failed);
    out->export_requests = atomic_load(&e->export_requests);
}

/* Never waits for the export thread: it may be inside a request to a
 * collector that takes export_timeout to give up, and the caller is the
 * main loop that answers /live (joining here once held it for 9 s). */
void gh_trace_exporter_stop(gh_trace_exporter_t *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = 1;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

int gh_trace_exporter_reap(gh_trace_exporter_t *e)
{
    if (e == NULL || e->joined)
        return 1;
    if (pthread_tryjoin_np(e->thread, NULL) != 0)
        return 0;
    e->joined = 1;
    return 1;
}

void gh_trace_exporter_free(gh_trace_exporter_t *e)
{
    if (e == NULL)
        return;
    gh_trace_exporter_stop(e);
    if (!e->joined)
        pthread_join(e->thread, NULL);
    e->joined = 1;
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    exporter_destroy(e);
    curl_global_cleanup();
}
