/*
 * Unit tests for the HTTP/1.1 parser (src/http/h1.c).
 *
 * Every table case is also parsed at every prefix length, each prefix copied
 * into a buffer of exactly that size so that ASan catches a read past len:
 * a head that parses must be INCOMPLETE at every shorter prefix, and a head
 * that is refused must be INCOMPLETE or refused with the same status at every
 * prefix, and refused with that status from the first refused prefix on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gatehouse/h1.h"

#define MAX_HDRS 64

static const gh_h1_limits_t default_limits = {8192, 32, 2048};

/* A string literal with its length, embedded NULs included. */
#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ----------------------------------------------------------- */

typedef struct {
    int rc;
    int status;
    gh_h1_request_t req;
    gh_h1_header_t hdrs[MAX_HDRS];
} req_result_t;

typedef struct {
    int rc;
    int status;
    gh_h1_response_t res;
    gh_h1_header_t hdrs[MAX_HDRS];
} res_result_t;

/* Parses a private, exactly sized copy of buf[0..len). */
static void parse_req(const char *buf, size_t len, const gh_h1_limits_t *lim, req_result_t *out)
{
    char *copy = malloc(len ? len : 1);
    gh_h1_error_t err = {0, NULL};
    assert_non_null(copy);
    memcpy(copy, buf, len);
    memset(out, 0, sizeof(*out));
    out->req.headers = out->hdrs;
    out->rc = gh_h1_request_parse(copy, len, lim, &out->req, &err);
    if (out->rc == GH_H1_ERROR) {
        assert_non_null(err.detail);
        out->status = err.status;
    }
    /* Rebase pointers onto the caller's buffer so results can be compared. */
    if (out->rc > 0) {
        out->req.method = buf + (out->req.method - copy);
        out->req.target = buf + (out->req.target - copy);
        for (size_t i = 0; i < out->req.num_headers; i++) {
            out->hdrs[i].name = buf + (out->hdrs[i].name - copy);
            out->hdrs[i].value = buf + (out->hdrs[i].value - copy);
        }
    }
    free(copy);
}

static void parse_res(const char *buf, size_t len, const gh_h1_limits_t *lim, res_result_t *out)
{
    char *copy = malloc(len ? len : 1);
    gh_h1_error_t err = {0, NULL};
    assert_non_null(copy);
    memcpy(copy, buf, len);
    memset(out, 0, sizeof(*out));
    out->res.headers = out->hdrs;
    out->rc = gh_h1_response_parse(copy, len, lim, &out->res, &err);
    if (out->rc == GH_H1_ERROR) {
        assert_non_null(err.detail);
        out->status = err.status;
    }
    if (out->rc > 0) {
        out->res.reason = buf + (out->res.reason - copy);
        for (size_t i = 0; i < out->res.num_headers; i++) {
            out->hdrs[i].name = buf + (out->hdrs[i].name - copy);
            out->hdrs[i].value = buf + (out->hdrs[i].value - copy);
        }
    }
    free(copy);
}

/* The prefix property described at the top, for one whole-buffer result. */
static void check_req_prefixes(const char *name, const char *buf, size_t len,
                               const gh_h1_limits_t *lim, const req_result_t *whole)
{
    req_result_t *r = malloc(sizeof(*r));
    int seen_error = 0;
    assert_non_null(r);
    for (size_t n = 0; n < len; n++) {
        parse_req(buf, n, lim, r);
        if (whole->rc > 0 && n < (size_t)whole->rc && r->rc != GH_H1_INCOMPLETE)
            fail_msg("%s: prefix %zu gave %d, want INCOMPLETE", name, n, r->rc);
        if (whole->rc > 0 && n >= (size_t)whole->rc && r->rc != whole->rc)
            fail_msg("%s: prefix %zu gave %d, want %d", name, n, r->rc, whole->rc);
        if (whole->rc == GH_H1_ERROR) {
            if (r->rc > 0)
                fail_msg("%s: prefix %zu parsed, whole is refused", name, n);
            if (r->rc == GH_H1_ERROR && r->status != whole->status)
                fail_msg("%s: prefix %zu status %d, whole %d", name, n, r->status, whole->status);
            if (seen_error && r->rc != GH_H1_ERROR)
                fail_msg("%s: prefix %zu not refused after a shorter one was", name, n);
            seen_error |= r->rc == GH_H1_ERROR;
        }
    }
    free(r);
}

static void check_res_prefixes(const char *name, const char *buf, size_t len,
                               const gh_h1_limits_t *lim, const res_result_t *whole)
{
    res_result_t *r = malloc(sizeof(*r));
    int seen_error = 0;
    assert_non_null(r);
    for (size_t n = 0; n < len; n++) {
        parse_res(buf, n, lim, r);
        if (whole->rc > 0 && n < (size_t)whole->rc && r->rc != GH_H1_INCOMPLETE)
            fail_msg("%s: prefix %zu gave %d, want INCOMPLETE", name, n, r->rc);
        if (whole->rc > 0 && n >= (size_t)whole->rc && r->rc != whole->rc)
            fail_msg("%s: prefix %zu gave %d, want %d", name, n, r->rc, whole->rc);
        if (whole->rc == GH_H1_ERROR) {
            if (r->rc > 0)
                fail_msg("%s: prefix %zu parsed, whole is refused", name, n);
            if (r->rc == GH_H1_ERROR && r->status != 502)
                fail_msg("%s: prefix %zu status %d", name, n, r->status);
            if (seen_error && r->rc != GH_H1_ERROR)
                fail_msg("%s: prefix %zu not refused after a shorter one was", name, n);
            seen_error |= r->rc == GH_H1_ERROR;
        }
    }
    free(r);
}

static int value_is(const gh_h1_header_t *h, const char *s)
{
    return h->value_len == strlen(s) && memcmp(h->value, s, h->value_len) == 0;
}

/* ---- request acceptance table ------------------------------------------ */

typedef struct {
    const char *name;
    const char *buf;
    size_t len;
    size_t rest; /* bytes after the head */
    gh_h1_body_t body;
    uint64_t content_length;
    int minor;
    int keep_alive;
    int expect_continue;
    int has_upgrade;
    int host_index;
    size_t num_headers;
} req_ok_t;

