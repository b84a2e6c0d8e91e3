/*
 * Metrics (src/observe/metrics.c): the label registry, per-worker shards
 * summed by gh_metrics_render(), the text exposition (parsed back here line
 * by line), extra sources, endpoint reads, and gh_metrics_shutdown() (the
 * ASan build's leak check sees whether it frees everything).
 *
 * The registry is process-wide: every test ends with gh_metrics_shutdown(),
 * which empties it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/metrics.h>

/* ---- a parser for the exposition text ---- */

#define MAX_LABELS 8

typedef struct {
    char name[128];
    int num_labels;
    char lname[MAX_LABELS][64];
    char lvalue[MAX_LABELS][256]; /* unescaped */
    char value[64];
} sample_t;

/* Parses one sample line; fails the test on a malformed one. */
static void parse_line(const char *s, size_t n, sample_t *out)
{
    size_t i = 0;
    memset(out, 0, sizeof(*out));
    while (i < n && s[i] != '{' && s[i] != ' ') {
        char c = s[i];
        assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9'));
        assert_true(i < sizeof(out->name) - 1);
        out->name[i] = c;
        i++;
    }
    assert_true(i > 0 && i < n);
    if (s[i] == '{') {
        i++;
        for (;;) {
            assert_true(out->num_labels < MAX_LABELS);
            size_t k = 0;
            while (i < n && s[i] != '=') {
                assert_true(k < 63);
                out->lname[out->num_labels][k++] = s[i++];
            }
            assert_true(k > 0);
            assert_true(i + 1 < n && s[i] == '=' && s[i + 1] == '"');
            i += 2;
            k = 0;
            char *v = out->lvalue[out->num_labels];
            while (i < n && s[i] != '"') {
                assert_true(s[i] != '\n');
                assert_true(k < 255);
                if (s[i] == '\\') {
                    assert_true(i + 1 < n);
                    char e = s[i + 1];
                    assert_true(e == '\\' || e == '"' || e == 'n');
                    v[k++] = e == 'n' ? '\n' : e;
                    i += 2;
                } else {
                    v[k++] = s[i++];
                }
            }
            assert_true(i < n);
            i++; /* closing quote */
            out->num_labels++;
            assert_true(i < n);
            if (s[i] == ',') {
                i++;
                continue;
            }
            assert_int_equal(s[i], '}');
            i++;
            break;
        }
    }
    assert_true(i < n && s[i] == ' ');
    i++;
    assert_true(n - i > 0 && n - i < sizeof(out->value));
    memcpy(out->value, s + i, n - i);
    for (size_t k = 0; out->value[k]; k++) {
        char c = out->value[k];
        assert_true((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' ||
                    c == 'I' || c == 'n' || c == 'f');
    }
}

typedef struct {
    sample_t *s;
    size_t n;
    char *text;
    size_t len;
} scrape_t;

static void scrape(scrape_t *sc)
{
    sc->text = gh_metrics_render(&sc->len);
    assert_non_null(sc->text);
    assert_true(sc->len > 0);
    assert_int_equal(sc->text[sc->len - 1], '\n');
    assert_int_equal(strlen(sc->text), sc->len); /* no NUL inside */
    size_t lines = 0;
    for (size_t i = 0; i < sc->len; i++)
        lines += sc->text[i] == '\n';
    sc->s = calloc(lines, sizeof(*sc->s));
    assert_non_null(sc->s);
    sc->n = 0;
    const char *p = sc->text, *end = sc->text + sc->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        if (*p == '#') {
            assert_true(strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0);
        } else {
            assert_true(nl > p);
            parse_line(p, (size_t)(nl - p), &sc->s[sc->n++]);
        }
        p = nl + 1;
    }
}

static void scrape_free(scrape_t *sc)
{
    free(sc->s);
    free(sc->text);
}

static const char *label(const sample_t *s, const char *name)
{
    for (int i = 0; i < s->num_labels; i++)
        if (strcmp(s->lname[i], name) == 0)
            return s->lvalue[i];
    return NULL;
}

