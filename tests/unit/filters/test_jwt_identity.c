/*
 * What the authn filter leaves in the stream's identity for the filters
 * after it (gatehouse/filter.h): the verified token (a pointer into the
 * request) and its claims, decoded by gh_stream_claims on first use; and
 * the short path for a cached token (filter.c bearer_cached) deciding as
 * the general one does.
 *
 * A real worker serves the config on a loopback socket, as in
 * tests/unit/proxy/test_async.c, with a test-only filter ("probe") after
 * authn that copies what the identity holds, on request headers and again
 * on log. Under the ASan build streams and heads are freed, not recycled,
 * so an identity token that pointed at another request's bytes (or at
 * freed ones) is reported.
 *
 * filter.c is included, not linked, so that its clock can be moved: a
 * cached token's expiry is checked without waiting for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <gatehouse/config.h>
#include <gatehouse/filter.h>
#include <gatehouse/yaml.h>

#include "jose/b64url.h"
#include "proxy/proxy.h"
#include "proxy/worker.h"

/* The filter's clock, moved by the tests (seconds added to the real one). */
static time_t clock_shift;

static time_t shifted_time(time_t *t)
{
    time_t v = time(NULL) + clock_shift;
    if (t != NULL)
        *t = v;
    return v;
}

#define time(t) shifted_time(t)
#include "../../../src/filters/jwt/filter.c"
#undef time

#define MAX_TURNS 100000

/* ---- tokens: HS256 with a shared key, minted here ---- */

/* b64url "Z2F0ZWhvdXNlLXVuaXQtdGVzdC1zaGFyZWQta2V5ISE" in the JWKS below. */
static const unsigned char secret[32] = "gatehouse-unit-test-shared-key!!";

/* A compact JWS into out: iss and sub as given, exp ttl seconds away. */
static size_t mint_into(char *out, size_t cap, const char *iss, const char *sub, long long ttl)
{
    static const char head[] = "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    char payload[512];
    long long now = (long long)time(NULL);
    int pn = snprintf(payload, sizeof(payload),
                      "{\"iss\":\"%s\",\"aud\":\"api\",\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
                      iss, sub, now, now + ttl);
    assert_true(pn > 0 && (size_t)pn < sizeof(payload));
    assert_true(cap > GH_B64URL_ENC_LEN(sizeof(head)) + GH_B64URL_ENC_LEN((size_t)pn) + 48);
    size_t o = gh_b64url_encode(head, sizeof(head) - 1, out);
    out[o++] = '.';
    o += gh_b64url_encode(payload, (size_t)pn, out + o);
    unsigned char mac[32];
    unsigned int maclen = 0;
    assert_non_null(
        HMAC(EVP_sha256(), secret, sizeof(secret), (const unsigned char *)out, o, mac, &maclen));
    out[o++] = '.';
    o += gh_b64url_encode(mac, maclen, out + o);
    out[o] = '\0';
    return o;
}

/* The payload JSON of a token minted by mint_into. */
static void payload_of(const char *tok, char *out, size_t cap)
{
    const char *a = strchr(tok, '.') + 1, *b = strchr(a, '.');
    assert_true(GH_B64URL_DEC_MAX((size_t)(b - a)) < cap);
    long n = gh_b64url_decode(a, (size_t)(b - a), (unsigned char *)out);
    assert_true(n > 0);
    out[n] = '\0';
}

/* ---- the probe filter: what the identity holds ---- */

typedef struct {
    char provider[32], subject[64];
    char token[1024];
    int has_token;
    char claims[1024];
    int has_claims;
} view_t;

typedef struct {
    unsigned calls, logs;
    view_t at_headers, at_log;
    int claims_stable; /* a second gh_stream_claims returned the same text */
} probe_seen_t;

static probe_seen_t probe;

static void view(gh_stream_t *s, view_t *v)
{
    memset(v, 0, sizeof(*v));
    gh_identity_t *id = gh_stream_identity(s);
    snprintf(v->provider, sizeof(v->provider), "%s", id->provider ? id->provider : "");
    snprintf(v->subject, sizeof(v->subject), "%s", id->subject ? id->subject : "");
    if (id->token != NULL) {
        /* Read every byte: ASan reports a pointer into freed memory. */
        assert_true(id->token_len < sizeof(v->token));
        memcpy(v->token, id->token, id->token_len);
        v->has_token = 1;
    }
    size_t n = 0;
    const char *c = gh_stream_claims(s, &n);
    if (c != NULL) {
        assert_true(n < sizeof(v->claims));
        memcpy(v->claims, c, n);
        v->has_claims = 1;
    } else {
        assert_int_equal(n, 0);
    }
}

