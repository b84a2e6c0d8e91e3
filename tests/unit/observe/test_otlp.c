/* The OTLP/HTTP JSON exporter, against a collector stand-in on 127.0.0.1
 * (a blocking socket server on its own thread): the shape of what arrives,
 * batching and flushing, and that a down, slow or refusing collector costs
 * counted spans and never submit latency. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <gatehouse/log.h>
#include <gatehouse/trace.h>

#include "observe/otlp.h"

/* ---- collector stand-in ---- */

#define MAX_BODIES 64

typedef struct {
    int fd;
    int port;
    int status;  /* answer with this */
    int slow_ms; /* sleep before answering */
    _Atomic int stop;
    pthread_t thread;
    pthread_mutex_t lock;
    char *bodies[MAX_BODIES];
    char paths[MAX_BODIES][64];
    char content_types[MAX_BODIES][64];
    int num_bodies;
    int requests_started;
} collector_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads until the stop flag or data; 0 on EOF/stop. */
static ssize_t read_some(collector_t *c, int fd, char *buf, size_t cap)
{
    while (!c->stop) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r > 0)
            return read(fd, buf, cap);
    }
    return 0;
}

static void header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r");
            if (l >= cap)
                l = cap - 1;
            memcpy(out, v, l);
            out[l] = '\0';
            return;
        }
    }
}

static void serve_conn(collector_t *c, int fd)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    for (;;) {
        char *end;
        while ((end = (len > 0 ? strstr(buf, "\r\n\r\n") : NULL)) == NULL) {
            if (len == cap) {
                char *p = realloc(buf, 2 * cap + 1);
                assert_non_null(p);
                buf = p;
                cap *= 2;
            }
            ssize_t r = read_some(c, fd, buf + len, cap - len);
            if (r <= 0)
                goto out;
            len += (size_t)r;
            buf[len] = '\0';
        }
        pthread_mutex_lock(&c->lock);
        c->requests_started++;
        pthread_mutex_unlock(&c->lock);
        size_t head_len = (size_t)(end - buf) + 4;
        char cl[32], ct[64], path[64];
        end[2] = '\0';
        header_value(buf, "content-length", cl, sizeof(cl));
        header_value(buf, "content-type", ct, sizeof(ct));
        sscanf(buf, "%*s %63s", path);
        size_t body_len = (size_t)strtoul(cl, NULL, 10);
        while (len < head_len + body_len) {
            if (len == cap) {
                char *p = realloc(buf, 2 * cap + 1);
                assert_non_null(p);
                buf = p;
                cap *= 2;
            }
            ssize_t r = read_some(c, fd, buf + len, cap - len);
            if (r <= 0)
                goto out;
            len += (size_t)r;
        }
        char *body = strndup(buf + head_len, body_len);
        pthread_mutex_lock(&c->lock);
        if (c->num_bodies < MAX_BODIES) {
            snprintf(c->paths[c->num_bodies], 64, "%s", path);
            snprintf(c->content_types[c->num_bodies], 64, "%s", ct);
            c->bodies[c->num_bodies++] = body;
        } else {
            free(body);
        }
        pthread_mutex_unlock(&c->lock);
        for (int slept = 0; slept < c->slow_ms && !c->stop; slept += 10)
            sleep_ms(10);
        char resp[128];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Content-Length: 2\r\n\r\n{}",
                         c->status);
        if (write(fd, resp, (size_t)n) != n)
            goto out;
        memmove(buf, buf + head_len + body_len, len - head_len - body_len);
        len -= head_len + body_len;
        buf[len] = '\0';
    }
out:
    free(buf);
    close(fd);
}

static void *collector_main(void *arg)
{
    collector_t *c = arg;
    while (!c->stop) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(c->fd, NULL, NULL);
        if (fd >= 0)
            serve_conn(c, fd);
    }
    return NULL;
}