/* The value of the sample named name whose labels include every given
 * name=value pair (NULL-terminated list); NULL when there is none. Fails if
 * there are several. */
static const char *find(const scrape_t *sc, const char *name, ...)
{
    const char *found = NULL;
    for (size_t i = 0; i < sc->n; i++) {
        const sample_t *s = &sc->s[i];
        if (strcmp(s->name, name) != 0)
            continue;
        va_list ap;
        va_start(ap, name);
        int ok = 1;
        const char *ln;
        while (ok && (ln = va_arg(ap, const char *)) != NULL) {
            const char *lv = va_arg(ap, const char *);
            const char *have = label(s, ln);
            ok = have != NULL && strcmp(have, lv) == 0;
        }
        va_end(ap);
        if (!ok)
            continue;
        if (found != NULL)
            fail_msg("two samples of %s match", name);
        found = s->value;
    }
    return found;
}

static size_t count_named(const scrape_t *sc, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < sc->n; i++)
        n += strcmp(sc->s[i].name, name) == 0;
    return n;
}

#define ASSERT_VALUE(sc, want, ...)                                                                \
    do {                                                                                           \
        const char *v_ = find((sc), __VA_ARGS__, NULL);                                            \
        if (v_ == NULL)                                                                            \
            fail_msg("no sample for %s", #__VA_ARGS__);                                            \
        assert_string_equal(v_, (want));                                                           \
    } while (0)

/* Every histogram in the scrape: buckets cumulative (non-decreasing in le
 * order), +Inf equal to _count, exactly GH_HIST_BUCKETS + 1 buckets. */
static void check_histograms(const scrape_t *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        const sample_t *s = &sc->s[i];
        size_t nl = strlen(s->name);
        if (nl < 7 || strcmp(s->name + nl - 7, "_bucket") != 0)
            continue;
        const char *le = label(s, "le");
        assert_non_null(le);
        if (strcmp(le, "+Inf") != 0)
            continue;
        /* the GH_HIST_BUCKETS samples before this one are its buckets */
        assert_true(i >= GH_HIST_BUCKETS);
        unsigned long long prev = 0;
        for (size_t b = i - GH_HIST_BUCKETS; b <= i; b++) {
            assert_string_equal(sc->s[b].name, s->name);
            unsigned long long v = strtoull(sc->s[b].value, NULL, 10);
            assert_true(v >= prev);
            prev = v;
            for (int k = 0; k < s->num_labels; k++)
                if (strcmp(s->lname[k], "le") != 0)
                    assert_string_equal(label(&sc->s[b], s->lname[k]), s->lvalue[k]);
        }
        assert_true(i + 2 < sc->n);
        char base[128];
        memcpy(base, s->name, nl - 7);
        base[nl - 7] = '\0';
        char cname[140];
        snprintf(cname, sizeof(cname), "%s_count", base);
        assert_string_equal(sc->s[i + 2].name, cname);
        assert_string_equal(sc->s[i + 2].value, s->value);
        snprintf(cname, sizeof(cname), "%s_sum", base);
        assert_string_equal(sc->s[i + 1].name, cname);
    }
}

static int teardown(void **state)
{
    (void)state;
    gh_metrics_shutdown();
    return 0;
}

/* ---- registry ---- */