static int pparse(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg,
                  gh_route_t *route, void **conf)
{
    (void)doc;
    (void)n;
    (void)cfg;
    (void)route;
    *conf = calloc(1, 1);
    return *conf != NULL ? 0 : -1;
}

static void pfree_conf(void *conf)
{
    free(conf);
}

static gh_filter_status_t pon_request_headers(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)conf;
    (void)ctx;
    probe.calls++;
    view(s, &probe.at_headers);
    size_t n1 = 0, n2 = 0;
    const char *c1 = gh_stream_claims(s, &n1), *c2 = gh_stream_claims(s, &n2);
    probe.claims_stable = c1 == c2 && n1 == n2;
    return GH_FILTER_CONTINUE;
}

static void pon_log(gh_stream_t *s, const void *conf, void *ctx)
{
    (void)conf;
    (void)ctx;
    probe.logs++;
    view(s, &probe.at_log);
}

static const gh_filter_type_t probe_filter = {
    .name = "probe",
    .phase = GH_PHASE_TRANSFORM,
    .parse = pparse,
    .free_conf = pfree_conf,
    .on_request_headers = pon_request_headers,
    .on_log = pon_log,
};

static const gh_filter_type_t *types[16];

static void register_types(void)
{
    const gh_filter_type_t *const *product = gh_filter_types();
    size_t n = 0;
    int placed = 0;
    for (size_t i = 0; product[i] != NULL; i++) {
        if (!placed && product[i]->phase > probe_filter.phase) {
            types[n++] = &probe_filter;
            placed = 1;
        }
        assert_true(n < sizeof(types) / sizeof(types[0]) - 1);
        types[n++] = product[i];
    }
    if (!placed)
        types[n++] = &probe_filter;
    types[n] = NULL;
    gh_filter_types_set(types);
}

/* ---- config and worker ---- */

#define JWKS                                                                                       \
    "{inline: "                                                                                    \
    "'{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k1\",\"k\":"                                           \
    "\"Z2F0ZWhvdXNlLXVuaXQtdGVzdC1zaGFyZWQta2V5ISE\"}]}'}"

static const char yaml[] =
    "listeners:\n"
    "  - name: edge\n"
    "    listen: 127.0.0.1:18090\n"
    "    routes:\n"
    "      - {name: plain, match: {path: {prefix: /plain}}, authn: corp, probe: {},\n"
    "         direct_response: {status: 200, body: ok}}\n"
    "      - {name: opt, match: {path: {prefix: /opt}}, authn: {optional: [corp]}, probe: {},\n"
    "         direct_response: {status: 200, body: ok}}\n"
    "      - {name: any, match: {path: {prefix: /any}}, authn: {any: [other, corp]}, probe: {},\n"
    "         direct_response: {status: 200, body: ok}}\n"
    "      - {name: all, match: {path: {prefix: /all}}, authn: {all: [corp, svc]}, probe: {},\n"
    "         direct_response: {status: 200, body: ok}}\n"
    "      - {name: nofwd, match: {path: {prefix: /nofwd}}, authn: drop, probe: {},\n"
    "         direct_response: {status: 200, body: ok}}\n"
    "providers:\n"
    "  jwt:\n"
    "    corp: {issuer: https://corp.example, audiences: [api], allow_symmetric: true,\n"
    "           algorithms: [HS256], jwks: " JWKS "}\n"
    "    other: {issuer: https://other.example, audiences: [api], allow_symmetric: true,\n"
    "            algorithms: [HS256], jwks: " JWKS "}\n"
    "    svc: {issuer: https://svc.example, audiences: [api], allow_symmetric: true,\n"
    "          algorithms: [HS256], jwks: " JWKS ", from: [{header: x-svc}]}\n"
    "    drop: {issuer: https://drop.example, audiences: [api], allow_symmetric: true,\n"
    "           algorithms: [HS256], jwks: " JWKS ", forward_token: false,\n"
    "           from: [{header: authorization, prefix: \"Bearer \"}, {cookie: session},\n"
    "                  {query: access_token}]}\n";

typedef struct {
    gh_snapshot_t *snap;
    gh_worker_t w;
    int port;
    int clients[64];
    unsigned num_clients;
} fixture_t;