static int listen_any(int *port)
{
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static collector_t *collector_start(int status, int slow_ms)
{
    collector_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->status = status;
    c->slow_ms = slow_ms;
    pthread_mutex_init(&c->lock, NULL);
    c->fd = listen_any(&c->port);
    assert_int_equal(pthread_create(&c->thread, NULL, collector_main, c), 0);
    return c;
}

static void collector_stop(collector_t *c)
{
    c->stop = 1;
    pthread_join(c->thread, NULL);
    close(c->fd);
    for (int i = 0; i < c->num_bodies; i++)
        free(c->bodies[i]);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int collector_bodies(collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->num_bodies;
    pthread_mutex_unlock(&c->lock);
    return n;
}

static int collector_started(collector_t *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->requests_started;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Waits (with a generous deadline) for the export thread to end. */
static void wait_reaped(gh_trace_exporter_t *e)
{
    uint64_t end = now_ms() + 30000;
    while (!gh_trace_exporter_reap(e) && now_ms() < end)
        sleep_ms(10);
    assert_int_equal(gh_trace_exporter_reap(e), 1);
}

static int wait_bodies(collector_t *c, int n, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (collector_bodies(c) < n && now_ms() < end)
        sleep_ms(10);
    return collector_bodies(c);
}

/* A port with nothing listening: bound, then closed. */
static int dead_port(void)
{
    int port;
    int fd = listen_any(&port);
    close(fd);
    return port;
}

/* ---- helpers ---- */

static char url_buf[128];
static char service[] = "orders-gw";

static gh_tracing_conf_t conf_for(int port, uint32_t queue, uint32_t batch, uint64_t flush_ms,
                                  uint64_t timeout_ms)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d/v1/traces", port);
    gh_tracing_conf_t c = {
        .enabled = 1,
        .collector = url_buf,
        .sampling = 1.0,
        .service_name = service,
        .queue_size = queue,
        .batch_size = batch,
        .flush_interval_ms = flush_ms,
        .export_timeout_ms = timeout_ms,
    };
    return c;
}

static uint64_t rnd_state = 12345;

static uint64_t rnd(void *arg)
{
    (void)arg;
    uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static gh_span_t make_span(int status)
{
    gh_span_t s = {0};
    gh_trace_start(&s.ctx, NULL, 1.0, rnd, NULL);
    s.start_unix_ns = 1700000000123456789ULL;
    s.end_unix_ns = 1700000000223456789ULL;
    s.method = "GET";
    s.path = "/orders/42";
    s.query = "page=2";
    s.scheme = "http";
    s.route = "orders";
    s.status = status;
    s.server_address = "api.example.com";
    s.server_port = 8080;
    s.client_address = "127.0.0.1";
    s.user_agent = "curl/8.0";
    s.upstream = "127.0.0.1:9000";
    s.request_id = "req-1";
    s.protocol_minor = 1;
    return s;
}

static int is_hex_len(const char *s, size_t n)
{
    if (s == NULL || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

static int is_decimal(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
    }
    return 1;
}

/* Checks the ExportTraceServiceRequest shape and returns the spans array
 * (borrowed from root). */
static json_t *check_shape(json_t *root)
{
    json_t *rs = json_object_get(root, "resourceSpans");
    assert_true(json_is_array(rs));
    assert_int_equal(json_array_size(rs), 1);
    json_t *r0 = json_array_get(rs, 0);
    json_t *attrs = json_object_get(json_object_get(r0, "resource"), "attributes");
    assert_true(json_is_array(attrs));
    json_t *a0 = json_array_get(attrs, 0);
    assert_string_equal(json_string_value(json_object_get(a0, "key")), "service.name");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a0, "value"), "stringValue")),
        "orders-gw");
    json_t *ss = json_object_get(r0, "scopeSpans");
    assert_true(json_is_array(ss));
    assert_int_equal(json_array_size(ss), 1);
    json_t *s0 = json_array_get(ss, 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(s0, "scope"), "name")),
                        "gatehouse");
    json_t *spans = json_object_get(s0, "spans");
    assert_true(json_is_array(spans));
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        assert_true(is_hex_len(json_string_value(json_object_get(sp, "traceId")), 32));
        assert_true(is_hex_len(json_string_value(json_object_get(sp, "spanId")), 16));
        json_t *p = json_object_get(sp, "parentSpanId");
        if (p != NULL)
            assert_true(is_hex_len(json_string_value(p), 16));
        assert_true(json_is_string(json_object_get(sp, "name")));
        assert_int_equal(json_integer_value(json_object_get(sp, "kind")), 2);
        const char *st = json_string_value(json_object_get(sp, "startTimeUnixNano"));
        const char *et = json_string_value(json_object_get(sp, "endTimeUnixNano"));
        assert_true(is_decimal(st));
        assert_true(is_decimal(et));
        assert_true(strtoull(st, NULL, 10) <= strtoull(et, NULL, 10));
        json_t *at = json_object_get(sp, "attributes");
        assert_true(json_is_array(at));
        size_t j;
        json_t *a;
        json_array_foreach(at, j, a)
        {
            assert_true(json_is_string(json_object_get(a, "key")));
            json_t *v = json_object_get(a, "value");
            assert_true(json_is_object(v));
            assert_int_equal(json_object_size(v), 1);
            json_t *iv = json_object_get(v, "intValue");
            if (iv != NULL)
                assert_true(is_decimal(json_string_value(iv)));
            else
                assert_true(json_is_string(json_object_get(v, "stringValue")));
        }
        assert_true(json_is_object(json_object_get(sp, "status")));
    }
    return spans;
}