static void test_ids_stable_and_distinct(void **state)
{
    (void)state;
    uint32_t a = gh_metrics_series_id("edge", "orders", "backend");
    uint32_t b = gh_metrics_series_id("edge", "orders", "other");
    uint32_t c = gh_metrics_series_id("edge", "users", "backend");
    uint32_t d = gh_metrics_series_id("admin", "orders", "backend");
    assert_int_not_equal(a, UINT32_MAX);
    assert_int_not_equal(a, b);
    assert_int_not_equal(a, c);
    assert_int_not_equal(a, d);
    assert_int_not_equal(b, c);
    assert_int_equal(gh_metrics_series_id("edge", "orders", "backend"), a);
    assert_int_equal(gh_metrics_series_id("edge", "orders", "other"), b);
    /* Equal strings at other addresses are the same labels. */
    char l[] = "edge", r[] = "orders", k[] = "backend";
    assert_int_equal(gh_metrics_series_id(l, r, k), a);
    /* NULL is not "" */
    uint32_t n1 = gh_metrics_series_id("edge", NULL, "backend");
    uint32_t n2 = gh_metrics_series_id("edge", "", "backend");
    assert_int_not_equal(n1, n2);
    assert_int_equal(gh_metrics_series_id("edge", NULL, "backend"), n1);

    /* Each kind numbers its own label sets. */
    uint32_t l0 = gh_metrics_listener_id("edge");
    uint32_t l1 = gh_metrics_listener_id("admin");
    assert_int_not_equal(l0, l1);
    assert_int_equal(gh_metrics_listener_id("edge"), l0);
    assert_int_equal(gh_metrics_route_id("edge", "orders"), gh_metrics_route_id("edge", "orders"));
    assert_int_not_equal(gh_metrics_route_id("edge", "orders"),
                         gh_metrics_route_id("edge", "users"));
    assert_int_equal(gh_metrics_cluster_id("x"), gh_metrics_cluster_id("x"));
    assert_int_equal(gh_metrics_endpoint_id("x", "1.2.3.4:80"),
                     gh_metrics_endpoint_id("x", "1.2.3.4:80"));
    assert_int_not_equal(gh_metrics_endpoint_id("x", "1.2.3.4:80"),
                         gh_metrics_endpoint_id("x", "1.2.3.4:81"));
    assert_int_equal(gh_metrics_decision_id("p", "deny", "expired"),
                     gh_metrics_decision_id("p", "deny", "expired"));
    assert_int_not_equal(gh_metrics_decision_id("p", "deny", "expired"),
                         gh_metrics_decision_id("p", "deny", "bad_signature"));
}

static void test_many_ids_grow(void **state)
{
    (void)state;
    uint32_t ids[300];
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        ids[i] = gh_metrics_cluster_id(name);
        assert_int_not_equal(ids[i], UINT32_MAX);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(ids[i], ids[j]);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(gh_metrics_cluster_id(name), ids[i]);
    }
}

static void test_stats_access(void **state)
{
    (void)state;
    gh_metrics_shard_t *s = gh_metrics_shard_new();
    assert_non_null(s);
    assert_null(gh_metrics_series(s, UINT32_MAX));
    assert_null(gh_metrics_route(s, GH_METRICS_MAX_IDS));
    assert_null(gh_metrics_series(NULL, 0));
    gh_series_stats_t *a = gh_metrics_series(s, 5);
    assert_non_null(a);
    assert_int_equal(a->codes[1], 0);
    assert_ptr_equal(gh_metrics_series(s, 5), a);     /* same slot every time */
    gh_series_stats_t *b = gh_metrics_series(s, 200); /* another chunk */
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    GH_STAT_INC(a->codes[1]);
    assert_int_equal(gh_metrics_series(s, 5)->codes[1], 1);
    assert_int_equal(b->codes[1], 0);
}

/* ---- rendering ---- */