static uv_loop_t main_loop;

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    memset(&probe, 0, sizeof(probe));
    clock_shift = 0;
    gh_config_error_t err;
    gh_config_t *cfg = gh_config_load_buffer("test.yaml", yaml, sizeof(yaml) - 1, &err);
    if (cfg == NULL)
        print_error("config: %s\n", err.msg);
    f->snap = cfg != NULL ? gh_snapshot_new(cfg, 1) : NULL;
    int fd = listen_loopback(&f->port);
    int fds[1] = {fd};
    if (f->snap == NULL || fd < 0 || gh_worker_init(&f->w, 0, f->snap, fds) != 0) {
        if (fd >= 0)
            close(fd);
        gh_snapshot_unref(f->snap);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static void pump(fixture_t *f)
{
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    usleep(100);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (unsigned i = 0; i < f->num_clients; i++)
        close(f->clients[i]);
    for (int turns = 0; f->w.num_conns > 0 || f->w.dead != NULL; turns++) {
        if (turns > MAX_TURNS)
            return -1;
        pump(f);
    }
    gh_worker_dispose(&f->w);
    gh_snapshot_unref(f->snap);
    free(f);
    return 0;
}

static int client(fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    assert_true(f->num_clients < sizeof(f->clients) / sizeof(f->clients[0]));
    f->clients[f->num_clients++] = fd;
    return fd;
}

/* Sends p, in pieces of step bytes with loop turns between them (step 0:
 * at once). */
static void send_in(fixture_t *f, int fd, const char *p, size_t step)
{
    size_t n = strlen(p);
    if (step == 0)
        step = n;
    for (size_t o = 0; o < n; o += step) {
        size_t k = n - o < step ? n - o : step;
        assert_int_equal(send(fd, p + o, k, MSG_NOSIGNAL), (ssize_t)k);
        for (int i = 0; i < 3; i++)
            pump(f);
    }
}

/* Reads one response framed by its Content-Length; returns its status and
 * leaves its body in body (NUL-terminated). */
static int response(fixture_t *f, int fd, char *body, size_t cap)
{
    static char buf[16384];
    static size_t have; /* bytes of the next response read already (pipelining) */
    static int have_fd = -1;
    if (have_fd != fd)
        have = 0;
    have_fd = fd;
    for (int turns = 0; turns < MAX_TURNS; turns++) {
        buf[have] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            size_t head = (size_t)(end - buf) + 4, len = 0;
            const char *cl = strstr(buf, "content-length:");
            if (cl != NULL && cl < end)
                len = strtoul(cl + 15, NULL, 10);
            if (have >= head + len) {
                int status = atoi(buf + 9);
                size_t k = len < cap - 1 ? len : cap - 1;
                memcpy(body, buf + head, k);
                body[k] = '\0';
                memmove(buf, buf + head + len, have - head - len);
                have -= head + len;
                return status;
            }
        }
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r > 0) {
            have += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            fail_msg("connection closed before a whole response");
        pump(f);
    }
    fail_msg("no whole response");
    return 0;
}

/* One request on a new connection; returns its status once the probe
 * has seen the exchange end (its view of the request is then whole). */