static json_t *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_object_get(a, "value");
    }
    return NULL;
}

static const char *attr_s(json_t *span, const char *key)
{
    return json_string_value(json_object_get(attr(span, key), "stringValue"));
}

static const char *attr_i(json_t *span, const char *key)
{
    return json_string_value(json_object_get(attr(span, key), "intValue"));
}

static json_t *parse(const char *body)
{
    json_error_t err;
    json_t *root = json_loads(body, 0, &err);
    if (root == NULL)
        fail_msg("invalid JSON (%s): %.200s", err.text, body);
    return root;
}

/* ---- tests ---- */

static void test_export_shape(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 0);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 3, 60000, 2000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);

    gh_span_t root = make_span(200);
    gh_span_t child = make_span(503);
    gh_h1_header_t in_h[] = {
        {"traceparent", 11, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55},
        {"tracestate", 10, "rojo=00f067aa0ba902b7", 21}};
    gh_trace_ctx_t in;
    assert_int_equal(gh_trace_extract(in_h, 2, &in), 1);
    gh_trace_start(&child.ctx, &in, 0.0, rnd, NULL);
    child.error = "upstream_timeout";
    gh_span_t bare = {0};
    gh_trace_start(&bare.ctx, NULL, 1.0, rnd, NULL);
    bare.start_unix_ns = 5;
    bare.end_unix_ns = 6;
    gh_span_t unsampled = make_span(200);
    unsampled.ctx.sampled = 0;

    assert_int_equal(gh_trace_exporter_submit(e, &unsampled), 0);
    assert_int_equal(gh_trace_exporter_submit(e, &root), 0);
    assert_int_equal(gh_trace_exporter_submit(e, &child), 0);
    assert_int_equal(gh_trace_exporter_submit(e, &bare), 0);
    /* batch_size 3 reached: sent at once, not after the 60 s interval */
    assert_int_equal(wait_bodies(c, 1, 5000), 1);
    assert_string_equal(c->paths[0], "/v1/traces");
    assert_string_equal(c->content_types[0], "application/json");

    json_t *doc = parse(c->bodies[0]);
    json_t *spans = check_shape(doc);
    assert_int_equal(json_array_size(spans), 3);

    json_t *s0 = json_array_get(spans, 0);
    char tid[33];
    gh_trace_id_hex(&root.ctx, tid);
    assert_string_equal(json_string_value(json_object_get(s0, "traceId")), tid);
    assert_null(json_object_get(s0, "parentSpanId"));
    assert_null(json_object_get(s0, "traceState"));
    assert_string_equal(json_string_value(json_object_get(s0, "name")), "GET orders");
    assert_string_equal(json_string_value(json_object_get(s0, "startTimeUnixNano")),
                        "1700000000123456789");
    assert_string_equal(json_string_value(json_object_get(s0, "endTimeUnixNano")),
                        "1700000000223456789");
    assert_string_equal(attr_s(s0, "http.request.method"), "GET");
    assert_string_equal(attr_s(s0, "url.path"), "/orders/42");
    assert_string_equal(attr_s(s0, "url.query"), "page=2");
    assert_string_equal(attr_s(s0, "url.scheme"), "http");
    assert_string_equal(attr_s(s0, "http.route"), "orders");
    assert_string_equal(attr_i(s0, "http.response.status_code"), "200");
    assert_string_equal(attr_s(s0, "server.address"), "api.example.com");
    assert_string_equal(attr_i(s0, "server.port"), "8080");
    assert_string_equal(attr_s(s0, "client.address"), "127.0.0.1");
    assert_string_equal(attr_s(s0, "user_agent.original"), "curl/8.0");
    assert_string_equal(attr_s(s0, "network.protocol.version"), "1.1");
    assert_string_equal(attr_s(s0, "gatehouse.upstream"), "127.0.0.1:9000");
    assert_string_equal(attr_s(s0, "gatehouse.request_id"), "req-1");
    assert_null(attr(s0, "error.type"));
    assert_int_equal(json_object_size(json_object_get(s0, "status")), 0);

    json_t *s1 = json_array_get(spans, 1);
    assert_string_equal(json_string_value(json_object_get(s1, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(s1, "parentSpanId")), "00f067aa0ba902b7");
    assert_string_equal(json_string_value(json_object_get(s1, "traceState")),
                        "rojo=00f067aa0ba902b7");
    assert_string_equal(attr_s(s1, "error.type"), "upstream_timeout");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s1, "status"), "code")), 2);

    /* NULL strings and zero ints leave their attributes out. */
    json_t *s2 = json_array_get(spans, 2);
    assert_string_equal(json_string_value(json_object_get(s2, "name")), "HTTP");
    assert_null(attr(s2, "http.request.method"));
    assert_null(attr(s2, "url.path"));
    assert_null(attr(s2, "http.response.status_code"));
    assert_null(attr(s2, "server.port"));
    json_decref(doc);

    gh_trace_stats_t st;
    uint64_t end = now_ms() + 2000;
    do {
        gh_trace_exporter_stats(e, &st);
    } while (st.exported < 3 && now_ms() < end);
    assert_int_equal(st.exported, 3);
    assert_int_equal(st.export_requests, 1);
    assert_int_equal(st.dropped_queue_full, 0);
    assert_int_equal(st.dropped_export_failed, 0);
    gh_trace_exporter_free(e);
    collector_stop(c);
}