static void test_render_sums_shards(void **state)
{
    (void)state;
    uint32_t sid = gh_metrics_series_id("edge", "orders", "backend");
    uint32_t sid_unused = gh_metrics_series_id("edge", "unused", "backend");
    uint32_t rid = gh_metrics_route_id("edge", "orders");
    uint32_t lid = gh_metrics_listener_id("edge");
    uint32_t cid = gh_metrics_cluster_id("backend");
    uint32_t did = gh_metrics_decision_id("okta", "deny", "expired");
    uint32_t did0 = gh_metrics_decision_id("okta", "allow", "ok");
    (void)sid_unused;

    gh_metrics_shard_t *s1 = gh_metrics_shard_new();
    gh_metrics_shard_t *s2 = gh_metrics_shard_new();
    assert_non_null(s1);
    assert_non_null(s2);

    GH_STAT_ADD(gh_metrics_series(s1, sid)->codes[1], 3);
    GH_STAT_ADD(gh_metrics_series(s2, sid)->codes[1], 4);
    GH_STAT_INC(gh_metrics_series(s2, sid)->codes[4]);

    gh_route_stats_t *r1 = gh_metrics_route(s1, rid), *r2 = gh_metrics_route(s2, rid);
    gh_hist_observe(&r1->duration, 500);
    gh_hist_observe(&r1->duration, 1000); /* on the bound: le="0.001" */
    gh_hist_observe(&r1->duration, 2000);
    gh_hist_observe(&r2->duration, 7000);
    gh_hist_observe(&r2->duration, 20000000); /* past 10s: +Inf only */
    GH_STAT_ADD(r1->bytes_in, 100);
    GH_STAT_ADD(r2->bytes_in, 23);
    GH_STAT_ADD(r1->bytes_out, 1000);
    GH_STAT_ADD(r2->bytes_out, 2000);

    /* conns_active may go below 0 in one shard (closed on another worker's
     * books); the sum wraps back. */
    gh_listener_stats_t *l1 = gh_metrics_listener(s1, lid), *l2 = gh_metrics_listener(s2, lid);
    GH_STAT_ADD(l1->conns_active, 3);
    GH_STAT_DEC(l2->conns_active);
    GH_STAT_ADD(l1->conns_total, 5);
    GH_STAT_ADD(l2->conns_total, 1);

    gh_cluster_stats_t *c1 = gh_metrics_cluster(s1, cid), *c2 = gh_metrics_cluster(s2, cid);
    GH_STAT_ADD(c1->conns_active, 2);
    GH_STAT_ADD(c2->conns_active, 1);
    GH_STAT_ADD(c1->conns_total, 10);
    GH_STAT_ADD(c2->conns_total, 20);
    GH_STAT_INC(c1->connect_failures);
    GH_STAT_ADD(c2->timeouts, 2);
    GH_STAT_ADD(c1->resets, 3);
    GH_STAT_ADD(c2->pool_hits, 4);
    gh_hist_observe(&c1->duration, 2500);
    gh_hist_observe(&c2->duration, 2501);

    GH_STAT_ADD(gh_metrics_decision(s1, did)->count, 2);
    GH_STAT_ADD(gh_metrics_decision(s2, did)->count, 5);
    (void)gh_metrics_decision(s1, did0); /* touched, still zero: not rendered */

    gh_stats_set_generation(42);

    scrape_t sc;
    scrape(&sc);
    check_histograms(&sc);

    ASSERT_VALUE(&sc, "42", "gatehouse_config_generation");
    ASSERT_VALUE(&sc, "1", "gatehouse_build_info", "version", GH_VERSION);

    ASSERT_VALUE(&sc, "7", "gatehouse_requests_total", "listener", "edge", "route", "orders",
                 "cluster", "backend", "code", "2xx");
    ASSERT_VALUE(&sc, "1", "gatehouse_requests_total", "listener", "edge", "route", "orders",
                 "cluster", "backend", "code", "5xx");
    /* zero classes and untouched series are left out */
    assert_int_equal(count_named(&sc, "gatehouse_requests_total"), 2);

#define RD "gatehouse_request_duration_seconds"
    ASSERT_VALUE(&sc, "2", RD "_bucket", "route", "orders", "le", "0.001");
    ASSERT_VALUE(&sc, "3", RD "_bucket", "route", "orders", "le", "0.0025");
    ASSERT_VALUE(&sc, "3", RD "_bucket", "route", "orders", "le", "0.005");
    ASSERT_VALUE(&sc, "4", RD "_bucket", "route", "orders", "le", "0.01");
    ASSERT_VALUE(&sc, "4", RD "_bucket", "route", "orders", "le", "10");
    ASSERT_VALUE(&sc, "5", RD "_bucket", "route", "orders", "le", "+Inf");
    ASSERT_VALUE(&sc, "5", RD "_count", "listener", "edge", "route", "orders");
    ASSERT_VALUE(&sc, "20.010500", RD "_sum", "listener", "edge", "route", "orders");
    assert_int_equal(count_named(&sc, RD "_bucket"), GH_HIST_BUCKETS + 1);
    ASSERT_VALUE(&sc, "123", "gatehouse_request_bytes_total", "listener", "edge", "route",
                 "orders");
    ASSERT_VALUE(&sc, "3000", "gatehouse_response_bytes_total", "listener", "edge", "route",
                 "orders");

    ASSERT_VALUE(&sc, "2", "gatehouse_downstream_connections_active", "listener", "edge");
    ASSERT_VALUE(&sc, "6", "gatehouse_downstream_connections_total", "listener", "edge");

    ASSERT_VALUE(&sc, "3", "gatehouse_upstream_connections_active", "cluster", "backend");
    ASSERT_VALUE(&sc, "30", "gatehouse_upstream_connections_total", "cluster", "backend");
    ASSERT_VALUE(&sc, "1", "gatehouse_upstream_connect_failures_total", "cluster", "backend");
    ASSERT_VALUE(&sc, "2", "gatehouse_upstream_timeouts_total", "cluster", "backend");
    ASSERT_VALUE(&sc, "3", "gatehouse_upstream_resets_total", "cluster", "backend");
    ASSERT_VALUE(&sc, "4", "gatehouse_upstream_pool_hits_total", "cluster", "backend");
#define UD "gatehouse_upstream_request_duration_seconds"
    ASSERT_VALUE(&sc, "0", UD "_bucket", "cluster", "backend", "le", "0.001");
    ASSERT_VALUE(&sc, "1", UD "_bucket", "cluster", "backend", "le", "0.0025");
    ASSERT_VALUE(&sc, "2", UD "_bucket", "cluster", "backend", "le", "0.005");
    ASSERT_VALUE(&sc, "2", UD "_bucket", "cluster", "backend", "le", "+Inf");
    ASSERT_VALUE(&sc, "2", UD "_count", "cluster", "backend");
    ASSERT_VALUE(&sc, "0.005001", UD "_sum", "cluster", "backend");

    ASSERT_VALUE(&sc, "7", "gatehouse_auth_decisions_total", "provider", "okta", "decision", "deny",
                 "reason", "expired");
    assert_int_equal(count_named(&sc, "gatehouse_auth_decisions_total"), 1);
    scrape_free(&sc);

    /* A later scrape sees later increments. */
    GH_STAT_INC(gh_metrics_series(s1, sid)->codes[1]);
    scrape(&sc);
    ASSERT_VALUE(&sc, "8", "gatehouse_requests_total", "route", "orders", "code", "2xx");
    scrape_free(&sc);
}

