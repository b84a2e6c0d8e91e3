/*
 * The heads gatehouse forwards (src/proxy/forward.c): hop-by-hop removal
 * driven by Connection, the fields Connection may not remove, and framing
 * that is always gatehouse's own, checked over generated Connection lists
 * and every response shape in-process.
 *
 * Includes the .c to reach its statics, as H2O's unit tests do; the stream
 * is built by hand from a parsed head.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <strings.h>

#include <cmocka.h>

#include "../../../src/proxy/forward.c"

typedef struct {
    gh_stream_t s;
    gh_conn_t conn;
    gh_h1_header_t hdrs[256];
    gh_h1_header_t out[300];
    gh_cluster_t cluster;
    gh_endpoint_conf_t ep;
} fixture_t;

static void stream_init(fixture_t *f, const char *raw)
{
    memset(f, 0, sizeof(*f));
    gh_arena_init(&f->s.arena, 4096);
    snprintf(f->conn.peer, sizeof(f->conn.peer), "192.0.2.1");
    f->s.conn = &f->conn;
    snprintf(f->s.client, sizeof(f->s.client), "192.0.2.1");
    snprintf(f->s.request_id, sizeof(f->s.request_id), "rid");
    static char ep_addr[] = "127.0.0.1:9000";
    f->ep.address = ep_addr;
    f->cluster.endpoints = &f->ep;
    f->s.cluster = &f->cluster;
    gh_h1_limits_t lim = {65536, 256, 8192};
    gh_h1_error_t err;
    f->s.req.headers = f->hdrs;
    int r = gh_h1_request_parse(raw, strlen(raw), &lim, &f->s.req, &err);
    if (r <= 0)
        fail_msg("test request does not parse (%s):\n%s", err.detail ? err.detail : "", raw);
    /* The path and query as gh_stream_new leaves them (origin-form, or the
     * path of an absolute-form target); forward.c writes these. */
    const char *t = f->s.req.target, *end = t + f->s.req.target_len;
    const char *sch = memchr(t, ':', (size_t)(end - t));
    if (t < end && *t != '/' && sch != NULL && sch + 2 < end && sch[1] == '/' && sch[2] == '/') {
        const char *p = memchr(sch + 3, '/', (size_t)(end - sch - 3));
        t = p != NULL ? p : end;
    }
    const char *q = memchr(t, '?', (size_t)(end - t));
    f->s.path = t;
    f->s.path_len = (size_t)((q != NULL ? q : end) - t);
    if (f->s.path_len == 0) {
        f->s.path = "/";
        f->s.path_len = 1;
    }
    if (q != NULL) {
        f->s.query = q + 1;
        f->s.query_len = (size_t)(end - q - 1);
    }
}

/* Parses what gatehouse forwards with the same strict parser. */
static gh_h1_request_t forwarded(fixture_t *f)
{
    size_t len;
    char *head = gh_forward_request_head(&f->s, &len);
    assert_non_null(head);
    gh_h1_request_t out;
    gh_h1_limits_t lim = {65536, 300, 8192};
    gh_h1_error_t err;
    out.headers = f->out;
    int r = gh_h1_request_parse(head, len, &lim, &out, &err);
    if (r != (int)len)
        fail_msg("forwarded head does not parse (%s):\n%.*s", err.detail ? err.detail : "",
                 (int)len, head);
    return out;
}

static size_t count_fields(const gh_h1_request_t *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->num_headers; i++)
        if (gh_h1_name_is(&r->headers[i], name, strlen(name)))
            n++;
    return n;
}

static const char *const candidates[] = {
    "host",          "content-length",
    "authorization", "cookie",
    "x-a",           "x-b",
    "x-c",           "x-forwarded-for",
    "x-request-id",  "via",
    "x-real-ip",     "forwarded",
    "keep-alive",    "x-d",
};
#define NCAND (sizeof(candidates) / sizeof(candidates[0]))

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random subsets of names listed in one to three Connection fields with
 * random OWS and empty members: a listed name is gone upstream unless it is
 * one gatehouse relies on, which is there exactly as often as sent. */