static void test_flush_interval(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 0);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 100, 100, 2000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    gh_span_t s = make_span(200);
    assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    assert_int_equal(wait_bodies(c, 1, 3000), 1);
    json_t *doc = parse(c->bodies[0]);
    assert_int_equal(json_array_size(check_shape(doc)), 1);
    json_decref(doc);
    gh_trace_exporter_free(e);
    collector_stop(c);
}

static void test_batches_split(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 0);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 4, 60000, 2000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    for (int i = 0; i < 10; i++) {
        gh_span_t s = make_span(200);
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    }
    /* Two full batches go at once; free flushes the last two. */
    assert_true(wait_bodies(c, 2, 5000) >= 2);
    gh_trace_exporter_free(e);
    size_t total = 0;
    for (int i = 0; i < c->num_bodies; i++) {
        json_t *doc = parse(c->bodies[i]);
        size_t n = json_array_size(check_shape(doc));
        assert_true(n >= 1 && n <= 4);
        total += n;
        json_decref(doc);
    }
    assert_int_equal(total, 10);
    collector_stop(c);
}

static void test_free_flushes(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 0);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 100, 60000, 2000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    gh_span_t s = make_span(200);
    assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    assert_int_equal(collector_bodies(c), 0);
    gh_trace_exporter_free(e);
    assert_int_equal(collector_bodies(c), 1);
    json_t *doc = parse(c->bodies[0]);
    assert_int_equal(json_array_size(check_shape(doc)), 2);
    json_decref(doc);
    collector_stop(c);
    gh_trace_exporter_free(NULL);
}