static void test_render_empty_registry(void **state)
{
    (void)state;
    scrape_t sc;
    scrape(&sc);
    assert_non_null(find(&sc, "gatehouse_config_generation", NULL));
    assert_int_equal(count_named(&sc, "gatehouse_requests_total"), 0);
    assert_int_equal(count_named(&sc, RD "_bucket"), 0);
    scrape_free(&sc);
}

static void test_reload_counters(void **state)
{
    (void)state;
    scrape_t sc;
    scrape(&sc);
    unsigned long long ok0 =
        strtoull(find(&sc, "gatehouse_config_reloads_total", "result", "ok", NULL), NULL, 10);
    unsigned long long bad0 =
        strtoull(find(&sc, "gatehouse_config_reloads_total", "result", "failed", NULL), NULL, 10);
    scrape_free(&sc);
    gh_stats_reload(1);
    gh_stats_reload(1);
    gh_stats_reload(0);
    scrape(&sc);
    assert_int_equal(
        strtoull(find(&sc, "gatehouse_config_reloads_total", "result", "ok", NULL), NULL, 10),
        ok0 + 2);
    assert_int_equal(
        strtoull(find(&sc, "gatehouse_config_reloads_total", "result", "failed", NULL), NULL, 10),
        bad0 + 1);
    scrape_free(&sc);
    gh_stats_set_generation(9);
    assert_int_equal(gh_stats_generation(), 9);
}