static void test_connection_lists(void **state)
{
    (void)state;
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    static const char *const seps[] = {",", ", ", " ,", ",,", " , ,\t"};
    for (int iter = 0; iter < 3000; iter++) {
        char raw[4096];
        size_t o = 0;
        o += (size_t)snprintf(raw + o, sizeof(raw) - o, "POST /p HTTP/1.1\r\n");
        uint32_t listed = (uint32_t)next_rand() & ((1u << NCAND) - 1);
        int fields = 1 + (int)(next_rand() % 3);
        for (int k = 0; k < fields; k++) {
            o += (size_t)snprintf(raw + o, sizeof(raw) - o, "Connection: ");
            int first = 1;
            for (size_t i = 0; i < NCAND; i++) {
                if (!(listed & (1u << i)) || (int)(i % (size_t)fields) != k)
                    continue;
                if (!first)
                    o += (size_t)snprintf(raw + o, sizeof(raw) - o, "%s", seps[next_rand() % 5]);
                first = 0;
                /* Mixed case: Connection options are case-insensitive. */
                for (const char *c = candidates[i]; *c; c++)
                    raw[o++] = (next_rand() & 1) ? (char)toupper((unsigned char)*c) : *c;
            }
            o += (size_t)snprintf(raw + o, sizeof(raw) - o, "%s\r\n", first ? "close" : "");
        }
        for (size_t i = 0; i < NCAND; i++) {
            if (strcmp(candidates[i], "content-length") == 0)
                o += (size_t)snprintf(raw + o, sizeof(raw) - o, "Content-Length: 5\r\n");
            else
                o += (size_t)snprintf(raw + o, sizeof(raw) - o, "%s: v%zu\r\n", candidates[i], i);
        }
        o += (size_t)snprintf(raw + o, sizeof(raw) - o, "X-Keep: 1\r\n\r\n");
        raw[o] = '\0';
        stream_init(f, raw);
        f->s.peer_trusted = (next_rand() & 1) != 0;
        gh_h1_request_t out = forwarded(f);
        for (size_t i = 0; i < NCAND; i++) {
            const char *n = candidates[i];
            size_t got = count_fields(&out, n);
            size_t want;
            if (strcmp(n, "keep-alive") == 0)
                want = 0; /* hop-by-hop whatever Connection says */
            else if (strcmp(n, "forwarded") == 0)
                want = f->s.peer_trusted; /* kept from a trusted proxy only */
            else if (is_connection_protected(n, strlen(n)))
                want = 1; /* gatehouse's own, or kept: never removed */
            else
                want = (listed & (1u << i)) ? 0 : 1;
            if (got != want)
                fail_msg("%s: %zu upstream, want %zu, for:\n%s", n, got, want, raw);
        }
        assert_int_equal(count_fields(&out, "x-keep"), 1);
        assert_int_equal(count_fields(&out, "connection"), 0);
        assert_int_equal(out.body, GH_H1_BODY_LENGTH);
        assert_int_equal(out.content_length, 5);
        assert_true(gh_h1_name_is(&out.headers[0], "host", 4));
        gh_arena_dispose(&f->s.arena);
    }
    free(f);
}

/* No cap on Connection options: every one of 200 listed fields is gone. */
static void test_many_connection_tokens(void **state)
{
    (void)state;
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    static char raw[32768];
    size_t o = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nConnection: ");
    for (int i = 0; i < 200; i++)
        o += (size_t)snprintf(raw + o, sizeof(raw) - o, "%sx-h%d", i ? "," : "", i);
    o += (size_t)snprintf(raw + o, sizeof(raw) - o, "\r\n");
    for (int i = 0; i < 200; i += 8)
        o += (size_t)snprintf(raw + o, sizeof(raw) - o, "X-H%d: v\r\n", i);
    snprintf(raw + o, sizeof(raw) - o, "X-H200: kept\r\n\r\n");
    stream_init(f, raw);
    gh_h1_request_t out = forwarded(f);
    for (size_t i = 0; i < out.num_headers; i++)
        if (out.headers[i].name_len > 3 && strncasecmp(out.headers[i].name, "x-h", 3) == 0)
            assert_true(gh_h1_name_is(&out.headers[i], "x-h200", 6));
    assert_int_equal(count_fields(&out, "x-h200"), 1);
    gh_arena_dispose(&f->s.arena);
    free(f);
}

/* Request framing: a body-less request keeps "Content-Length: 0" when sent
 * and gets it for POST/PUT/PATCH; HTTP/1.0 without Host gets the
 * endpoint's. */