static int request(fixture_t *f, const char *path, const char *extra_fields)
{
    char req[4096], body[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n", path, extra_fields);
    memset(&probe, 0, sizeof(probe));
    int fd = client(f);
    send_in(f, fd, req, 0);
    int status = response(f, fd, body, sizeof(body));
    for (int turns = 0; probe.logs == 0 && turns < MAX_TURNS; turns++)
        pump(f);
    assert_int_equal(probe.logs, 1);
    return status;
}

static int bearer(fixture_t *f, const char *path, const char *tok)
{
    char fields[2048];
    snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\n", tok);
    return request(f, path, fields);
}

/* What the probe saw at both ends of the last exchange: the token tok
 * verified by provider, with its payload as the claims; or no identity. */
static void expect_view(const view_t *v, const char *provider, const char *tok)
{
    if (tok == NULL) {
        assert_string_equal(v->provider, "");
        assert_int_equal(v->has_token, 0);
        assert_int_equal(v->has_claims, 0);
        return;
    }
    char payload[1024];
    payload_of(tok, payload, sizeof(payload));
    assert_string_equal(v->provider, provider);
    assert_int_equal(v->has_token, 1);
    assert_string_equal(v->token, tok);
    assert_int_equal(v->has_claims, 1);
    assert_string_equal(v->claims, payload);
}

static void expect_seen(const char *provider, const char *tok)
{
    expect_view(&probe.at_headers, provider, tok);
    expect_view(&probe.at_log, provider, tok);
    assert_int_equal(probe.claims_stable, 1);
}

/* Whether tok is in the worker's cache of verified tokens. */
static int cached(fixture_t *f, const char *tok)
{
    for (size_t i = 0; i < sizeof(f->w.fstate) / sizeof(f->w.fstate[0]); i++) {
        if (f->w.fstate[i].type != &gh_authn_filter)
            continue;
        wstate_t *w = f->w.fstate[i].state;
        for (size_t j = 0; j < w->nsets * WAYS; j++)
            if (w->entries[j].token != NULL && w->entries[j].token_len == strlen(tok) &&
                memcmp(w->entries[j].token, tok, strlen(tok)) == 0)
                return 1;
    }
    return 0;
}

/* ---- the cases ---- */

/* A verified token, then the same token from the cache (the short path on
 * this route): both leave the token and its claims, read again on log. */
static void test_verified_then_cached(void **state)
{
    fixture_t *f = *state;
    char tok[1024];
    mint_into(tok, sizeof(tok), "https://corp.example", "alice", 300);
    assert_int_equal(bearer(f, "/plain", tok), 200);
    expect_seen("corp", tok);
    assert_true(cached(f, tok));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bearer(f, "/plain", tok), 200);
        assert_int_equal(probe.calls, 1);
        expect_seen("corp", tok);
    }
    /* Spellings the general path takes: the same identity. */
    static const char *const spellings[] = {"Authorization: Bearer  ", "Authorization: Bearer\t",
                                            "Authorization: Bearer \t", "Authorization: bearer ",
                                            "authorization: BEARER "};
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        char fields[2048];
        snprintf(fields, sizeof(fields), "%s%s\r\n", spellings[i], tok);
        assert_int_equal(request(f, "/plain", fields), 200);
        expect_seen("corp", tok);
    }
}

/* Requests on one connection, one at a time and pipelined (the head then
 * copied out of the connection's buffer, not taken with it), split into
 * small reads: each identity is its own request's, never the one before. */
static void test_identity_per_request_on_keepalive(void **state)
{
    fixture_t *f = *state;
    char a[1024], b[1024], req[8192], body[1024];
    mint_into(a, sizeof(a), "https://corp.example", "alice", 300);
    mint_into(b, sizeof(b), "https://corp.example", "bob", 300);
    const struct {
        const char *path, *tok;
        size_t step;
    } plan[] = {{"/plain", a, 0},  {"/opt", NULL, 0}, {"/opt", b, 7},  {"/plain", a, 1},
                {"/opt", NULL, 5}, {"/plain", b, 0},  {"/plain", a, 0}};
    int fd = client(f);
    for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++) {
        char auth[1100] = "";
        if (plan[i].tok != NULL)
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", plan[i].tok);
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n", plan[i].path, auth);
        memset(&probe, 0, sizeof(probe));
        send_in(f, fd, req, plan[i].step);
        assert_int_equal(response(f, fd, body, sizeof(body)), 200);
        for (int turns = 0; probe.logs == 0 && turns < MAX_TURNS; turns++)
            pump(f);
        expect_seen("corp", plan[i].tok);
    }
    /* Two requests in one write: the first one's head is copied out. */
    snprintf(req, sizeof(req),
             "GET /plain HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n"
             "GET /opt HTTP/1.1\r\nHost: a\r\n\r\n",
             b);
    memset(&probe, 0, sizeof(probe));
    send_in(f, fd, req, 0);
    assert_int_equal(response(f, fd, body, sizeof(body)), 200);
    assert_int_equal(response(f, fd, body, sizeof(body)), 200);
    for (int turns = 0; probe.logs < 2 && turns < MAX_TURNS; turns++)
        pump(f);
    assert_int_equal(probe.calls, 2);
    expect_seen("corp", NULL); /* the last one, without a token */
}

/* A token that was not verified is never the identity's: refused on an
 * optional route (the probe's log sees no identity), a look-alike of a
 * cached token, a bad signature on an `any` route. */