static void test_label_escaping(void **state)
{
    (void)state;
    static const char nasty[] = "a\"b\\c\nd";
    uint32_t sid = gh_metrics_series_id("edge", nasty, "back\"end");
    uint32_t rid = gh_metrics_route_id("edge", nasty);
    uint32_t lid = gh_metrics_listener_id("l\\1");
    uint32_t cid = gh_metrics_cluster_id("c\n1");
    uint32_t did = gh_metrics_decision_id("p\"", "deny", "r\\");
    gh_metrics_shard_t *s = gh_metrics_shard_new();
    GH_STAT_INC(gh_metrics_series(s, sid)->codes[3]);
    gh_hist_observe(&gh_metrics_route(s, rid)->duration, 1);
    GH_STAT_INC(gh_metrics_listener(s, lid)->conns_total);
    GH_STAT_INC(gh_metrics_cluster(s, cid)->conns_total);
    GH_STAT_INC(gh_metrics_decision(s, did)->count);

    scrape_t sc;
    scrape(&sc); /* the parser refuses raw quotes and newlines in values */
    check_histograms(&sc);
    ASSERT_VALUE(&sc, "1", "gatehouse_requests_total", "route", nasty, "cluster", "back\"end",
                 "code", "4xx");
    ASSERT_VALUE(&sc, "1", RD "_count", "route", nasty);
    ASSERT_VALUE(&sc, "1", RD "_bucket", "route", nasty, "le", "0.001");
    ASSERT_VALUE(&sc, "1", "gatehouse_downstream_connections_total", "listener", "l\\1");
    ASSERT_VALUE(&sc, "1", "gatehouse_upstream_connections_total", "cluster", "c\n1");
    ASSERT_VALUE(&sc, "1", "gatehouse_auth_decisions_total", "provider", "p\"", "reason", "r\\");
    /* and literally, as the exposition format spells it */
    assert_non_null(strstr(sc.text, "route=\"a\\\"b\\\\c\\nd\""));
    scrape_free(&sc);
}

/* ---- extra sources ---- */

static size_t extra_small(char *buf, size_t cap, void *arg)
{
    return (size_t)snprintf(buf, cap, "# TYPE extra_metric gauge\nextra_metric %d\n",
                            *(const int *)arg);
}

static int big_calls;

/* Needs more room than the renderer's first buffer. */
static size_t extra_big(char *buf, size_t cap, void *arg)
{
    (void)arg;
    big_calls++;
    size_t need = 0;
    char line[64];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof(line), "extra_big_total{i=\"%d\"} %d\n", i, i);
        if (need + (size_t)n < cap)
            memcpy(buf + need, line, (size_t)n);
        need += (size_t)n;
    }
    if (need < cap)
        buf[need] = '\0';
    return need;
}

static void test_extra_sources(void **state)
{
    (void)state;
    int v1 = 7, v2 = 8;
    gh_metrics_set_extra(extra_small, &v1);
    scrape_t sc;
    scrape(&sc);
    ASSERT_VALUE(&sc, "7", "extra_metric");
    scrape_free(&sc);

    /* Adding the same function again replaces its arg, not a second copy. */
    gh_metrics_set_extra(extra_small, &v2);
    scrape(&sc);
    ASSERT_VALUE(&sc, "8", "extra_metric");
    assert_int_equal(count_named(&sc, "extra_metric"), 1);
    scrape_free(&sc);

    big_calls = 0;
    gh_metrics_set_extra(extra_big, &v1);
    scrape(&sc);
    assert_true(big_calls >= 2); /* called again with more room */
    assert_int_equal(count_named(&sc, "extra_big_total"), 2000);
    ASSERT_VALUE(&sc, "1999", "extra_big_total", "i", "1999");
    ASSERT_VALUE(&sc, "0", "extra_big_total", "i", "0");
    ASSERT_VALUE(&sc, "8", "extra_metric");
    scrape_free(&sc);

    /* A NULL arg removes the source. */
    gh_metrics_set_extra(extra_small, NULL);
    gh_metrics_set_extra(extra_big, NULL);
    scrape(&sc);
    assert_int_equal(count_named(&sc, "extra_metric"), 0);
    assert_int_equal(count_named(&sc, "extra_big_total"), 0);
    scrape_free(&sc);
}