static void test_request_framing_and_host(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        const char *cl; /* NULL: none */
        const char *host;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "0", "a"},
        {"PUT / HTTP/1.1\r\nHost: a\r\n\r\n", "0", "a"},
        {"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", "0", "a"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "0", "a"},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", NULL, "a"},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n", "7", "a"},
        {"GET / HTTP/1.0\r\n\r\n", NULL, "127.0.0.1:9000"},
        {"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "0", "127.0.0.1:9000"},
        {"GET / HTTP/1.0\r\nHost: b:1\r\n\r\n", NULL, "b:1"},
    };
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        stream_init(f, cases[i].raw);
        gh_h1_request_t out = forwarded(f);
        size_t n = count_fields(&out, "content-length");
        if (cases[i].cl == NULL ? n != 0 : n != 1)
            fail_msg("%s: %zu content-length", cases[i].raw, n);
        if (cases[i].cl != NULL) {
            for (size_t j = 0; j < out.num_headers; j++)
                if (gh_h1_name_is(&out.headers[j], "content-length", 14))
                    assert_memory_equal(out.headers[j].value, cases[i].cl, strlen(cases[i].cl));
        }
        assert_int_equal(count_fields(&out, "host"), 1);
        const gh_h1_header_t *h = &out.headers[out.host_index];
        if (h->value_len != strlen(cases[i].host) ||
            memcmp(h->value, cases[i].host, h->value_len) != 0)
            fail_msg("%s: host '%.*s'", cases[i].raw, (int)h->value_len, h->value);
        gh_arena_dispose(&f->s.arena);
    }
    free(f);
}

/* Drops of several lengths, one past 64 bytes (its bit is len % 64, shared
 * with a short name's): each drops its own field and nothing else. */
static void test_drops_by_length(void **state)
{
    (void)state;
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    char longname[71];
    memset(longname, 'q', 70);
    longname[70] = '\0';
    char req[512];
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1\r\nHost: a\r\nx-api-key: k\r\nX-Consumer: m\r\n%s: 1\r\n"
             "x-qqqq: 2\r\nx-user: 3\r\nx-tenant: 4\r\n\r\n",
             longname);
    stream_init(f, req);
    assert_int_equal(gh_stream_drop_header_static(&f->s, "x-api-key", 9), 0);
    assert_int_equal(gh_stream_drop_header_static(&f->s, "x-consumer", 10), 0);
    assert_int_equal(gh_stream_drop_header_static(&f->s, longname, 70), 0);
    gh_h1_request_t out = forwarded(f);
    assert_int_equal(count_fields(&out, "x-api-key"), 0);
    assert_int_equal(count_fields(&out, "x-consumer"), 0);
    assert_int_equal(count_fields(&out, longname), 0);
    assert_int_equal(count_fields(&out, "x-qqqq"), 1); /* 6 = 70 % 64 */
    assert_int_equal(count_fields(&out, "x-user"), 1);
    assert_int_equal(count_fields(&out, "x-tenant"), 1);
    gh_arena_dispose(&f->s.arena);
    free(f);
}

/* A route's drop list is borrowed whole; drops added after it copy it
 * first (past the inline room too) and leave the route's list as it was. */
static void test_drop_lists(void **state)
{
    (void)state;
    static const char *const names[] = {"x-a1", "x-b22", "x-c333"};
    for (size_t listed = 1; listed <= 3; listed++) {
        gh_drop_list_t *l = gh_drop_list_new(names, listed);
        assert_non_null(l);
        for (size_t added = 0; added <= 6; added++) {
            fixture_t *f = malloc(sizeof(*f));
            assert_non_null(f);
            stream_init(f, "GET / HTTP/1.1\r\nHost: a\r\nx-a1: 1\r\nX_B22: 2\r\nx-c333: 3\r\n"
                           "x-d0: 4\r\nx-d1: 5\r\nx-d2: 6\r\nx-d3: 7\r\nx-d4: 8\r\n"
                           "x-d5: 9\r\nx-keep: 10\r\n\r\n");
            static const char *const more[] = {"x-d0", "x-d1", "x-d2", "x-d3", "x-d4", "x-d5"};
            if (added % 2 == 1) /* a drop before the list too */
                assert_int_equal(gh_stream_drop_header_static(&f->s, more[0], 4), 0);
            assert_int_equal(gh_stream_drop_list(&f->s, l), 0);
            for (size_t i = added % 2; i < added; i++)
                assert_int_equal(gh_stream_drop_header_static(&f->s, more[i], 4), 0);
            gh_h1_request_t out = forwarded(f);
            static const char *const sent[] = {"x-a1", "x_b22", "x-c333"};
            for (size_t i = 0; i < 3; i++)
                assert_int_equal(count_fields(&out, sent[i]), i < listed ? 0 : 1);
            for (size_t i = 0; i < 6; i++)
                assert_int_equal(count_fields(&out, more[i]), i < added ? 0 : 1);
            assert_int_equal(count_fields(&out, "x-keep"), 1);
            gh_arena_dispose(&f->s.arena);
            free(f);
        }
        /* Another stream borrowing the same list sees only its names. */
        fixture_t *f = malloc(sizeof(*f));
        assert_non_null(f);
        stream_init(f, "GET / HTTP/1.1\r\nHost: a\r\nx-d0: 1\r\nx-a1: 2\r\n\r\n");
        assert_int_equal(gh_stream_drop_list(&f->s, l), 0);
        gh_h1_request_t out = forwarded(f);
        assert_int_equal(count_fields(&out, "x-d0"), 1);
        assert_int_equal(count_fields(&out, "x-a1"), 0);
        gh_arena_dispose(&f->s.arena);
        free(f);
        gh_drop_list_free(l);
    }
}