static void test_collector_down(void **state)
{
    (void)state;
    gh_tracing_conf_t conf = conf_for(dead_port(), 1000, 10, 50, 300);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    /* A connect that fails or hangs is the export thread's problem only:
     * every submit is taken (the queue holds them all). */
    for (int i = 0; i < 200; i++) {
        gh_span_t s = make_span(200);
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
        if (i % 20 == 0)
            sleep_ms(5);
    }
    gh_trace_stats_t st;
    uint64_t end = now_ms() + 5000;
    do {
        sleep_ms(10);
        gh_trace_exporter_stats(e, &st);
    } while (st.dropped_export_failed < 200 && now_ms() < end);
    assert_int_equal(st.dropped_export_failed, 200);
    assert_int_equal(st.exported, 0);
    assert_true(st.export_requests >= 1);
    gh_trace_exporter_free(e);
}

static void test_collector_refuses(void **state)
{
    (void)state;
    collector_t *c = collector_start(503, 0);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 5, 60000, 2000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    for (int i = 0; i < 5; i++) {
        gh_span_t s = make_span(200);
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    }
    assert_int_equal(wait_bodies(c, 1, 5000), 1);
    gh_trace_stats_t st;
    uint64_t end = now_ms() + 2000;
    do {
        sleep_ms(10);
        gh_trace_exporter_stats(e, &st);
    } while (st.dropped_export_failed < 5 && now_ms() < end);
    assert_int_equal(st.dropped_export_failed, 5);
    assert_int_equal(st.exported, 0);
    /* Not retried: once the export thread has ended, the one request is
     * all the exporter sent and all the collector saw. */
    gh_trace_exporter_stop(e);
    wait_reaped(e);
    gh_trace_exporter_stats(e, &st);
    assert_int_equal(st.export_requests, 1);
    assert_int_equal(collector_bodies(c), 1);
    gh_trace_exporter_free(e);
    collector_stop(c);
}

static void test_collector_slow_and_queue_full(void **state)
{
    (void)state;
    /* The collector takes 3 s; the exporter gives it 400 ms. */
    collector_t *c = collector_start(200, 3000);
    gh_tracing_conf_t conf = conf_for(c->port, 4, 4, 60000, 400);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    gh_span_t s = make_span(200);
    for (int i = 0; i < 4; i++)
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    /* Wait until that batch is on the wire: it has left the queue. */
    uint64_t end = now_ms() + 3000;
    while (collector_started(c) < 1 && now_ms() < end)
        sleep_ms(5);
    assert_int_equal(collector_started(c), 1);

    for (int i = 0; i < 4; i++)
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_trace_exporter_submit(e, &s), -1);

    gh_trace_stats_t st;
    gh_trace_exporter_stats(e, &st);
    assert_int_equal(st.dropped_queue_full, 3);

    /* The slow batch times out; the queued one goes next and times out too;
     * free then has nothing left and returns promptly. */
    end = now_ms() + 5000;
    do {
        sleep_ms(10);
        gh_trace_exporter_stats(e, &st);
    } while (st.dropped_export_failed < 8 && now_ms() < end);
    assert_int_equal(st.dropped_export_failed, 8);
    assert_int_equal(st.exported, 0);
    gh_trace_exporter_free(e);
    collector_stop(c);
}

static void test_free_bounded_by_timeout(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 3000);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 2, 60000, 300);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    gh_span_t s = make_span(200);
    /* Five batches queued behind a collector that would take 3 s each:
     * shutdown gives them one export_timeout in all, not one each. After
     * one batch fails at that deadline the rest are counted without being
     * tried (a batch already on the wire when stop came may fail first). */
    for (int i = 0; i < 10; i++)
        assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    gh_trace_exporter_stop(e);
    wait_reaped(e);
    gh_trace_stats_t st;
    gh_trace_exporter_stats(e, &st);
    assert_int_equal(st.dropped_export_failed, 10);
    assert_int_equal(st.exported, 0);
    assert_in_range(st.export_requests, 1, 2);
    gh_trace_exporter_free(e);
    collector_stop(c);
}

/* stop is called by the main loop on reload: it must not wait for an
 * export in flight (joining the thread there held /live for 9 s behind a
 * slow collector). The collector here holds its answer until it is
 * stopped; stop returns while the request is still unanswered. */