static const req_ok_t req_ok[] = {
    {"simple GET", S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"HTTP/1.0 without Host", S("GET / HTTP/1.0\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 0, 0, 0, 0, -1,
     0},
    {"HTTP/1.0 keep-alive", S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 0, 1, 0, 0, -1, 1},
    {"HTTP/1.0 keep-alive then close",
     S("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"), 0, GH_H1_BODY_NONE,
     0, 0, 0, 0, 0, -1, 2},
    {"HTTP/1.1 close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 0, 0, 0, 0, 2},
    {"close in a list", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo,  CLOSE ,bar\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 0, 0, 0, 0, 2},
    {"close in a second Connection",
     S("GET / HTTP/1.1\r\nConnection: te\r\nHost: a\r\nconnection: close\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 0, 0, 0, 1, 3},
    {"closed is not close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, xclose\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 2},
    {"empty list members", S("GET / HTTP/1.0\r\nHost: a\r\nConnection: ,, keep-alive,\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 0, 1, 0, 0, 0, 2},
    {"upgrade", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
     0, GH_H1_BODY_NONE, 0, 1, 1, 0, 1, 0, 3},
    {"Content-Length", S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), 5,
     GH_H1_BODY_LENGTH, 5, 1, 1, 0, 0, 0, 2},
    {"Content-Length without SP", S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:5\r\n\r\n"), 0,
     GH_H1_BODY_LENGTH, 5, 1, 1, 0, 0, 0, 2},
    /* OWS around framing values is valid (RFC 9110 section 5.5) and trimmed;
     * gatehouse re-frames bodies, so the spelling never reaches a peer. */
    {"TE two SP", S("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  chunked\r\n\r\n"), 0,
     GH_H1_BODY_CHUNKED, 0, 1, 1, 0, 0, 0, 2},
    {"TE HTAB and trailing SP",
     S("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked \r\n\r\n"), 0,
     GH_H1_BODY_CHUNKED, 0, 1, 1, 0, 0, 0, 2},
    {"CL two SP and trailing HTAB",
     S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length:  5\t\r\n\r\n"), 0, GH_H1_BODY_LENGTH, 5, 1,
     1, 0, 0, 0, 2},
    {"Content-Length 0 is NONE", S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 2},
    {"Content-Length 18 digits",
     S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"), 0,
     GH_H1_BODY_LENGTH, 999999999999999999ull, 1, 1, 0, 0, 0, 2},
    {"Content-Length leading zeros",
     S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 000000000000000042\r\n\r\n"), 0,
     GH_H1_BODY_LENGTH, 42, 1, 1, 0, 0, 0, 2},
    {"Content-Length repeated, equal",
     S("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n"), 0,
     GH_H1_BODY_LENGTH, 7, 1, 1, 0, 0, 0, 3},
    {"HTTP/1.0 Content-Length", S("POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"), 3,
     GH_H1_BODY_LENGTH, 3, 0, 0, 0, 0, -1, 1},
    {"chunked", S("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 0,
     GH_H1_BODY_CHUNKED, 0, 1, 1, 0, 0, 0, 2},
    {"chunked, upper case", S("POST /x HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n"),
     0, GH_H1_BODY_CHUNKED, 0, 1, 1, 0, 0, 0, 2},
    {"chunked, no SP", S("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:Chunked\r\n\r\n"), 0,
     GH_H1_BODY_CHUNKED, 0, 1, 1, 0, 0, 0, 2},
    {"expect", S("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"),
     0, GH_H1_BODY_LENGTH, 1, 1, 1, 1, 0, 0, 3},
    {"expect, mixed case", S("PUT /x HTTP/1.1\r\nHost: a\r\nEXPECT: 100-Continue\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 1, 0, 0, 2},
    {"expect, other", S("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-ish\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 2},
    {"leading CRLFs", S("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 1, 1,
     0, 0, 0, 1},
    {"pipelined", S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), 28,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"pipelined garbage", S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\x00\x01\n\r garbage"), 12,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"host later", S("GET / HTTP/1.1\r\nAccept: */*\r\nUser-Agent: x\r\nHost: a\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 2, 3},
    {"host empty", S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"host IPv6 and port", S("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0, GH_H1_BODY_NONE, 0,
     1, 1, 0, 0, 0, 1},
    {"absolute-form", S("GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"asterisk-form", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 1, 1, 0, 0,
     0, 1},
    {"authority-form", S("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"extension method", S("PURGE-ALL! /x HTTP/1.1\r\nHost: a\r\n\r\n"), 0, GH_H1_BODY_NONE, 0, 1,
     1, 0, 0, 0, 1},
    {"target with every allowed byte",
     S("GET /!$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\"\x7e HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 1},
    {"value with HTAB, obs-text",
     S("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\tb \xc3\xa9\xff\x80 c\r\n\r\n"), 0, GH_H1_BODY_NONE, 0,
     1, 1, 0, 0, 0, 2},
    {"empty value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank: \t \r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 3},
    {"unusual name bytes", S("GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n"), 0,
     GH_H1_BODY_NONE, 0, 1, 1, 0, 0, 0, 2},
    {"Transfer_Encoding is another name",
     S("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: gzip\r\nContent-Length: 1\r\n\r\n"), 0,
     GH_H1_BODY_LENGTH, 1, 1, 1, 0, 0, 0, 3},
};

static void test_request_accept(void **state)
{
    (void)state;
    req_result_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(req_ok) / sizeof(req_ok[0]); i++) {
        const req_ok_t *t = &req_ok[i];
        size_t want = t->len - t->rest;
        parse_req(t->buf, t->len, &default_limits, r);
        if (r->rc != (int)want)
            fail_msg("%s: rc %d (status %d), want %zu", t->name, r->rc, r->status, want);
        if (r->req.body != t->body || r->req.content_length != t->content_length)
            fail_msg("%s: body %d/%llu", t->name, (int)r->req.body,
                     (unsigned long long)r->req.content_length);
        if (r->req.minor_version != t->minor || (int)r->req.keep_alive != t->keep_alive ||
            (int)r->req.expect_continue != t->expect_continue ||
            (int)r->req.has_upgrade != t->has_upgrade || r->req.host_index != t->host_index ||
            r->req.num_headers != t->num_headers)
            fail_msg("%s: minor %d ka %d expect %d upgrade %d host %d num %zu", t->name,
                     r->req.minor_version, r->req.keep_alive, r->req.expect_continue,
                     r->req.has_upgrade, r->req.host_index, r->req.num_headers);
        check_req_prefixes(t->name, t->buf, t->len, &default_limits, r);
    }
    free(r);
}

static void test_request_fields(void **state)
{
    (void)state;
    static const char m[] = "\r\nPOST /p?q=1 HTTP/1.1\r\nHost:  example.com \r\nX-A:\t a  b\t "
                            "\r\nX-E:\r\n\r\nBODY";
    req_result_t r;
    parse_req(m, sizeof(m) - 1, &default_limits, &r);
    assert_int_equal(r.rc, (int)(sizeof(m) - 1 - 4));
    assert_int_equal(r.req.method_len, 4);
    assert_memory_equal(r.req.method, "POST", 4);
    assert_int_equal(r.req.target_len, 6);
    assert_memory_equal(r.req.target, "/p?q=1", 6);
    assert_int_equal(r.req.num_headers, 3);
    assert_true(GH_H1_NAME_IS(&r.hdrs[0], "host"));
    assert_true(value_is(&r.hdrs[0], "example.com"));
    assert_true(GH_H1_NAME_IS(&r.hdrs[1], "x-a"));
    assert_true(value_is(&r.hdrs[1], "a  b"));
    assert_true(GH_H1_NAME_IS(&r.hdrs[2], "x-e"));
    assert_int_equal(r.hdrs[2].value_len, 0);
    assert_ptr_equal(r.hdrs[2].value, strstr(m, "X-E:") + 4);
    assert_int_equal(r.req.host_index, 0);
}

/* ---- request refusal table --------------------------------------------- */

typedef struct {
    const char *name;
    const char *buf;
    size_t len;
    int status;
} bad_t;

#define H "GET / HTTP/1.1\r\nHost: a\r\n"
#define P "POST / HTTP/1.1\r\nHost: a\r\n"

static const bad_t req_bad[] = {
    /* Content-Length and Transfer-Encoding together, in either order. */
    {"CL then TE", S(P "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE then CL", S(P "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400},
    {"TE then CL 0", S(P "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400},
    /* Transfer-Encoding other than exactly one "chunked". */
    {"TE gzip", S(P "Transfer-Encoding: gzip\r\n\r\n"), 501},
    {"TE identity", S(P "Transfer-Encoding: identity\r\n\r\n"), 501},
    {"TE chunkedx", S(P "Transfer-Encoding: chunkedx\r\n\r\n"), 501},
    {"TE chunked, chunked", S(P "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400},
    {"TE gzip, chunked", S(P "Transfer-Encoding: gzip, chunked\r\n\r\n"), 400},
    {"TE chunked, gzip", S(P "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400},
    {"TE chunked;x", S(P "Transfer-Encoding: chunked;x\r\n\r\n"), 400},
    {"TE chunked trailing comma", S(P "Transfer-Encoding: chunked,\r\n\r\n"), 400},
    {"TE leading comma", S(P "Transfer-Encoding: ,chunked\r\n\r\n"), 400},
    {"TE VT",
     S(P "Transfer-Encoding: \x0b"
         "chunked\r\n\r\n"),
     400},
    {"TE FF", S(P "Transfer-Encoding: chunked\x0c\r\n\r\n"), 400},
    {"TE NUL", S(P "Transfer-Encoding: chunked\0\r\n\r\n"), 400},
    {"TE quoted", S(P "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400},
    {"TE inner space", S(P "Transfer-Encoding: chun ked\r\n\r\n"), 400},
    {"TE empty", S(P "Transfer-Encoding:\r\n\r\n"), 400},
    {"TE repeated", S(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE repeated, other", S(P "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
     400},
    {"TE obs-text", S(P "Transfer-Encoding: chunked\xff\r\n\r\n"), 400},
    {"TE in HTTP/1.0", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE folded", S(P "Transfer-Encoding:\r\n chunked\r\n\r\n"), 400},
    {"TE space before colon", S(P "Transfer-Encoding : chunked\r\n\r\n"), 400},
    /* Content-Length must be one plain number. */
    {"CL list", S(P "Content-Length: 5, 5\r\n\r\n"), 400},
    {"CL list no space", S(P "Content-Length: 5,5\r\n\r\n"), 400},
    {"CL plus", S(P "Content-Length: +5\r\n\r\n"), 400},
    {"CL minus", S(P "Content-Length: -1\r\n\r\n"), 400},
    {"CL inner space", S(P "Content-Length: 5 5\r\n\r\n"), 400},
    {"CL empty", S(P "Content-Length:\r\n\r\n"), 400},
    {"CL hex", S(P "Content-Length: 0x5\r\n\r\n"), 400},
    {"CL letters", S(P "Content-Length: five\r\n\r\n"), 400},
    {"CL decimal point", S(P "Content-Length: 5.0\r\n\r\n"), 400},
    {"CL 19 digits", S(P "Content-Length: 1000000000000000000\r\n\r\n"), 400},
    {"CL 19 digits with zeros", S(P "Content-Length: 0000000000000000005\r\n\r\n"), 400},
    {"CL huge", S(P "Content-Length: 99999999999999999999999999\r\n\r\n"), 400},
    {"CL differing", S(P "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400},
    {"CL equal but spelled differently", S(P "Content-Length: 5\r\nContent-Length: 05\r\n\r\n"),
     400},
    {"CL NUL", S(P "Content-Length: 5\0\r\n\r\n"), 400},
    {"CL folded", S(P "Content-Length: 5\r\n 6\r\n\r\n"), 400},
    /* Line structure. */
    {"obs-fold", S(H "X-A: a\r\n b\r\n\r\n"), 400},
    {"obs-fold HTAB", S(H "X-A: a\r\n\tb\r\n\r\n"), 400},
    {"whitespace before first field", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    {"bare CR in value", S(H "X-A: a\rb\r\n\r\n"), 400},
    {"bare CR ending a field", S(H "X-A: a\r\r\n\r\n"), 400},
    {"bare CR as head end", S(H "\rX"), 400},
    {"bare CR in request-line", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"bare CR leading", S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare LF request-line", S("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400},
    {"bare LF field", S("GET / HTTP/1.1\r\nHost: a\n\r\n"), 400},
    {"bare LF head end", S(H "\n"), 400},
    {"bare LF leading", S("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare LF in value", S(H "X-A: a\nb\r\n\r\n"), 400},
    {"LF LF", S("GET / HTTP/1.1\n\n"), 400},
    {"NUL in value", S(H "X-A: a\0b\r\n\r\n"), 400},
    {"SOH in value", S(H "X-A: \x01\r\n\r\n"), 400},
    {"ESC in value", S(H "X-A: \x1b[0m\r\n\r\n"), 400},
    {"DEL in value", S(H "X-A: a\x7f\r\n\r\n"), 400},
    {"VT in value",
     S(H "X-A: a\x0b"
         "b\r\n\r\n"),
     400},
    {"NUL in name", S(H "X\0A: a\r\n\r\n"), 400},
    {"SP before colon", S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400},
    {"HTAB before colon", S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400},
    {"space in name", S(H "X A: a\r\n\r\n"), 400},
    {"paren in name", S(H "X(A): a\r\n\r\n"), 400},
    {"at in name", S(H "X@A: a\r\n\r\n"), 400},
    {"slash in name", S(H "X/A: a\r\n\r\n"), 400},
    {"obs-text in name", S(H "X\xc3\xa9: a\r\n\r\n"), 400},
    {"empty name", S(H ": a\r\n\r\n"), 400},
    {"no colon", S(H "X-A a\r\n\r\n"), 400},
    {"no colon, line ends", S(H "X-A\r\n\r\n"), 400},
    /* Request-line. */
    {"method with paren", S("G(ET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"method with NUL", S("G\0ET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"method with obs-text", S("G\xc9T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"empty method", S(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"lower-case method", S("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"method with one lower-case letter", S("DELETe / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"lower-case head", S("head / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"lower-case extension method", S("m-search * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"HTAB after method", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"TLS handshake", S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400},
    {"two SP after method", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"two SP after target", S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"HTAB in target", S("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"SOH in target", S("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL in target", S("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"DEL in target", S("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"0x80 in target", S("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"UTF-8 in target", S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"0xff in target", S("GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"fragment in target", S("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"relative target", S("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"scheme starting with digit", S("GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"asterisk with GET", S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT origin-form", S("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT without port", S("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT empty port", S("CONNECT a.example: HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT with path", S("CONNECT a.example:443/x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"no version", S("GET /\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/1.2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/2.0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/0.9", S("GET / HTTP/0.9\r\n\r\n"), 400},
    {"HTTP/1", S("GET / HTTP/1\r\nHost: a\r\n\r\n"), 400},
    {"HTTP/1.10", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {"lower-case version", S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {"SP after version", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {"HTTP/2 preface", S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400},
    /* Host. */
    {"missing Host", S("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400},
    {"missing Host, no fields", S("GET / HTTP/1.1\r\n\r\n"), 400},
    {"duplicate Host", S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {"duplicate Host, same", S("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400},
    {"duplicate Host in HTTP/1.0", S("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {"Host with space", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {"Host with slash", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {"Host with at", S("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400},
    {"Host with obs-text", S("GET / HTTP/1.1\r\nHost: \xc3\xa9\r\n\r\n"), 400},
    /* One tokenizer reads Connection for keep-alive and for hop-by-hop
     * removal; a list it could split two ways is refused. */
    {"Connection with inner space", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a x-b\r\n\r\n"),
     400},
    {"Connection with slash", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close/1\r\n\r\n"), 400},
    {"Connection quoted", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: \"close\"\r\n\r\n"), 400},
    {"Connection second line bad",
     S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: a;b\r\n\r\n"), 400},
};

static void test_request_refuse(void **state)
{
    (void)state;
    req_result_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(req_bad) / sizeof(req_bad[0]); i++) {
        const bad_t *t = &req_bad[i];
        parse_req(t->buf, t->len, &default_limits, r);
        if (r->rc != GH_H1_ERROR || r->status != t->status)
            fail_msg("%s: rc %d status %d, want status %d", t->name, r->rc, r->status, t->status);
        check_req_prefixes(t->name, t->buf, t->len, &default_limits, r);
    }
    free(r);
}

/* Every request refusal, turned into a response head, is a 502. */
static void test_response_refuse_from_requests(void **state)
{
    (void)state;
    res_result_t *r = malloc(sizeof(*r));
    char buf[512];
    int checked = 0;
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(req_bad) / sizeof(req_bad[0]); i++) {
        const bad_t *t = &req_bad[i];
        /* Only cases whose fault is in the fields, after a clean request-line;
         * Host rules are for requests only. */
        if (strncmp(t->buf, "GET / HTTP/1.1\r\n", 16) != 0 || strstr(t->name, "Host") != NULL)
            continue;
        size_t rest = t->len - 16;
        memcpy(buf, "HTTP/1.1 200 OK\r\n", 17);
        memcpy(buf + 17, t->buf + 16, rest);
        parse_res(buf, 17 + rest, &default_limits, r);
        if (r->rc != GH_H1_ERROR || r->status != 502)
            fail_msg("response %s: rc %d status %d", t->name, r->rc, r->status);
        check_res_prefixes(t->name, buf, 17 + rest, &default_limits, r);
        checked++;
    }
    for (size_t i = 0; i < sizeof(req_bad) / sizeof(req_bad[0]); i++) {
        const bad_t *t = &req_bad[i];
        if (strncmp(t->buf, P, sizeof(P) - 1) != 0)
            continue;
        size_t rest = t->len - (sizeof(P) - 1);
        memcpy(buf, "HTTP/1.1 200 OK\r\n", 17);
        memcpy(buf + 17, t->buf + sizeof(P) - 1, rest);
        parse_res(buf, 17 + rest, &default_limits, r);
        if (r->rc != GH_H1_ERROR || r->status != 502)
            fail_msg("response %s: rc %d status %d", t->name, r->rc, r->status);
        check_res_prefixes(t->name, buf, 17 + rest, &default_limits, r);
        checked++;
    }
    assert_true(checked > 40);
    free(r);
}

/* ---- limits ------------------------------------------------------------ */

static void test_request_uri_limit(void **state)
{
    (void)state;
    gh_h1_limits_t lim = {8192, 32, 10};
    req_result_t r;

    parse_req(S("GET /234567890 HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, 36);
    parse_req(S("GET /2345678901 HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_ERROR);
    assert_int_equal(r.status, 414);
    /* As soon as the target is one byte too long, without its end. */
    parse_req(S("GET /2345678901"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_ERROR);
    assert_int_equal(r.status, 414);
    parse_req(S("GET /234567890"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);

    lim.max_uri = 0;
    parse_req(S("GET /"), &lim, &r);
    assert_int_equal(r.status, 414);
    lim.max_uri = 1;
    parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, 27);

    /* The 414 wins over a byte that would be a 400 beyond the limit. */
    lim.max_uri = 4;
    parse_req(S("GET /abcd\x01 HTTP/1.1\r\n"), &lim, &r);
    assert_int_equal(r.status, 414);
    parse_req(S("GET /abc\x01 HTTP/1.1\r\n"), &lim, &r);
    assert_int_equal(r.status, 400);
}

static void test_request_head_limit(void **state)
{
    (void)state;
    static const char m[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\nNEXT";
    const size_t head = sizeof(m) - 1 - 4;
    gh_h1_limits_t lim = {head, 32, 2048};
    req_result_t r;

    /* Exactly max_head: fine, even with more bytes after it. */
    parse_req(m, sizeof(m) - 1, &lim, &r);
    assert_int_equal(r.rc, (int)head);
    /* One byte less of limit: 431 once there are more bytes than the limit. */
    lim.max_head = head - 1;
    parse_req(m, sizeof(m) - 1, &lim, &r);
    assert_int_equal(r.rc, GH_H1_ERROR);
    assert_int_equal(r.status, 431);
    parse_req(m, head - 1, &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);
    parse_req(m, head, &lim, &r);
    assert_int_equal(r.status, 431);

    /* An incomplete head past the limit. */
    lim.max_head = 16;
    parse_req(S("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaa"), &lim, &r);
    assert_int_equal(r.status, 431);
    /* Leading CRLFs count against the limit too. */
    parse_req(S("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"), &lim, &r);
    assert_int_equal(r.status, 431);
    /* A refusal inside the limit keeps its own status. */
    parse_req(S("GET / HTTP/1.1\n................................"), &lim, &r);
    assert_int_equal(r.status, 400);
    /* max_head 0: every byte is too many. */
    lim.max_head = 0;
    parse_req(S("G"), &lim, &r);
    assert_int_equal(r.status, 431);
    parse_req("", 0, &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);
}

static void test_request_header_count(void **state)
{
    (void)state;
    gh_h1_limits_t lim = {8192, 3, 2048};
    req_result_t r;

    parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), &lim, &r);
    assert_true(r.rc > 0);
    assert_int_equal(r.req.num_headers, 3);
    parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_ERROR);
    assert_int_equal(r.status, 431);
    /* Detected when the extra field starts, before the head is complete. */
    parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC"), &lim, &r);
    assert_int_equal(r.status, 431);
    parse_req(S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);

    lim.max_headers = 0;
    parse_req(S("GET / HTTP/1.0\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, 18);
    parse_req(S("GET / HTTP/1.0\r\nA: 1\r\n\r\n"), &lim, &r);
    assert_int_equal(r.status, 431);
}

/* A long realistic head, split at every byte, and every earlier head in a
 * pipeline parsing to the same result. */
static void test_request_incremental(void **state)
{
    (void)state;
    static const char m[] = "POST /api/v1/orders?id=42&x=%20 HTTP/1.1\r\n"
                            "Host: api.example.com:8443\r\n"
                            "User-Agent: curl/8.0\r\n"
                            "Accept: */*\r\n"
                            "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: 13\r\n"
                            "Connection: keep-alive\r\n"
                            "X-Empty:\r\n"
                            "\r\n"
                            "{\"qty\": 1234}";
    const size_t head = sizeof(m) - 1 - 13;
    req_result_t *whole = malloc(sizeof(*whole));
    req_result_t *part = malloc(sizeof(*part));
    assert_non_null(whole);
    assert_non_null(part);

    parse_req(m, sizeof(m) - 1, &default_limits, whole);
    assert_int_equal(whole->rc, (int)head);
    assert_int_equal(whole->req.body, GH_H1_BODY_LENGTH);
    assert_int_equal(whole->req.content_length, 13);
    assert_int_equal(whole->req.num_headers, 8);
    for (size_t n = 0; n <= sizeof(m) - 1; n++) {
        parse_req(m, n, &default_limits, part);
        if (n < head) {
            assert_int_equal(part->rc, GH_H1_INCOMPLETE);
            continue;
        }
        assert_int_equal(part->rc, whole->rc);
        assert_int_equal(part->req.num_headers, whole->req.num_headers);
        assert_ptr_equal(part->req.target, whole->req.target);
        for (size_t i = 0; i < whole->req.num_headers; i++) {
            assert_ptr_equal(part->hdrs[i].name, whole->hdrs[i].name);
            assert_int_equal(part->hdrs[i].name_len, whole->hdrs[i].name_len);
            assert_ptr_equal(part->hdrs[i].value, whole->hdrs[i].value);
            assert_int_equal(part->hdrs[i].value_len, whole->hdrs[i].value_len);
        }
    }
    free(whole);
    free(part);
}

static void test_request_pipeline(void **state)
{
    (void)state;
    static const char m[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                            "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                            "\r\nGET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    req_result_t r;
    size_t off = 0;

    parse_req(m + off, sizeof(m) - 1 - off, &default_limits, &r);
    assert_int_equal(r.rc, 28);
    assert_memory_equal(r.req.target, "/1", 2);
    off += (size_t)r.rc;
    parse_req(m + off, sizeof(m) - 1 - off, &default_limits, &r);
    assert_true(r.rc > 0);
    assert_memory_equal(r.req.target, "/2", 2);
    assert_int_equal(r.req.content_length, 2);
    off += (size_t)r.rc + 2;
    /* The CRLF a client may send after a body is skipped and counted. */
    parse_req(m + off, sizeof(m) - 1 - off, &default_limits, &r);
    assert_int_equal(r.rc, (int)(sizeof(m) - 1 - off));
    assert_memory_equal(r.req.target, "/3", 2);
    assert_int_equal(r.req.keep_alive, 0);
}

/* ---- responses ---------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *buf;
    size_t len;
    size_t rest; /* bytes after the head */
    int status;
    const char *reason;
    gh_h1_body_t body;
    uint64_t content_length;
    int keep_alive;
    size_t num_headers;
} res_ok_t;

static const res_ok_t res_ok[] = {
    {"200 CL", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), 5, 200, "OK",
     GH_H1_BODY_LENGTH, 5, 1, 1},
    {"200 CL 0", S("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, 200, "OK", GH_H1_BODY_NONE,
     0, 1, 1},
    {"200 chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"), 3, 200, "OK",
     GH_H1_BODY_CHUNKED, 0, 1, 1},
    {"200 until close", S("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), 0, 200, "OK",
     GH_H1_BODY_UNTIL_CLOSE, 0, 0, 1},
    {"HTTP/1.0 200 until close", S("HTTP/1.0 200 OK\r\n\r\n"), 0, 200, "OK", GH_H1_BODY_UNTIL_CLOSE,
     0, 0, 0},
    {"HTTP/1.0 keep-alive with CL",
     S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"), 0, 200, "OK",
     GH_H1_BODY_LENGTH, 1, 1, 2},
    {"HTTP/1.0 without keep-alive", S("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), 0, 200, "OK",
     GH_H1_BODY_LENGTH, 1, 0, 1},
    {"close", S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"), 0, 200, "OK",
     GH_H1_BODY_LENGTH, 1, 0, 2},
    {"204 with CL", S("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), 0, 204,
     "No Content", GH_H1_BODY_NONE, 0, 1, 1},
    {"204 with chunked", S("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, 204,
     "No Content", GH_H1_BODY_NONE, 0, 1, 1},
    {"304 with CL", S("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), 0, 304,
     "Not Modified", GH_H1_BODY_NONE, 0, 1, 1},
    {"304 bare", S("HTTP/1.1 304 Not Modified\r\n\r\n"), 0, 304, "Not Modified", GH_H1_BODY_NONE, 0,
     1, 0},
    {"100", S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), 17, 100, "Continue",
     GH_H1_BODY_NONE, 0, 1, 0},
    {"101",
     S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
       "Upgrade\r\n\r\n"),
     0, 101, "Switching Protocols", GH_H1_BODY_NONE, 0, 1, 2},
    {"103", S("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"), 0, 103,
     "Early Hints", GH_H1_BODY_NONE, 0, 1, 1},
    {"205", S("HTTP/1.1 205 Reset\r\n\r\n"), 0, 205, "Reset", GH_H1_BODY_UNTIL_CLOSE, 0, 0, 0},
    {"no reason, no SP", S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), 0, 200, "",
     GH_H1_BODY_NONE, 0, 1, 1},
    {"empty reason", S("HTTP/1.1 404 \r\nContent-Length: 2\r\n\r\n"), 0, 404, "", GH_H1_BODY_LENGTH,
     2, 1, 1},
    {"reason with SP, HTAB, obs-text", S("HTTP/1.1 500 It\tbroke \xe2\x9c\x97 \r\n\r\n"), 0, 500,
     "It\tbroke \xe2\x9c\x97 ", GH_H1_BODY_UNTIL_CLOSE, 0, 0, 0},
    {"999", S("HTTP/1.1 999 Odd\r\nContent-Length: 1\r\n\r\n"), 0, 999, "Odd", GH_H1_BODY_LENGTH, 1,
     1, 1},
    {"CL repeated equal", S("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"), 0,
     200, "OK", GH_H1_BODY_LENGTH, 3, 1, 2},
    {"Host in a response is just a field",
     S("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nContent-Length: 1\r\n\r\n"), 0, 200, "OK",
     GH_H1_BODY_LENGTH, 1, 1, 3},
};

static void test_response_accept(void **state)
{
    (void)state;
    res_result_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(res_ok) / sizeof(res_ok[0]); i++) {
        const res_ok_t *t = &res_ok[i];
        size_t want = t->len - t->rest;
        parse_res(t->buf, t->len, &default_limits, r);
        if (r->rc != (int)want)
            fail_msg("%s: rc %d (status %d), want %zu", t->name, r->rc, r->status, want);
        if (r->res.status != t->status || r->res.reason_len != strlen(t->reason) ||
            memcmp(r->res.reason, t->reason, r->res.reason_len) != 0)
            fail_msg("%s: status %d reason '%.*s'", t->name, r->res.status, (int)r->res.reason_len,
                     r->res.reason);
        if (r->res.body != t->body || r->res.content_length != t->content_length ||
            (int)r->res.keep_alive != t->keep_alive || r->res.num_headers != t->num_headers)
            fail_msg("%s: body %d cl %llu ka %d num %zu", t->name, (int)r->res.body,
                     (unsigned long long)r->res.content_length, r->res.keep_alive,
                     r->res.num_headers);
        check_res_prefixes(t->name, t->buf, t->len, &default_limits, r);
    }
    free(r);
}

static const bad_t res_bad[] = {
    {"CL and TE", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     502},
    {"TE gzip", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 502},
    {"TE gzip, chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 502},
    {"TE in HTTP/1.0", S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 502},
    {"CL differing", S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 502},
    {"CL malformed on 204", S("HTTP/1.1 204 OK\r\nContent-Length: x\r\n\r\n"), 502},
    {"CL and TE on 304",
     S("HTTP/1.1 304 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 502},
    {"status 099", S("HTTP/1.1 099 X\r\n\r\n"), 502},
    {"status 000", S("HTTP/1.1 000 X\r\n\r\n"), 502},
    {"status two digits", S("HTTP/1.1 20 OK\r\n\r\n"), 502},
    {"status four digits", S("HTTP/1.1 2000 OK\r\n\r\n"), 502},
    {"status letters", S("HTTP/1.1 2a0 OK\r\n\r\n"), 502},
    {"status missing", S("HTTP/1.1 \r\n\r\n"), 502},
    {"two SP before status", S("HTTP/1.1  200 OK\r\n\r\n"), 502},
    {"HTAB before status", S("HTTP/1.1\t200 OK\r\n\r\n"), 502},
    {"HTTP/2.0", S("HTTP/2.0 200 OK\r\n\r\n"), 502},
    {"HTTP/1.2", S("HTTP/1.2 200 OK\r\n\r\n"), 502},
    {"ICY", S("ICY 200 OK\r\n\r\n"), 502},
    {"lower-case version", S("http/1.1 200 OK\r\n\r\n"), 502},
    {"leading CRLF", S("\r\nHTTP/1.1 200 OK\r\n\r\n"), 502},
    {"bare LF status-line", S("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), 502},
    {"bare LF no reason", S("HTTP/1.1 200\n\r\n"), 502},
    {"bare CR status-line", S("HTTP/1.1 200 OK\rX\r\n\r\n"), 502},
    {"NUL in reason", S("HTTP/1.1 200 O\0K\r\n\r\n"), 502},
    {"DEL in reason", S("HTTP/1.1 200 O\x7fK\r\n\r\n"), 502},
    {"obs-fold", S("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), 502},
    {"space before colon", S("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"), 502},
};

static void test_response_refuse(void **state)
{
    (void)state;
    res_result_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(res_bad) / sizeof(res_bad[0]); i++) {
        const bad_t *t = &res_bad[i];
        parse_res(t->buf, t->len, &default_limits, r);
        if (r->rc != GH_H1_ERROR || r->status != t->status)
            fail_msg("%s: rc %d status %d", t->name, r->rc, r->status);
        check_res_prefixes(t->name, t->buf, t->len, &default_limits, r);
    }
    free(r);
}

static void test_response_limits(void **state)
{
    (void)state;
    gh_h1_limits_t lim = {32, 2, 1};
    res_result_t r;

    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"), &lim, &r);
    assert_int_equal(r.rc, 31);
    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), &lim, &r);
    assert_int_equal(r.status, 502);
    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nBBBBBBBBBBBBBBBBBBBB: 2\r\n\r\n"), &lim, &r);
    assert_int_equal(r.status, 502);
    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 222\r\n"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);
    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 222\r\n\r"), &lim, &r);
    assert_int_equal(r.rc, GH_H1_INCOMPLETE);
    parse_res(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 222\r\n\r\n"), &lim, &r);
    assert_int_equal(r.status, 502);
}

/* ---- helpers of the public API ------------------------------------------ */

static void test_tchar(void **state)
{
    (void)state;
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (int c = 0; c < 256; c++) {
        int want = c != 0 && memchr(tchars, c, sizeof(tchars) - 1) != NULL;
        if (gh_h1_is_tchar((unsigned char)c) != want)
            fail_msg("byte 0x%02x: tchar %d", c, !want);
    }
}

/* The reference reading of a #token list: split at commas, trim OWS, skip
 * empty members, and every other member must be one token. */
static int ref_token_list(const char *v, size_t len, char out[][8], size_t *n)
{
    size_t i = 0;
    *n = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            for (size_t k = a; k < b; k++)
                if (!gh_h1_is_tchar((unsigned char)v[k]))
                    return -1;
            memcpy(out[*n], v + a, b - a);
            out[*n][b - a] = '\0';
            (*n)++;
        }
        i = j + 1;
    }
    return 0;
}

/* Every string of up to 7 bytes over the bytes that matter, against the
 * reference reading. */
static void test_token_list(void **state)
{
    (void)state;
    static const char alpha[] = "aB, \t/\"";
    const size_t na = sizeof(alpha) - 1;
    char v[8];
    for (size_t len = 0; len <= 7; len++) {
        size_t total = 1;
        for (size_t k = 0; k < len; k++)
            total *= na;
        for (size_t x = 0; x < total; x++) {
            size_t y = x;
            for (size_t k = 0; k < len; k++, y /= na)
                v[k] = alpha[y % na];
            char want[8][8];
            size_t nwant;
            int ref = ref_token_list(v, len, want, &nwant);
            size_t pos = 0, got = 0;
            const char *t;
            size_t tl;
            int r;
            while ((r = gh_h1_token_list_next(v, len, &pos, &t, &tl)) > 0) {
                /* A refused list may yield members before the bad one. */
                if (ref == 0 &&
                    (got >= nwant || tl != strlen(want[got]) || memcmp(t, want[got], tl) != 0))
                    fail_msg("'%.*s': member %zu differs", (int)len, v, got);
                got++;
            }
            if (ref < 0 && r != GH_H1_ERROR)
                fail_msg("'%.*s': accepted, reference refuses", (int)len, v);
            if (ref == 0 && (r != 0 || got != nwant))
                fail_msg("'%.*s': r %d, %zu members, want %zu", (int)len, v, r, got, nwant);
        }
    }
}

static void test_authority(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "a",     "a.test",     "A-b.C_d~e",       "a:1",
        "a:",    "a:65535",    "a:00080",         "1.2.3.4:80",
        "[::1]", "[::1]:8080", "[fe80::1.2.3.4]", "xn--bcher-kva.test",
    };
    static const char *const bad[] = {
        "",       ":80",           "a:65536",      "a:99999", "a:123456",
        "a:8x",   "a:-1",          "u@a",          "u:p@a",   "@a",
        "a@",     "a%2eb",         "a b",          "a/b",     "a?b",
        "a#b",    "[::1",          "[]",           "[:]",     "[::g]",
        "[::1]x", "[::1]:x",       "[::1]:123456", "a:1:2",   "a]",
        "a[",     "\"a\"",         "a\\b",         "[v1.x]",  "a:+1",
        "a:1 ",   "a.test,b.test", "a;b",          "a=b",     "!$&'()*+,;=",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!gh_h1_authority_is_valid(ok[i], strlen(ok[i])))
            fail_msg("'%s' refused", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_h1_authority_is_valid(bad[i], strlen(bad[i])))
            fail_msg("'%s' accepted", bad[i]);
    /* Every byte in a host: only letters, digits and "-._~". */
    static const char allowed[] = "-._~";
    for (int c = 0; c < 256; c++) {
        char h[3] = {'a', (char)c, 'b'};
        int want = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c != 0 && memchr(allowed, c, sizeof(allowed) - 1) != NULL);
        if (c == ':') /* "a:b" is a port that is not digits */
            want = 0;
        if (gh_h1_authority_is_valid(h, 3) != want)
            fail_msg("byte 0x%02x in a host: %s", c, want ? "refused" : "accepted");
    }
    /* Every port from 0 to 99999, and six digits. */
    for (unsigned p = 0; p <= 99999; p += 1) {
        char h[16];
        int n = snprintf(h, sizeof(h), "a:%u", p);
        if (gh_h1_authority_is_valid(h, (size_t)n) != (p <= 65535))
            fail_msg("port %u", p);
    }
    assert_false(gh_h1_authority_is_valid("a:000001", 8));
}

static void test_name_is(void **state)
{
    (void)state;
    gh_h1_header_t h = {"Content-LENGTH", 14, "1", 1};
    assert_true(GH_H1_NAME_IS(&h, "content-length"));
    assert_false(GH_H1_NAME_IS(&h, "content-lengt"));
    assert_false(GH_H1_NAME_IS(&h, "content-lengthx"));
    assert_false(GH_H1_NAME_IS(&h, "content_length"));
    gh_h1_header_t e = {"", 0, "", 0};
    assert_true(gh_h1_name_is(&e, "", 0));
    /* Case folding is ASCII only: '@' and '`' differ by 0x20 but are not letters. */
    gh_h1_header_t at = {"@", 1, "", 0};
    assert_false(GH_H1_NAME_IS(&at, "`"));
    gh_h1_header_t br = {"[", 1, "", 0};
    assert_false(GH_H1_NAME_IS(&br, "{"));
}

/* The word-at-a-time comparison against a byte-at-a-time reference: every
 * byte value at every position of names of 1..40 bytes, against literals
 * made of letters, digits and the other tchars. */
static int ref_name_is(const char *s, size_t n, const char *lower, size_t ln)
{
    if (n != ln)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c |= 0x20;
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

static void test_name_is_words(void **state)
{
    (void)state;
    static const char lits[] = "abcxyz019-_~^!`|";
    char lower[40], name[40];
    for (size_t n = 1; n <= sizeof(lower); n++) {
        for (size_t i = 0; i < n; i++)
            lower[i] = lits[(i * 7 + n) % (sizeof(lits) - 1)];
        for (size_t pos = 0; pos < n; pos++) {
            for (int b = 0; b < 256; b++) {
                for (size_t i = 0; i < n; i++) {
                    char c = lower[i];
                    name[i] = (i % 3 == 0 && c >= 'a' && c <= 'z') ? (char)(c - 0x20) : c;
                }
                name[pos] = (char)b;
                gh_h1_header_t h = {name, n, "", 0};
                int want = ref_name_is(name, n, lower, n);
                if (gh_h1_name_is(&h, lower, n) != want)
                    fail_msg("length %zu, byte 0x%02x at %zu: got %d", n, b, pos, !want);
            }
        }
    }
}

/* Field values are scanned in 64- and 16-byte steps: every byte value at
 * every position of values of 0..150 bytes is accepted or refused as the
 * grammar says (HTAB, SP, VCHAR, obs-text), and an accepted value is whole. */
static void test_value_bytes(void **state)
{
    (void)state;
    static const char pre[] = "GET / HTTP/1.1\r\nHost: a\r\nX-V: ";
    char buf[256];
    req_result_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    for (size_t n = 1; n <= 150; n++) {
        for (size_t pos = 0; pos < n; pos++) {
            for (int b = 0; b < 256; b++) {
                size_t o = sizeof(pre) - 1;
                memcpy(buf, pre, o);
                for (size_t i = 0; i < n; i++)
                    buf[o + i] = (char)(i == pos ? b : i % 5 == 4 ? 0xe9 : (int)('a' + i % 26));
                /* Leading and trailing whitespace is not part of the value. */
                if ((b == ' ' || b == '\t') && (pos == 0 || pos == n - 1))
                    continue;
                o += n;
                memcpy(buf + o, "\r\n\r\n", 4);
                o += 4;
                int ok = b == '\t' || (b >= 0x20 && b != 0x7f);
                parse_req(buf, o, &default_limits, r);
                if (ok != (r->rc == (int)o))
                    fail_msg("value of %zu bytes, 0x%02x at %zu: rc %d", n, b, pos, r->rc);
                if (ok && (r->req.num_headers != 2 || r->hdrs[1].value_len != n))
                    fail_msg("value of %zu bytes, 0x%02x at %zu: value_len %zu", n, b, pos,
                             r->hdrs[1].value_len);
                if (!ok && r->status != 400)
                    fail_msg("value of %zu bytes, 0x%02x at %zu: status %d", n, b, pos, r->status);
            }
        }
    }
    free(r);
}

/* ---- chunked decoder ---------------------------------------------------- */

typedef struct {
    int rc; /* DONE or ERROR */
    size_t consumed;
    char data[4096];
    size_t data_len;
    char trailers[GH_H1_MAX_TRAILERS];
    size_t trailers_len;
    int status;
} chunk_result_t;

/* Feeds in[0..len) in pieces of at most `step` bytes (after a first piece
 * of `first` bytes), each piece in an exactly sized buffer. */
static void chunk_run(const char *in, size_t len, size_t first, size_t step, chunk_result_t *out)
{
    gh_h1_chunked_t *d = malloc(sizeof(*d));
    size_t off = 0;
    assert_non_null(d);
    memset(out, 0, sizeof(*out));
    gh_h1_chunked_init(d);
    out->rc = GH_H1_CHUNK_MORE;
    while (off < len) {
        size_t n = off == 0 && first ? first : step;
        if (n > len - off)
            n = len - off;
        char *piece = malloc(n);
        size_t pos = 0;
        assert_non_null(piece);
        memcpy(piece, in + off, n);
        for (;;) {
            size_t consumed = 0, doff = 0, dlen = 0;
            gh_h1_error_t err = {0, NULL};
            int rc = gh_h1_chunked_decode(d, piece + pos, n - pos, &consumed, &doff, &dlen, &err);
            assert_true(consumed <= n - pos);
            if (rc == GH_H1_ERROR) {
                assert_int_equal(err.status, 400);
                assert_non_null(err.detail);
                out->rc = rc;
                out->status = err.status;
                out->consumed = off + pos + consumed;
                free(piece);
                goto out;
            }
            if (rc == GH_H1_CHUNK_DATA) {
                assert_true(dlen > 0);
                assert_true(doff + dlen <= consumed);
                assert_true(out->data_len + dlen <= sizeof(out->data));
                memcpy(out->data + out->data_len, piece + pos + doff, dlen);
                out->data_len += dlen;
                pos += consumed;
                continue;
            }
            if (rc == GH_H1_CHUNK_DONE) {
                out->rc = rc;
                out->consumed = off + pos + consumed;
                memcpy(out->trailers, d->trailers, d->trailers_len);
                out->trailers_len = d->trailers_len;
                free(piece);
                goto out;
            }
            assert_int_equal(rc, GH_H1_CHUNK_MORE);
            assert_int_equal(consumed, n - pos);
            break;
        }
        free(piece);
        off += n;
    }
out:
    free(d);
}

typedef struct {
    const char *name;
    const char *buf;
    size_t len;
    const char *data;
    const char *trailers;
    size_t consumed; /* 0: whole buffer */
} chunk_ok_t;

static const chunk_ok_t chunk_ok[] = {
    {"one chunk", S("5\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"no chunks", S("0\r\n\r\n"), "", "", 0},
    {"many zeros", S("000\r\n\r\n"), "", "", 0},
    {"two chunks, hex", S("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n"),
     "0123456789abcdefghijk", "", 0},
    {"leading zeros", S("0000000000000000000000005\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"binary data", S("6\r\n\r\n\0\n\r0\r\n0\r\n\r\n"), "\r\n\0\n\r0", "", 0},
    {"extension", S("5;name\r\nhello\r\n0;last\r\n\r\n"), "hello", "", 0},
    {"extension value", S("5;a=b;c=d\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"extension BWS", S("5 ; a = b\t;\tc\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"extension quoted", S("5;a=\"x y;\\\"z\\\\\"\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"extension quoted then more", S("5;a=\"\" ;b\r\nhello\r\n0\r\n\r\n"), "hello", "", 0},
    {"trailers", S("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-B:\t 1 \r\n\r\n"), "hello",
     "X-Sum: abc\r\nX-B:\t 1 \r\n", 0},
    {"trailer empty value", S("0\r\nX:\r\n\r\n"), "", "X:\r\n", 0},
    {"pipelined after", S("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), "abc", "", 13},
    {"pipelined after trailers", S("0\r\nA: b\r\n\r\n0\r\n\r\n"), "", "A: b\r\n", 11},
};

static void check_chunk_ok(const chunk_ok_t *t, const chunk_result_t *r, const char *how)
{
    size_t want_consumed = t->consumed ? t->consumed : t->len;
    if (r->rc != GH_H1_CHUNK_DONE)
        fail_msg("%s (%s): rc %d", t->name, how, r->rc);
    if (r->consumed != want_consumed)
        fail_msg("%s (%s): consumed %zu want %zu", t->name, how, r->consumed, want_consumed);
    if (r->trailers_len != strlen(t->trailers) ||
        memcmp(r->trailers, t->trailers, r->trailers_len) != 0)
        fail_msg("%s (%s): trailers '%.*s'", t->name, how, (int)r->trailers_len, r->trailers);
}

static void test_chunked_accept(void **state)
{
    (void)state;
    chunk_result_t *whole = malloc(sizeof(*whole));
    chunk_result_t *r = malloc(sizeof(*r));
    assert_non_null(whole);
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(chunk_ok) / sizeof(chunk_ok[0]); i++) {
        const chunk_ok_t *t = &chunk_ok[i];
        chunk_run(t->buf, t->len, 0, t->len, whole);
        check_chunk_ok(t, whole, "whole");
        if (strcmp(t->name, "binary data") == 0) {
            assert_int_equal(whole->data_len, 6);
            assert_memory_equal(whole->data, "\r\n\0\n\r0", 6);
        } else if (whole->data_len != strlen(t->data) ||
                   memcmp(whole->data, t->data, whole->data_len) != 0) {
            fail_msg("%s: data '%.*s'", t->name, (int)whole->data_len, whole->data);
        }
        /* Split in two at every point, and byte by byte. */
        for (size_t cut = 1; cut < t->len; cut++) {
            chunk_run(t->buf, t->len, cut, t->len, r);
            check_chunk_ok(t, r, "split");
            assert_int_equal(r->data_len, whole->data_len);
            assert_memory_equal(r->data, whole->data, whole->data_len);
        }
        chunk_run(t->buf, t->len, 0, 1, r);
        check_chunk_ok(t, r, "bytewise");
        assert_int_equal(r->data_len, whole->data_len);
        assert_memory_equal(r->data, whole->data, whole->data_len);
        /* Three pieces at every pair of points would be O(n^2) runs; use
         * steps of 2..7 instead. */
        for (size_t step = 2; step < 8; step++) {
            chunk_run(t->buf, t->len, 0, step, r);
            check_chunk_ok(t, r, "steps");
            assert_memory_equal(r->data, whole->data, whole->data_len);
        }
    }
    free(whole);
    free(r);
}

static const bad_t chunk_bad[] = {
    {"empty size", S("\r\n"), 400},
    {"non-hex size", S("x\r\n"), 400},
    {"size then junk", S("5x\r\nhello\r\n0\r\n\r\n"), 400},
    {"plus sign", S("+5\r\nhello\r\n"), 400},
    {"minus sign", S("-5\r\nhello\r\n"), 400},
    {"0x prefix", S("0x5\r\nhello\r\n"), 400},
    {"leading SP", S(" 5\r\nhello\r\n"), 400},
    {"trailing SP", S("5 \r\nhello\r\n"), 400},
    {"trailing HTAB", S("5\t\r\nhello\r\n"), 400},
    {"bare LF size", S("5\nhello\r\n0\r\n\r\n"), 400},
    {"bare CR size", S("5\rhello\r\n"), 400},
    {"bare LF after data", S("5\r\nhello\n0\r\n\r\n"), 400},
    {"missing CRLF after data", S("5\r\nhelloX\r\n"), 400},
    {"data longer than size", S("3\r\nhello\r\n"), 400},
    {"CR CR after data", S("5\r\nhello\r\r\n"), 400},
    {"16 hex digits", S("1000000000000000\r\n"), 400},
    {"2^64", S("10000000000000000\r\n"), 400},
    {"max 64-bit", S("ffffffffffffffff\r\n"), 400},
    {"16 digits after zeros", S("00001000000000000000\r\n"), 400},
    {"ext without name", S("5;\r\nhello\r\n"), 400},
    {"ext empty name then more", S("5;;a\r\nhello\r\n"), 400},
    {"ext BWS then CRLF", S("5;a \r\nhello\r\n"), 400},
    {"ext value BWS then CRLF", S("5;a=b \r\nhello\r\n"), 400},
    {"ext empty value", S("5;a=\r\nhello\r\n"), 400},
    {"ext CTL", S("5;a\x01\r\nhello\r\n"), 400},
    {"ext NUL", S("5;a=\0\r\nhello\r\n"), 400},
    {"ext CTL in quotes", S("5;a=\"\x01\"\r\nhello\r\n"), 400},
    {"ext bare LF in quotes", S("5;a=\"\n\"\r\nhello\r\n"), 400},
    {"ext unterminated quote", S("5;a=\"b\r\nhello\r\n"), 400},
    {"ext junk after quote", S("5;a=\"b\"c\r\nhello\r\n"), 400},
    {"ext non-token name", S("5;a@b\r\nhello\r\n"), 400},
    {"ext bare LF", S("5;a\nhello\r\n"), 400},
    {"last chunk bare LF", S("0\n\r\n"), 400},
    {"final bare LF", S("0\r\n\n"), 400},
    {"final CR CR", S("0\r\n\r\r"), 400},
    {"trailer obs-fold", S("0\r\nX: a\r\n b\r\n\r\n"), 400},
    {"trailer leading SP", S("0\r\n X: a\r\n\r\n"), 400},
    {"trailer SP before colon", S("0\r\nX : a\r\n\r\n"), 400},
    {"trailer empty name", S("0\r\n: a\r\n\r\n"), 400},
    {"trailer no colon", S("0\r\nXa\r\n\r\n"), 400},
    {"trailer NUL", S("0\r\nX: a\0\r\n\r\n"), 400},
    {"trailer DEL", S("0\r\nX: a\x7f\r\n\r\n"), 400},
    {"trailer bare LF", S("0\r\nX: a\n\r\n"), 400},
    {"trailer bare CR", S("0\r\nX: a\rb\r\n\r\n"), 400},
    {"trailer obs-text name", S("0\r\nX\xe9: a\r\n\r\n"), 400},
    {"trailer Content-Length", S("0\r\nContent-Length: 5\r\n\r\n"), 400},
    {"trailer Transfer-Encoding", S("0\r\ntransfer-ENCODING: chunked\r\n\r\n"), 400},
    {"trailer junk start", S("0\r\n\x01\r\n\r\n"), 400},
};

static void test_chunked_refuse(void **state)
{
    (void)state;
    chunk_result_t *whole = malloc(sizeof(*whole));
    chunk_result_t *r = malloc(sizeof(*r));
    assert_non_null(whole);
    assert_non_null(r);
    for (size_t i = 0; i < sizeof(chunk_bad) / sizeof(chunk_bad[0]); i++) {
        const bad_t *t = &chunk_bad[i];
        chunk_run(t->buf, t->len, 0, t->len, whole);
        if (whole->rc != GH_H1_ERROR || whole->status != t->status)
            fail_msg("%s: rc %d status %d", t->name, whole->rc, whole->status);
        for (size_t cut = 1; cut < t->len; cut++) {
            chunk_run(t->buf, t->len, cut, t->len, r);
            if (r->rc != GH_H1_ERROR || r->consumed != whole->consumed)
                fail_msg("%s: split at %zu: rc %d at %zu, whole at %zu", t->name, cut, r->rc,
                         r->consumed, whole->consumed);
        }
        chunk_run(t->buf, t->len, 0, 1, r);
        if (r->rc != GH_H1_ERROR || r->consumed != whole->consumed)
            fail_msg("%s: bytewise: rc %d", t->name, r->rc);
    }
    free(whole);
    free(r);
}

static void test_chunked_sizes(void **state)
{
    (void)state;
    gh_h1_chunked_t d;
    gh_h1_error_t err;
    size_t consumed, off, len;

    /* 15 significant digits is the largest size accepted. */
    gh_h1_chunked_init(&d);
    assert_int_equal(
        gh_h1_chunked_decode(&d, S("0fffffffffffffff\r\nab"), &consumed, &off, &len, &err),
        GH_H1_CHUNK_DATA);
    assert_int_equal(off, 18);
    assert_int_equal(len, 2);
    assert_int_equal(consumed, 20);
    assert_true(d.remaining == 0xfffffffffffffffull - 2);

    /* The size line is bounded, also when it is only zeros. */
    static char line[5000];
    memset(line, '0', sizeof(line));
    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, line, 4096, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_MORE);
    assert_int_equal(gh_h1_chunked_decode(&d, line, 1, &consumed, &off, &len, &err), GH_H1_ERROR);
    /* ... and a long extension with it. */
    memcpy(line, "1;a=\"", 5);
    memset(line + 5, 'x', sizeof(line) - 5);
    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, line, sizeof(line), &consumed, &off, &len, &err),
                     GH_H1_ERROR);
    assert_int_equal(consumed, 4096);
    /* Just under the bound is fine: 4094 bytes then CRLF is 4096. */
    memset(line, '0', 4093);
    memcpy(line + 4093, "1\r\nz\r\n", 6);
    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, line, 4099, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DATA);
    assert_int_equal(off, 4096);
    assert_int_equal(len, 1);
}

static void test_chunked_events(void **state)
{
    (void)state;
    static const char in[] = "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nX";
    gh_h1_chunked_t d;
    gh_h1_error_t err;
    size_t consumed, off, len, pos = 0;

    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, in, 0, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_MORE);
    assert_int_equal(consumed, 0);
    assert_int_equal(gh_h1_chunked_decode(&d, in, sizeof(in) - 1, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DATA);
    assert_int_equal(off, 3);
    assert_int_equal(len, 3);
    assert_int_equal(consumed, 6);
    pos += consumed;
    assert_int_equal(
        gh_h1_chunked_decode(&d, in + pos, sizeof(in) - 1 - pos, &consumed, &off, &len, &err),
        GH_H1_CHUNK_DATA);
    assert_int_equal(off, 5);
    assert_int_equal(len, 4);
    assert_memory_equal(in + pos + off, "defg", 4);
    pos += consumed;
    assert_int_equal(
        gh_h1_chunked_decode(&d, in + pos, sizeof(in) - 1 - pos, &consumed, &off, &len, &err),
        GH_H1_CHUNK_DONE);
    pos += consumed;
    assert_int_equal(pos, sizeof(in) - 2);
    assert_int_equal(len, 0);
    /* Done stays done and consumes nothing. */
    assert_int_equal(gh_h1_chunked_decode(&d, in + pos, 1, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DONE);
    assert_int_equal(consumed, 0);

    /* An error is sticky. */
    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, S("z"), &consumed, &off, &len, &err), GH_H1_ERROR);
    assert_int_equal(consumed, 0);
    assert_int_equal(gh_h1_chunked_decode(&d, S("0\r\n\r\n"), &consumed, &off, &len, &err),
                     GH_H1_ERROR);
    assert_int_equal(err.status, 400);

    /* A data event covers only what is there; the rest comes later. */
    gh_h1_chunked_init(&d);
    assert_int_equal(gh_h1_chunked_decode(&d, S("10\r\n0123"), &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DATA);
    assert_int_equal(len, 4);
    assert_true(d.remaining == 12);
    assert_int_equal(gh_h1_chunked_decode(&d, S("456789abcdef\r"), &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DATA);
    assert_int_equal(off, 0);
    assert_int_equal(len, 12);
    assert_int_equal(consumed, 12);
    assert_int_equal(gh_h1_chunked_decode(&d, S("\r"), &consumed, &off, &len, &err),
                     GH_H1_CHUNK_MORE);
    assert_int_equal(gh_h1_chunked_decode(&d, S("\n0\r\n\r\n"), &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DONE);
    assert_int_equal(consumed, 6);
}

static void test_chunked_trailer_limit(void **state)
{
    (void)state;
    gh_h1_chunked_t *d = malloc(sizeof(*d));
    gh_h1_error_t err;
    size_t consumed, off, len;
    static char buf[GH_H1_MAX_TRAILERS + 64];
    assert_non_null(d);

    /* Trailer lines totalling exactly GH_H1_MAX_TRAILERS bytes fit. */
    size_t n = 0;
    memcpy(buf, "0\r\n", 3);
    n = 3;
    size_t total = 0;
    while (total + 100 <= GH_H1_MAX_TRAILERS) {
        memcpy(buf + n, "X: ", 3);
        memset(buf + n + 3, 'v', 95);
        memcpy(buf + n + 98, "\r\n", 2);
        n += 100;
        total += 100;
    }
    size_t pad = GH_H1_MAX_TRAILERS - total; /* one more line of this length */
    assert_true(pad >= 5);
    memcpy(buf + n, "Y: ", 3);
    memset(buf + n + 3, 'w', pad - 5);
    memcpy(buf + n + pad - 2, "\r\n", 2);
    n += pad;
    memcpy(buf + n, "\r\n", 2);
    gh_h1_chunked_init(d);
    assert_int_equal(gh_h1_chunked_decode(d, buf, n + 2, &consumed, &off, &len, &err),
                     GH_H1_CHUNK_DONE);
    assert_int_equal(d->trailers_len, GH_H1_MAX_TRAILERS);
    assert_int_equal(consumed, n + 2);

    /* One more byte is refused. */
    memmove(buf + n - 1, buf + n - 2, 4);
    buf[n - 2] = 'w';
    gh_h1_chunked_init(d);
    assert_int_equal(gh_h1_chunked_decode(d, buf, n + 3, &consumed, &off, &len, &err), GH_H1_ERROR);
    assert_int_equal(err.status, 400);
    free(d);
}

/* A chunked request end to end: head, then the body in odd pieces. */
static void test_request_then_chunked(void **state)
{
    (void)state;
    static const char m[] = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
                            "Expires: never\r\n\r\n";
    req_result_t r;
    chunk_result_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    parse_req(m, sizeof(m) - 1, &default_limits, &r);
    assert_true(r.rc > 0);
    assert_int_equal(r.req.body, GH_H1_BODY_CHUNKED);
    const char *body = m + r.rc;
    size_t blen = sizeof(m) - 1 - (size_t)r.rc;
    for (size_t step = 1; step <= blen; step++) {
        chunk_run(body, blen, 0, step, c);
        assert_int_equal(c->rc, GH_H1_CHUNK_DONE);
        assert_int_equal(c->consumed, blen);
        assert_int_equal(c->data_len, 23);
        assert_memory_equal(c->data, "Wikipedia in\r\n\r\nchunks.", 23);
        assert_int_equal(c->trailers_len, 16);
        assert_memory_equal(c->trailers, "Expires: never\r\n", 16);
    }
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_accept),
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_request_refuse),
        cmocka_unit_test(test_response_refuse_from_requests),
        cmocka_unit_test(test_request_uri_limit),
        cmocka_unit_test(test_request_head_limit),
        cmocka_unit_test(test_request_header_count),
        cmocka_unit_test(test_request_incremental),
        cmocka_unit_test(test_request_pipeline),
        cmocka_unit_test(test_response_accept),
        cmocka_unit_test(test_response_refuse),
        cmocka_unit_test(test_response_limits),
        cmocka_unit_test(test_tchar),
        cmocka_unit_test(test_token_list),
        cmocka_unit_test(test_authority),
        cmocka_unit_test(test_name_is),
        cmocka_unit_test(test_name_is_words),
        cmocka_unit_test(test_value_bytes),
        cmocka_unit_test(test_chunked_accept),
        cmocka_unit_test(test_chunked_refuse),
        cmocka_unit_test(test_chunked_sizes),
        cmocka_unit_test(test_chunked_events),
        cmocka_unit_test(test_chunked_trailer_limit),
        cmocka_unit_test(test_request_then_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