/* gh_stream_replace_headers forwards byte for byte what
 * gh_stream_drop_list then gh_stream_add_header_lines do: the listed
 * client copies gone in any spelling (a drop made before it kept), the
 * lines there once, with NULL lists and no lines too. */
static void test_replace_headers(void **state)
{
    (void)state;
    static const char *const names[] = {"x-a1", "x-b22", "x-c333"};
    static const char *const lines[] = {"", "x-a1: set\r\n", "x-a1: set\r\nx-new: n\r\n"};
    static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nx-a1: 1\r\nX_B22: 2\r\nX-C333: 3\r\n"
                              "x-d0: 4\r\nx-keep: k\r\n\r\n";
    for (size_t listed = 0; listed <= 3; listed++) {
        gh_drop_list_t *l = listed > 0 ? gh_drop_list_new(names, listed) : NULL;
        assert_true(listed == 0 || l != NULL);
        for (size_t before = 0; before <= 1; before++) {
            for (size_t k = 0; k < 3; k++) {
                size_t len = strlen(lines[k]);
                fixture_t *f = malloc(sizeof(*f)), *g = malloc(sizeof(*g));
                assert_non_null(f);
                assert_non_null(g);
                stream_init(f, raw);
                stream_init(g, raw);
                if (before) {
                    assert_int_equal(gh_stream_drop_header_static(&f->s, "x-d0", 4), 0);
                    assert_int_equal(gh_stream_drop_header_static(&g->s, "x-d0", 4), 0);
                }
                assert_int_equal(gh_stream_replace_headers(&f->s, l, lines[k], len), 0);
                assert_int_equal(gh_stream_drop_list(&g->s, l), 0);
                if (len > 0)
                    assert_int_equal(gh_stream_add_header_lines(&g->s, lines[k], len), 0);
                size_t fl, gl;
                char *fh = gh_forward_request_head(&f->s, &fl);
                char *gh = gh_forward_request_head(&g->s, &gl);
                assert_non_null(fh);
                assert_non_null(gh);
                assert_int_equal(fl, gl);
                assert_memory_equal(fh, gh, fl);
                gh_h1_request_t out = forwarded(f);
                assert_int_equal(count_fields(&out, "x-a1"), (listed >= 1 ? 0 : 1) + (k > 0));
                assert_int_equal(count_fields(&out, "x_b22"), listed >= 2 ? 0 : 1);
                assert_int_equal(count_fields(&out, "x-c333"), listed >= 3 ? 0 : 1);
                assert_int_equal(count_fields(&out, "x-new"), k == 2);
                assert_int_equal(count_fields(&out, "x-d0"), before ? 0 : 1);
                assert_int_equal(count_fields(&out, "x-keep"), 1);
                if (listed >= 1 && k > 0) {
                    for (size_t i = 0; i < out.num_headers; i++)
                        if (gh_h1_name_is(&out.headers[i], "x-a1", 4))
                            assert_memory_equal(out.headers[i].value, "set", 3);
                }
                gh_arena_dispose(&f->s.arena);
                gh_arena_dispose(&g->s.arena);
                free(f);
                free(g);
            }
        }
        gh_drop_list_free(l);
    }
}

/* A filter's drop and gatehouse's forwarding drops match names the way a
 * CGI-style upstream reads them: '_' is '-'. */
static void test_drops_match_underscore_spellings(void **state)
{
    (void)state;
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    stream_init(f, "GET / HTTP/1.1\r\nHost: a\r\nX_User: admin\r\nx-USER: admin\r\n"
                   "X_Forwarded_For: 1.2.3.4\r\nX-Forwarded-Port: 1\r\nx_real_ip: 1.2.3.4\r\n"
                   "X_Request_Id: r\r\nX-Users: kept\r\nX__User: kept\r\n\r\n");
    assert_int_equal(gh_stream_drop_header_static(&f->s, "x-user", 6), 0);
    gh_h1_request_t out = forwarded(f);
    assert_int_equal(count_fields(&out, "x_user"), 0);
    assert_int_equal(count_fields(&out, "x-user"), 0);
    assert_int_equal(count_fields(&out, "x_forwarded_for"), 0);
    assert_int_equal(count_fields(&out, "x-forwarded-port"), 0);
    assert_int_equal(count_fields(&out, "x_real_ip"), 0);
    assert_int_equal(count_fields(&out, "x_request_id"), 0);
    assert_int_equal(count_fields(&out, "x-users"), 1);
    assert_int_equal(count_fields(&out, "x__user"), 1);
    gh_arena_dispose(&f->s.arena);
    free(f);
}