static void test_stop_does_not_wait_for_export(void **state)
{
    (void)state;
    collector_t *c = collector_start(200, 600000);
    gh_tracing_conf_t conf = conf_for(c->port, 64, 1, 60000, 60000);
    gh_trace_exporter_t *e = gh_trace_exporter_new(&conf);
    assert_non_null(e);
    gh_span_t s = make_span(200);
    assert_int_equal(gh_trace_exporter_submit(e, &s), 0);
    assert_int_equal(wait_bodies(c, 1, 10000), 1);
    gh_trace_exporter_stop(e);
    gh_trace_stats_t st;
    gh_trace_exporter_stats(e, &st);
    assert_int_equal(st.exported + st.dropped_export_failed, 0);
    assert_int_equal(gh_trace_exporter_reap(e), 0);
    /* Later submits are counted drops, not queued. */
    assert_int_equal(gh_trace_exporter_submit(e, &s), -1);
    collector_stop(c); /* answers the held request */
    wait_reaped(e);
    gh_trace_exporter_stats(e, &st);
    assert_int_equal(st.exported, 1);
    assert_int_equal(st.dropped_queue_full, 1);
    gh_trace_exporter_free(e);
}

static void test_json_string_escaping(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want; /* as decoded by jansson */
    } cases[] = {
        {"plain", "plain"},
        {"q\"b\\s/", "q\"b\\s/"},
        {"\x01\x1f\t\n\x7f", "\x01\x1f\t\n\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"bad\xff", "bad\xef\xbf\xbd"},
        {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},
        {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gh_otlp_buf_t b = {0};
        gh_otlp_put_string(&b, cases[i].in);
        assert_false(b.failed);
        char *s = strndup(b.data, b.len);
        json_error_t err;
        json_t *v = json_loads(s, JSON_DECODE_ANY, &err);
        if (v == NULL)
            fail_msg("case %zu: %s: %s", i, err.text, s);
        assert_string_equal(json_string_value(v), cases[i].want);
        json_decref(v);
        free(s);
        free(b.data);
    }
}

static void test_encode_unknown_method_and_truncation(void **state)
{
    (void)state;
    char path[3000];
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    /* A two-byte character straddling the 1024-byte cap. */
    path[1023] = '\xc3';
    path[1024] = '\xa9';
    path[sizeof(path) - 1] = '\0';
    gh_span_t s = make_span(404);
    s.method = "PURGE";
    s.path = path;
    s.route = NULL;
    s.protocol_minor = 0;
    char *body = gh_otlp_encode_span("orders-gw", &s);
    assert_non_null(body);
    json_t *doc = parse(body);
    json_t *sp = json_array_get(check_shape(doc), 0);
    assert_string_equal(json_string_value(json_object_get(sp, "name")), "HTTP");
    assert_string_equal(attr_s(sp, "http.request.method"), "_OTHER");
    assert_string_equal(attr_s(sp, "http.request.method_original"), "PURGE");
    assert_string_equal(attr_s(sp, "network.protocol.version"), "1.0");
    const char *p = attr_s(sp, "url.path");
    assert_non_null(p);
    assert_int_equal(strlen(p), 1023 + 3); /* 1023 bytes + U+FFFD */
    /* 4xx on a server span is not an error */
    assert_null(attr(sp, "error.type"));
    assert_int_equal(json_object_size(json_object_get(sp, "status")), 0);
    json_decref(doc);
    free(body);

    s = make_span(502);
    s.route = "a \"quoted\" route";
    body = gh_otlp_encode_span("orders-gw", &s);
    doc = parse(body);
    sp = json_array_get(check_shape(doc), 0);
    assert_string_equal(json_string_value(json_object_get(sp, "name")), "GET a \"quoted\" route");
    assert_string_equal(attr_s(sp, "error.type"), "502");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(sp, "status"), "code")), 2);
    json_decref(doc);
    free(body);
}

int main(void)
{
    gh_log_threshold = GH_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_string_escaping),
        cmocka_unit_test(test_encode_unknown_method_and_truncation),
        cmocka_unit_test(test_export_shape),
        cmocka_unit_test(test_flush_interval),
        cmocka_unit_test(test_batches_split),
        cmocka_unit_test(test_free_flushes),
        cmocka_unit_test(test_collector_down),
        cmocka_unit_test(test_collector_refuses),
        cmocka_unit_test(test_collector_slow_and_queue_full),
        cmocka_unit_test(test_free_bounded_by_timeout),
        cmocka_unit_test(test_stop_does_not_wait_for_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