static void test_unverified_token_never_recorded(void **state)
{
    fixture_t *f = *state;
    char tok[1024], bad[1024];
    mint_into(tok, sizeof(tok), "https://corp.example", "alice", 300);
    assert_int_equal(bearer(f, "/plain", tok), 200);
    /* The same length and last 16 bytes, a payload byte changed. */
    memcpy(bad, tok, sizeof(bad));
    char *p = strchr(bad, '.') + 3;
    *p = *p == 'A' ? 'B' : 'A';
    const char *const paths[] = {"/plain", "/opt", "/any", "/nofwd"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(bearer(f, paths[i], bad), 401);
        assert_int_equal(probe.calls, 0);
        expect_view(&probe.at_log, NULL, NULL);
    }
    /* The other provider's issuer, signed with another key: refused by it,
     * and corp never takes it. */
    char other[1024];
    mint_into(other, sizeof(other), "https://other.example", "eve", 300);
    other[strlen(other) - 2] = other[strlen(other) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(bearer(f, "/any", other), 401);
    expect_view(&probe.at_log, NULL, NULL);
    /* No token on the optional route: no identity, no claims. */
    assert_int_equal(request(f, "/opt", ""), 200);
    expect_seen(NULL, NULL);
}

/* `any`: the provider of the token's issuer records it, the one tried
 * first (another issuer) does not. `all`: the first provider's token is
 * the identity's; when the second refuses, the request is refused and the
 * identity holds at most the verified one. */
static void test_any_and_all(void **state)
{
    fixture_t *f = *state;
    char corp[1024], svc[1024], fields[4096];
    mint_into(corp, sizeof(corp), "https://corp.example", "alice", 300);
    mint_into(svc, sizeof(svc), "https://svc.example", "robot", 300);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bearer(f, "/any", corp), 200);
        expect_seen("corp", corp);
        snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\nX-Svc: %s\r\n", corp, svc);
        assert_int_equal(request(f, "/all", fields), 200);
        expect_seen("corp", corp);
    }
    char bad[1024];
    memcpy(bad, svc, sizeof(bad));
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    snprintf(fields, sizeof(fields), "Authorization: Bearer %s\r\nX-Svc: %s\r\n", corp, bad);
    assert_int_equal(request(f, "/all", fields), 401);
    assert_int_equal(probe.calls, 0);
    /* Refused; what the log sees is at most the token corp verified,
     * never the one svc refused. */
    if (probe.at_log.has_token)
        expect_view(&probe.at_log, "corp", corp);
    else
        expect_view(&probe.at_log, NULL, NULL);
}

/* forward_token: false: the Cookie is rebuilt and the target too, without
 * the token; the identity's token still reads as the one verified. */
static void test_stripped_token_still_readable(void **state)
{
    fixture_t *f = *state;
    char tok[1024], fields[2048], path[2048];
    mint_into(tok, sizeof(tok), "https://drop.example", "carol", 300);
    for (int i = 0; i < 2; i++) {
        snprintf(fields, sizeof(fields), "Cookie: a=1; session=%s; b=2\r\n", tok);
        assert_int_equal(request(f, "/nofwd", fields), 200);
        expect_seen("drop", tok);
        snprintf(path, sizeof(path), "/nofwd?x=1&access_token=%s&y=2", tok);
        assert_int_equal(request(f, path, ""), 200);
        expect_seen("drop", tok);
        assert_int_equal(bearer(f, "/nofwd", tok), 200);
        expect_seen("drop", tok);
    }
}

/* A cached token past its exp (and the clock skew, 60 s by default) is
 * refused, on the route that takes the short path: the clock is moved,
 * nothing waits. */
static void test_cached_token_expires(void **state)
{
    fixture_t *f = *state;
    char tok[1024];
    mint_into(tok, sizeof(tok), "https://corp.example", "alice", 100);
    assert_int_equal(bearer(f, "/plain", tok), 200);
    assert_true(cached(f, tok));
    clock_shift = 150; /* past exp, within the skew: still the cached entry */
    assert_int_equal(bearer(f, "/plain", tok), 200);
    assert_true(cached(f, tok));
    clock_shift = 170;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(bearer(f, "/plain", tok), 401);
        expect_view(&probe.at_log, NULL, NULL);
        assert_int_equal(bearer(f, "/opt", tok), 401);
    }
}

int main(void)
{
    setenv("GH_CONFIG_NO_DNS", "1", 1);
    register_types();
    if (uv_loop_init(&main_loop) != 0 || gh_filter_services_start(&main_loop) < 0)
        return 1;
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_verified_then_cached),
        T(test_identity_per_request_on_keepalive),
        T(test_unverified_token_never_recorded),
        T(test_any_and_all),
        T(test_stripped_token_still_readable),
        T(test_cached_token_expires),
    };
#undef T
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gh_filter_services_stop();
    uv_run(&main_loop, UV_RUN_DEFAULT);
    gh_filter_services_free();
    uv_loop_close(&main_loop);
    gh_filter_types_set(NULL);
    return rc;
}