/* The client address behind trusted proxies. */
static void test_resolve_client(void **state)
{
    (void)state;
    static const struct {
        const char *peer;
        const char *head; /* header lines after the request line */
        int trusted;
        const char *client;
    } cases[] = {
        {"203.0.113.9", "X-Forwarded-For: 10.1.1.1\r\n", 0, "203.0.113.9"},
        {"127.0.0.1", "", 1, "127.0.0.1"},
        {"127.0.0.1", "X-Forwarded-For: 10.1.1.1\r\n", 1, "10.1.1.1"},
        {"::ffff:127.0.0.1", "X-Forwarded-For: 10.1.1.1\r\n", 1, "10.1.1.1"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1, 10.1.1.1, 192.168.1.1\r\n", 1, "10.1.1.1"},
        {"127.0.0.1", "X-Forwarded-For: 192.168.9.9,192.168.1.1\r\n", 1, "192.168.9.9"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 192.168.1.1\r\n", 1,
         "198.51.100.1"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.2.2.2\r\n", 1,
         "10.2.2.2"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1, unknown, 192.168.1.1\r\n", 1, "192.168.1.1"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1,\r\n", 1, "127.0.0.1"},
        {"127.0.0.1", "X-Forwarded-For: 198.51.100.1:443\r\n", 1, "127.0.0.1"},
        {"127.0.0.1", "X-Forwarded-For: [2001:db8::1]\r\n", 1, "127.0.0.1"},
        {"127.0.0.1", "X-Forwarded-For: \t2001:db8::1 \r\n", 1, "2001:db8::1"},
        {"::1", "X-Forwarded-For: 2001:db8::1, fd00::5\r\n", 1, "2001:db8::1"},
        {"::2", "X-Forwarded-For: 2001:db8::1\r\n", 0, "::2"},
        {"127.0.0.1",
         "X-Forwarded-For: 1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd\r\n", 1,
         "127.0.0.1"},
    };
    gh_cidr_t t[3];
    assert_null(gh_cidr_parse("127.0.0.0/8", &t[0]));
    assert_null(gh_cidr_parse("192.168.0.0/16", &t[1]));
    assert_null(gh_cidr_parse("::1", &t[2]));
    gh_cidr_t fd;
    assert_null(gh_cidr_parse("fd00::/8", &fd));
    gh_cidr_t list[4] = {t[0], t[1], t[2], fd};
    gh_h1_header_t hs[16];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char raw[512];
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", cases[i].head);
        gh_h1_request_t req;
        gh_h1_limits_t lim = {65536, 16, 8192};
        gh_h1_error_t err;
        req.headers = hs;
        assert_true(gh_h1_request_parse(raw, strlen(raw), &lim, &req, &err) > 0);
        char client[48];
        int tr =
            gh_forward_resolve_client(req.headers, req.num_headers, list, 4, cases[i].peer, client);
        if (tr != cases[i].trusted || strcmp(client, cases[i].client) != 0)
            fail_msg("case %zu (%s): trusted %d client %s, want %d %s", i, cases[i].head, tr,
                     client, cases[i].trusted, cases[i].client);
        /* Without a list nobody is trusted. */
        assert_int_equal(
            gh_forward_resolve_client(req.headers, req.num_headers, list, 0, cases[i].peer, client),
            0);
        assert_string_equal(client, cases[i].peer);
    }
}