/* ---- endpoints ---- */

static void test_endpoint_read(void **state)
{
    (void)state;
    uint32_t e = gh_metrics_endpoint_id("backend", "10.0.0.1:80");
    uint32_t f = gh_metrics_endpoint_id("backend", "10.0.0.2:80");
    uint64_t act = 99, idle = 99;
    gh_metrics_endpoint_read(e, &act, &idle); /* no shards yet */
    assert_int_equal(act, 0);
    assert_int_equal(idle, 0);

    gh_metrics_shard_t *s1 = gh_metrics_shard_new();
    gh_metrics_shard_t *s2 = gh_metrics_shard_new();
    gh_metrics_shard_t *s3 = gh_metrics_shard_new(); /* never touches e */
    (void)s3;
    gh_endpoint_stats_t *a = gh_metrics_endpoint(s1, e), *b = gh_metrics_endpoint(s2, e);
    GH_STAT_ADD(a->active_requests, 2);
    GH_STAT_DEC(b->active_requests); /* -1 in this shard */
    GH_STAT_ADD(a->idle_conns, 3);
    GH_STAT_ADD(b->idle_conns, 1);
    GH_STAT_ADD(gh_metrics_endpoint(s1, f)->idle_conns, 50);

    gh_metrics_endpoint_read(e, &act, &idle);
    assert_int_equal(act, 1);
    assert_int_equal(idle, 4);
    gh_metrics_endpoint_read(f, &act, &idle);
    assert_int_equal(act, 0);
    assert_int_equal(idle, 50);
    act = idle = 99;
    gh_metrics_endpoint_read(UINT32_MAX, &act, &idle);
    assert_int_equal(act, 0);
    assert_int_equal(idle, 0);
}

/* ---- shutdown ---- */

static void test_shutdown_frees_and_resets(void **state)
{
    (void)state;
    /* Plenty to free: labels, several chunks per kind, several shards. */
    for (int k = 0; k < 3; k++) {
        gh_metrics_shard_t *s = gh_metrics_shard_new();
        char name[32];
        for (int i = 0; i < 150; i++) {
            snprintf(name, sizeof(name), "r%d", i);
            uint32_t id = gh_metrics_series_id("l", name, "c");
            GH_STAT_INC(gh_metrics_series(s, id)->codes[1]);
            GH_STAT_INC(gh_metrics_route(s, gh_metrics_route_id("l", name))->bytes_in);
            GH_STAT_INC(gh_metrics_cluster(s, gh_metrics_cluster_id(name))->conns_total);
            GH_STAT_INC(gh_metrics_endpoint(s, gh_metrics_endpoint_id(name, "a"))->idle_conns);
            GH_STAT_INC(gh_metrics_listener(s, gh_metrics_listener_id(name))->conns_total);
            GH_STAT_INC(gh_metrics_decision(s, gh_metrics_decision_id(name, "d", "r"))->count);
        }
    }
    scrape_t sc;
    scrape(&sc);
    assert_int_equal(count_named(&sc, "gatehouse_requests_total"), 150);
    ASSERT_VALUE(&sc, "3", "gatehouse_requests_total", "route", "r149", "code", "2xx");
    scrape_free(&sc);

    gh_metrics_shutdown();
    scrape(&sc);
    assert_int_equal(count_named(&sc, "gatehouse_requests_total"), 0);
    assert_int_equal(count_named(&sc, "gatehouse_upstream_connections_total"), 0);
    scrape_free(&sc);
    /* Ids start again from scratch; a shutdown twice is harmless. */
    assert_int_equal(gh_metrics_series_id("l", "r149", "c"), 0);
    gh_metrics_shutdown();
    gh_metrics_shutdown();
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ids_stable_and_distinct),
        T(test_many_ids_grow),
        T(test_stats_access),
        T(test_render_sums_shards),
        T(test_render_empty_registry),
        T(test_reload_counters),
        T(test_label_escaping),
        T(test_extra_sources),
        T(test_endpoint_read),
        T(test_shutdown_frees_and_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