/* A failed header edit: the head is never built. */
static void test_edit_failure_blocks_forwarding(void **state)
{
    (void)state;
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    stream_init(f, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    f->s.hdr_edit_failed = 1;
    size_t len;
    assert_null(gh_forward_request_head(&f->s, &len));
    gh_arena_dispose(&f->s.arena);
    free(f);
}

/* Every response shape, with Connection naming both framing fields: the
 * client's head always frames the body the way the pump will send it. */
static void test_response_framing(void **state)
{
    (void)state;
    static const char *const methods[] = {"GET", "HEAD"};
    static const int statuses[] = {200, 204, 304, 404};
    static const char *const framings[] = {"Content-Length: 5\r\n", "Content-Length: 0\r\n",
                                           "Transfer-Encoding: chunked\r\n", ""};
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    for (size_t m = 0; m < 2; m++)
        for (size_t st = 0; st < 4; st++)
            for (size_t fr = 0; fr < 4; fr++)
                for (int minor = 0; minor <= 1; minor++) {
                    char req[128], res[256];
                    snprintf(req, sizeof(req), "%s / HTTP/1.%d\r\nHost: a\r\n\r\n", methods[m],
                             minor);
                    stream_init(f, req);
                    snprintf(res, sizeof(res),
                             "HTTP/1.1 %d X\r\nConnection: content-length, "
                             "transfer-encoding\r\n%s\r\n",
                             statuses[st], framings[fr]);
                    gh_h1_limits_t lim = {65536, 256, 0};
                    gh_h1_error_t err;
                    f->s.res.headers = f->out;
                    assert_true(gh_h1_response_parse(res, strlen(res), &lim, &f->s.res, &err) > 0);
                    int head = m == 1, status = statuses[st];
                    gh_h1_body_t in = head ? GH_H1_BODY_NONE : f->s.res.body;
                    /* The router's decision (router.c start_response). */
                    int chunked =
                        (in == GH_H1_BODY_CHUNKED || in == GH_H1_BODY_UNTIL_CLOSE) && minor == 1;
                    size_t len;
                    char *out = gh_forward_response_head(&f->s, chunked, 1, &len);
                    assert_non_null(out);
                    gh_h1_response_t back;
                    gh_h1_header_t bh[64];
                    back.headers = bh;
                    gh_h1_limits_t blim = {65536, 64, 0};
                    if (gh_h1_response_parse(out, len, &blim, &back, &err) != (int)len)
                        fail_msg("response head does not parse:\n%.*s", (int)len, out);
                    gh_h1_body_t want;
                    if (status == 204 || status == 304 || head)
                        want = GH_H1_BODY_NONE; /* whatever the head says */
                    else if (in == GH_H1_BODY_LENGTH)
                        want = GH_H1_BODY_LENGTH;
                    else if (in == GH_H1_BODY_NONE)
                        want = GH_H1_BODY_NONE;
                    else
                        want = minor == 1 ? GH_H1_BODY_CHUNKED : GH_H1_BODY_UNTIL_CLOSE;
                    if (!(status == 204 || status == 304 || head) && back.body != want)
                        fail_msg("%s %d %s HTTP/1.%d: body %d, want %d:\n%.*s", methods[m], status,
                                 framings[fr], minor, back.body, want, (int)len, out);
                    if (want == GH_H1_BODY_LENGTH)
                        assert_int_equal(back.content_length, 5);
                    /* An empty body is explicitly framed, never left to a close. */
                    if (!(status == 204 || status == 304 || head) && in == GH_H1_BODY_NONE)
                        assert_non_null(strstr(out, "content-length: 0\r\n"));
                    gh_arena_dispose(&f->s.arena);
                }
    free(f);
}

/* Every field name forward.c's per-field checks can match. The names come
 * from forward.c's own source (every lower-case literal in it), so a name
 * added to a check later is covered without touching this list. */
static int slow_special(const gh_stream_t *s, const gh_h1_header_t *h)
{
    conn_tokens_t none = {NULL, 0};
    return is_hop_by_hop(h, &none) || is_request_dropped(s, h) || is_trace_field(h) ||
           GH_H1_NAME_IS(h, "via") || GH_H1_NAME_IS(h, "content-length");
}

static void check_variant(const gh_stream_t *s, const char *name, size_t n, int *hits)
{
    gh_h1_header_t h = {name, n, "v", 1};
    if (slow_special(s, &h)) {
        (*hits)++;
        if (!may_be_special(&h))
            fail_msg("'%.*s' is checked by forward.c but not in special_lens", (int)n, name);
    }
}

/* The lower-case literals of forward.c's source (the names its checks
 * match, and some that are not names): *n of them, at most max. */
static void check_literals(char (*lits)[40], size_t max, size_t *n)
{
    char path[4096];
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/proxy/test_forward.c");
    assert_non_null(cut);
    snprintf(path, sizeof(path), "%.*ssrc/proxy/forward.c", (int)(cut - me), me);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char src[1 << 17];
    size_t len = fread(src, 1, sizeof(src) - 1, fp);
    fclose(fp);
    src[len] = '\0';
    *n = 0;
    for (const char *p = strchr(src, '"'); p != NULL; p = strchr(p + 1, '"')) {
        const char *q = strchr(p + 1, '"');
        if (q == NULL)
            break;
        size_t k = (size_t)(q - p - 1);
        if (k > 0 && k < 40 && strspn(p + 1, "abcdefghijklmnopqrstuvwxyz0123456789-") == k &&
            *n < max) {
            memcpy(lits[*n], p + 1, k);
            lits[(*n)++][k] = '\0';
        }
        p = q;
    }
}

static void test_special_lens_covers_checks(void **state)
{
    (void)state;
    static char lits[256][40];
    size_t nlits;
    check_literals(lits, 256, &nlits);

    gh_stream_t s[2];
    memset(s, 0, sizeof(s));
    s[0].traced = 1; /* every check on: untrusted peer, traced */
    s[1].peer_trusted = 1;
    int hits = 0;
    for (size_t li = 0; li < nlits; li++) {
        const char *lit = lits[li];
        size_t n = strlen(lit);
        /* The literal, upper case, with '_' for '-', and longer (a prefix
         * such as "proxy-" or "x-forwarded-" matches longer names). */
        char v[128];
        for (int k = 0; k < 2; k++) {
            check_variant(&s[k], lit, n, &hits);
            for (size_t i = 0; i <= n; i++)
                v[i] = (char)toupper((unsigned char)lit[i]);
            check_variant(&s[k], v, n, &hits);
            for (size_t i = 0; i <= n; i++)
                v[i] = lit[i] == '-' ? '_' : lit[i];
            check_variant(&s[k], v, n, &hits);
            for (size_t extra = 1; extra < 40; extra++) {
                memcpy(v, lit, n);
                memset(v + n, 'q', extra);
                check_variant(&s[k], v, n + extra, &hits);
            }
        }
    }
    /* The scan saw the checks' names (25 exact, 3 prefixes), not nothing. */
    assert_true(nlits >= 28);
    assert_true(hits >= 100);
    /* And the fields most requests carry take the short way. */
    static const char *const plain[] = {
        "user-agent", "accept",    "authorization", "cookie", "accept-encoding", "referer",
        "origin",     "x-api-key", "X-Amz-Date",    "x_user", "x-tenant",        "xforwarded-for",
        "x-"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        gh_h1_header_t h = {plain[i], strlen(plain[i]), "v", 1};
        assert_false(may_be_special(&h));
        assert_false(slow_special(&s[0], &h));
    }
}

/* The token characters a field name is made of (RFC 9110 section 5.6.2). */
static size_t tchars(char *out)
{
    size_t n = 0;
    for (int c = 1; c < 256; c++)
        if (gh_h1_is_tchar((unsigned char)c))
            out[n++] = (char)c;
    return n;
}

/* Every spelling a checked name can take, not only the uniform ones: each
 * letter in either case and each '-' as '_' independently (all of them
 * for names with up to 14 such bytes, 20,000 random ones past that), with
 * random token tails after prefixes (up to 100 bytes: past the 32 bits of
 * special_lens and the 64 of the drop mask), and every name of one to
 * three token characters. Each one a check matches must be one
 * may_be_special lets through to the checks. */
static void test_every_spelling_of_checked_names(void **state)
{
    (void)state;
    static char lits[256][40];
    size_t nlits;
    check_literals(lits, 256, &nlits);
    char tc[256];
    size_t ntc = tchars(tc);
    gh_stream_t s[2];
    memset(s, 0, sizeof(s));
    s[0].traced = 1;
    s[1].peer_trusted = 1;
    int hits = 0;
    for (size_t li = 0; li < nlits; li++) {
        const char *lit = lits[li];
        size_t n = strlen(lit), alt[40], nalt = 0;
        for (size_t i = 0; i < n; i++)
            if ((lit[i] >= 'a' && lit[i] <= 'z') || lit[i] == '-')
                alt[nalt++] = i;
        uint64_t count = nalt <= 14 ? UINT64_C(1) << nalt : 20000;
        for (uint64_t m = 0; m < count; m++) {
            uint64_t bits = nalt <= 14 ? m : next_rand();
            char v[160];
            memcpy(v, lit, n);
            for (size_t j = 0; j < nalt; j++)
                if ((bits >> j) & 1)
                    v[alt[j]] = lit[alt[j]] == '-' ? '_' : (char)(lit[alt[j]] - 'a' + 'A');
            size_t tail = (m % 8 == 0) ? (size_t)(next_rand() % 101) : 0;
            for (size_t i = 0; i < tail; i++)
                v[n + i] = tc[next_rand() % ntc];
            for (int k = 0; k < 2; k++)
                check_variant(&s[k], v, n + tail, &hits);
        }
    }
    for (size_t a = 0; a < ntc; a++)
        for (size_t b = 0; b <= ntc; b++)
            for (size_t c = 0; c <= (b < ntc ? ntc : 0); c++) {
                char v[3] = {tc[a], b < ntc ? tc[b] : 0, c < ntc ? tc[c] : 0};
                size_t n = b == ntc ? 1 : c == ntc ? 2 : 3;
                for (int k = 0; k < 2; k++)
                    check_variant(&s[k], v, n, &hits);
            }
    assert_true(hits >= 100000);
}

/* The drop mask and the in-place compare decide as the plain rule does: a
 * field goes when gh_field_name_same says it is some drop's name. Drop
 * names of 1 to 140 bytes from a few letters (so that lengths share mask
 * bits and names share their first and last eight bytes), as a route's
 * borrowed list, appended one by one, or both; fields that are the drops
 * respelled, one byte off at each place, or 64 bytes longer or shorter. */
static void test_drop_mask_decides_as_the_names(void **state)
{
    (void)state;
    static const char alphabet[] = "aA-_b";
    fixture_t *f = malloc(sizeof(*f));
    assert_non_null(f);
    static char names[12][160];
    const char *ptrs[12];
    for (int iter = 0; iter < 400; iter++) {
        size_t nd = 1 + next_rand() % 12, listed = next_rand() % (nd + 1);
        for (size_t i = 0; i < nd; i++) {
            size_t len = (next_rand() & 1) ? 8 + next_rand() % 9 : 1 + next_rand() % 140;
            /* Lower case, as the drops are given: '_' read as '-'. */
            for (size_t j = 0; j < len; j++)
                names[i][j] = "aa-bx"[next_rand() % 5];
            names[i][len] = '\0';
            ptrs[i] = names[i];
        }
        stream_init(f, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        gh_drop_list_t *l = listed > 0 ? gh_drop_list_new(ptrs, listed) : NULL;
        assert_true(listed == 0 || l != NULL);
        if (next_rand() & 1) {
            assert_int_equal(gh_stream_drop_list(&f->s, l), 0);
            for (size_t i = listed; i < nd; i++)
                assert_int_equal(gh_stream_drop_header_static(&f->s, ptrs[i], strlen(ptrs[i])), 0);
        } else {
            for (size_t i = listed; i < nd; i++)
                assert_int_equal(gh_stream_drop_header_static(&f->s, ptrs[i], strlen(ptrs[i])), 0);
            assert_int_equal(gh_stream_drop_list(&f->s, l), 0);
        }
        assert_int_equal(f->s.num_hdr_drop, nd);
        for (int t = 0; t < 300; t++) {
            const char *d = names[next_rand() % nd];
            size_t dl = strlen(d), hl = dl;
            char h[300];
            for (size_t j = 0; j < dl; j++) {
                char c = d[j];
                if (c == '-' && (next_rand() & 1))
                    c = '_';
                else if (c >= 'a' && c <= 'z' && (next_rand() & 1))
                    c = (char)(c - 'a' + 'A');
                h[j] = c;
            }
            switch (next_rand() % 4) {
            case 0:
                break;
            case 1: /* one byte off */
                h[next_rand() % dl] = alphabet[next_rand() % 5];
                break;
            case 2: /* 64 longer: the same mask bit */
                for (size_t j = 0; j < 64; j++)
                    h[dl + j] = alphabet[next_rand() % 5];
                hl = dl + 64;
                break;
            default: /* 64 shorter, when it can be */
                if (dl > 64)
                    hl = dl - 64;
                break;
            }
            gh_h1_header_t hh = {h, hl, "v", 1};
            int want = 0;
            for (size_t i = 0; i < nd; i++)
                want |= gh_field_name_same(h, hl, names[i], strlen(names[i]));
            int got = ((f->s.hdr_drop_lens >> (hl % 64)) & 1) && is_filter_dropped(&f->s, &hh);
            if (got != want)
                fail_msg("'%.*s': dropped %d, want %d", (int)hl, h, got, want);
        }
        gh_arena_dispose(&f->s.arena);
        gh_drop_list_free(l);
    }
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_lists),
        cmocka_unit_test(test_many_connection_tokens),
        cmocka_unit_test(test_request_framing_and_host),
        cmocka_unit_test(test_edit_failure_blocks_forwarding),
        cmocka_unit_test(test_drops_match_underscore_spellings),
        cmocka_unit_test(test_resolve_client),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_special_lens_covers_checks),
        cmocka_unit_test(test_drops_by_length),
        cmocka_unit_test(test_drop_lists),
        cmocka_unit_test(test_replace_headers),
        cmocka_unit_test(test_every_spelling_of_checked_names),
        cmocka_unit_test(test_drop_mask_decides_as_the_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
