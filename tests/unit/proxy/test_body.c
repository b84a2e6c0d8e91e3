/*
 * Body pump (src/proxy/body.c): Content-Length, chunked and close-delimited
 * sources, relayed raw or re-framed as chunked. The iovecs a fill produces
 * are joined and compared byte for byte with the stream the sink must see.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "proxy/body.h"

#include <gatehouse/fields.h>

/* ---- helpers ---- */

typedef struct {
    char buf[65536];
    size_t len;
} out_t;

static void out_add(out_t *o, const uv_buf_t *bufs, int n)
{
    assert_true(n >= 0);
    assert_true((size_t)n <= GH_PUMP_MAX_BUFS);
    for (int i = 0; i < n; i++) {
        assert_true(o->len + bufs[i].len <= sizeof(o->buf));
        memcpy(o->buf + o->len, bufs[i].base, bufs[i].len);
        o->len += bufs[i].len;
    }
}

static void out_str(out_t *o, const char *s, size_t n)
{
    assert_true(o->len + n <= sizeof(o->buf));
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void assert_out(const out_t *o, const char *want, size_t want_len)
{
    if (o->len != want_len || memcmp(o->buf, want, want_len) != 0)
        fail_msg("output differs:\n got  (%zu) [%.*s]\n want (%zu) [%.*s]", o->len, (int)o->len,
                 o->buf, want_len, (int)want_len, want);
}
#define ASSERT_OUT(o, lit) assert_out((o), (lit), sizeof(lit) - 1)

/* The payload of the last fill, from bp->data. */
static void data_add(out_t *o, const gh_body_pump_t *bp)
{
    for (unsigned i = 0; i < bp->num_data; i++)
        out_str(o, bp->data[i].base, bp->data[i].len);
}

static gh_arena_t arena;

static int allow_all(const char *name, size_t len, void *arg)
{
    (void)name;
    (void)len;
    (void)arg;
    return 1;
}

static int setup(void **state)
{
    (void)state;
    gh_arena_init(&arena, 16384);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gh_arena_dispose(&arena);
    return 0;
}

/* One fill; checks the invariants every fill keeps. */
static int fill(gh_body_pump_t *bp, char *p, size_t len, out_t *o, size_t *consumed,
                uint64_t *payload)
{
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    gh_h1_error_t err = {0, NULL};
    size_t c = 12345;
    uint64_t pl = 12345;
    int n = gh_body_pump_fill(bp, p, len, bufs, &c, &pl, &err);
    assert_true(n >= 0);
    assert_true(c <= len);
    uint64_t spans = 0;
    for (unsigned i = 0; i < bp->num_data; i++) {
        /* payload spans point into the source, no copy */
        assert_true(bp->data[i].base >= p && bp->data[i].base + bp->data[i].len <= p + c);
        spans += bp->data[i].len;
    }
    assert_int_equal(spans, pl);
    out_add(o, bufs, n);
    *consumed = c;
    *payload = pl;
    return n;
}

/* ---- Content-Length ---- */

static void test_length_raw_partial(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_LENGTH, 10, GH_PUMP_OUT_RAW), 0);
    assert_false(bp.done);
    assert_null(bp.dec);

    char a[] = "hel";
    assert_int_equal(fill(&bp, a, 3, &o, &c, &pl), 1);
    assert_int_equal(c, 3);
    assert_int_equal(pl, 3);
    assert_int_equal(bp.remaining, 7);
    assert_false(bp.done);

    char b[] = "lo";
    fill(&bp, b, 2, &o, &c, &pl);
    assert_int_equal(c, 2);
    assert_false(bp.done);

    /* The end of the body and the next request's bytes in one read. */
    char d[] = "worldGET / HTTP/1.1\r\n";
    fill(&bp, d, strlen(d), &o, &c, &pl);
    assert_int_equal(c, 5);
    assert_int_equal(pl, 5);
    assert_true(bp.done);
    assert_int_equal(bp.remaining, 0);
    ASSERT_OUT(&o, "helloworld");
    assert_string_equal(d + c, "GET / HTTP/1.1\r\n"); /* untouched */

    /* Done: nothing more is taken. */
    assert_int_equal(fill(&bp, d + c, strlen(d + c), &o, &c, &pl), 0);
    assert_int_equal(c, 0);
    assert_int_equal(pl, 0);
    assert_int_equal(bp.num_data, 0);
}

static void test_length_exact_end(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_LENGTH, 4, GH_PUMP_OUT_RAW), 0);
    char a[] = "abcd";
    assert_int_equal(fill(&bp, a, 4, &o, &c, &pl), 1);
    assert_int_equal(c, 4);
    assert_true(bp.done);
    ASSERT_OUT(&o, "abcd");
}

static void test_length_to_chunked(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_LENGTH, 20, GH_PUMP_OUT_CHUNKED), 0);
    char a[] = "0123456789abcdef"; /* 16 bytes: size line "10" */
    assert_int_equal(fill(&bp, a, 16, &o, &c, &pl), 3);
    assert_false(bp.done);
    char b[] = "WXYZtrailing";
    assert_int_equal(fill(&bp, b, strlen(b), &o, &c, &pl), 4);
    assert_int_equal(c, 4);
    assert_true(bp.done);
    ASSERT_OUT(&o, "10\r\n0123456789abcdef\r\n4\r\nWXYZ\r\n0\r\n\r\n");
}

static void test_length_zero_and_none(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    char x[] = "xyz";

    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_LENGTH, 0, GH_PUMP_OUT_RAW), 0);
    assert_true(bp.done);
    assert_int_equal(fill(&bp, x, 3, &o, &c, &pl), 0);
    assert_int_equal(c, 0);

    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_NONE, 0, GH_PUMP_OUT_RAW), 0);
    assert_true(bp.done);
    assert_int_equal(fill(&bp, x, 3, &o, &c, &pl), 0);
    assert_int_equal(c, 0);
    assert_int_equal(pl, 0);

    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_NONE, 0, GH_PUMP_OUT_CHUNKED), 0);
    assert_true(bp.done);
    assert_int_equal(fill(&bp, x, 3, &o, &c, &pl), 0);
    assert_int_equal(o.len, 0);

    /* An empty fill on a live pump takes nothing and does not end it. */
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_LENGTH, 3, GH_PUMP_OUT_RAW), 0);
    assert_int_equal(fill(&bp, x, 0, &o, &c, &pl), 0);
    assert_false(bp.done);
}

/* ---- chunked ---- */

/* A strict decoder of the pump's chunked output, independent of h1.c. */
static void decode_chunked(const char *s, size_t n, out_t *payload, out_t *trailers)
{
    size_t i = 0;
    for (;;) {
        size_t size = 0;
        size_t digits = 0;
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            size = size * 16 + (size_t)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
            i++;
            digits++;
        }
        assert_true(digits > 0);
        assert_true(i + 2 <= n && s[i] == '\r' && s[i + 1] == '\n'); /* no extensions */
        i += 2;
        if (size == 0)
            break;
        assert_true(i + size + 2 <= n);
        out_str(payload, s + i, size);
        i += size;
        assert_true(s[i] == '\r' && s[i + 1] == '\n');
        i += 2;
    }
    /* trailer section: lines until an empty one, which must end the output */
    size_t start = i;
    for (;;) {
        const char *e = memchr(s + i, '\n', n - i);
        assert_non_null(e);
        size_t l = (size_t)(e - (s + i)) + 1;
        assert_true(l >= 2 && s[i + l - 2] == '\r');
        if (l == 2) {
            out_str(trailers, s + start, i - start);
            i += 2;
            break;
        }
        i += l;
    }
    assert_int_equal(i, n);
}

static const char sample[] = "5;ext=\"a b\"\r\nhello\r\n"
                             "6\r\n world\r\n"
                             "A\r\n0123456789\r\n"
                             "0\r\n"
                             "X-Sum: abc\r\n"
                             "Y: two\r\n"
                             "\r\n"
                             "NEXT";
static const char sample_payload[] = "hello world0123456789";
static const char sample_trailers[] = "X-Sum: abc\r\nY: two\r\n";
#define SAMPLE_BODY_LEN (sizeof(sample) - 1 - 4) /* without "NEXT" */

/* Where the payload bytes sit in sample. */
static const struct {
    size_t off, len;
} sample_data[] = {{13, 5}, {23, 6}, {34, 10}};

static void test_sample_layout(void **state)
{
    (void)state;
    /* guards the offsets the split tests rely on */
    assert_memory_equal(sample + sample_data[0].off, "hello", 5);
    assert_memory_equal(sample + sample_data[1].off, " world", 6);
    assert_memory_equal(sample + sample_data[2].off, "0123456789", 10);
    assert_memory_equal(sample + SAMPLE_BODY_LEN, "NEXT", 4);
}

static void test_chunked_to_chunked_whole(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    char in[sizeof(sample)];
    memcpy(in, sample, sizeof(sample));
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_CHUNKED), 0);
    assert_non_null(bp.dec);
    bp.on_trailer = allow_all;
    /* 3 spans x 3 bufs + last chunk line + trailers + final CRLF */
    assert_int_equal(fill(&bp, in, sizeof(sample) - 1, &o, &c, &pl), 12);
    assert_true(bp.done);
    assert_int_equal(c, SAMPLE_BODY_LEN);
    assert_int_equal(pl, sizeof(sample_payload) - 1);
    assert_int_equal(bp.num_data, 3);
    ASSERT_OUT(&o,
               "5\r\nhello\r\n6\r\n world\r\na\r\n0123456789\r\n0\r\nX-Sum: abc\r\nY: two\r\n\r\n");
    assert_string_equal(in + c, "NEXT");

    /* Once done, further bytes are not taken. */
    assert_int_equal(fill(&bp, in + c, 4, &o, &c, &pl), 0);
    assert_int_equal(c, 0);
}

/* The output expected when sample is fed in pieces cut at cuts[]: each
 * payload region is cut at the piece boundaries inside it, and each part
 * becomes one chunk. */
static void expected_for_cuts(const size_t *cuts, size_t ncuts, out_t *want)
{
    for (size_t r = 0; r < 3; r++) {
        size_t off = sample_data[r].off, end = off + sample_data[r].len;
        size_t at = off;
        for (size_t k = 0; k <= ncuts; k++) {
            size_t stop = k < ncuts ? cuts[k] : end;
            if (stop <= at)
                continue;
            if (stop > end)
                stop = end;
            char line[24];
            int m = snprintf(line, sizeof(line), "%zx\r\n", stop - at);
            out_str(want, line, (size_t)m);
            out_str(want, sample + at, stop - at);
            out_str(want, "\r\n", 2);
            at = stop;
            if (at == end)
                break;
        }
    }
    out_str(want, "0\r\n", 3);
    out_str(want, sample_trailers, sizeof(sample_trailers) - 1);
    out_str(want, "\r\n", 2);
}

/* Feeds sample in pieces [0, cuts[0]), [cuts[0], cuts[1]), ... as separate
 * reads, each piece in its own buffer so that ASan sees any read past it. */
static void run_cuts(const size_t *cuts, size_t ncuts, gh_pump_out_t out_kind)
{
    gh_arena_t a;
    gh_arena_init(&a, 16384);
    gh_body_pump_t bp;
    out_t *o = calloc(1, sizeof(*o));
    out_t *want = calloc(1, sizeof(*want));
    out_t *pay = calloc(1, sizeof(*pay));
    assert_non_null(o);
    assert_non_null(want);
    assert_non_null(pay);
    assert_int_equal(gh_body_pump_init(&bp, &a, GH_H1_BODY_CHUNKED, 0, out_kind), 0);
    bp.on_trailer = allow_all;
    size_t total = sizeof(sample) - 1, pos = 0;
    uint64_t payload = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : total;
        if (end < pos)
            end = pos;
        size_t n = end - pos;
        char *piece = malloc(n ? n : 1);
        memcpy(piece, sample + pos, n);
        size_t off = 0;
        while (off < n && !bp.done) {
            size_t c;
            uint64_t pl;
            fill(&bp, piece + off, n - off, o, &c, &pl);
            data_add(pay, &bp);
            payload += pl;
            if (c == 0)
                break;
            off += c;
        }
        free(piece);
        /* Bytes the pump did not take are the next message's. */
        if (bp.done) {
            assert_int_equal(pos + off, SAMPLE_BODY_LEN);
            break;
        }
        assert_int_equal(off, n);
        pos = end;
    }
    assert_true(bp.done);
    assert_int_equal(payload, sizeof(sample_payload) - 1);
    assert_out(pay, sample_payload, sizeof(sample_payload) - 1);
    if (out_kind == GH_PUMP_OUT_CHUNKED) {
        out_t *dp = calloc(1, sizeof(*dp));
        out_t *dt = calloc(1, sizeof(*dt));
        decode_chunked(o->buf, o->len, dp, dt);
        assert_out(dp, sample_payload, sizeof(sample_payload) - 1);
        assert_out(dt, sample_trailers, sizeof(sample_trailers) - 1);
        expected_for_cuts(cuts, ncuts, want);
        assert_out(o, want->buf, want->len);
        free(dp);
        free(dt);
    } else {
        assert_out(o, sample_payload, sizeof(sample_payload) - 1);
    }
    free(o);
    free(want);
    free(pay);
    gh_arena_dispose(&a);
}

static void test_chunked_to_chunked_split_everywhere(void **state)
{
    (void)state;
    size_t total = sizeof(sample) - 1;
    for (size_t i = 0; i <= total; i++) {
        size_t cuts[1] = {i};
        run_cuts(cuts, 1, GH_PUMP_OUT_CHUNKED);
    }
    /* and every pair of cut points */
    for (size_t i = 1; i < total; i++)
        for (size_t j = i; j < total; j++) {
            size_t cuts[2] = {i, j};
            run_cuts(cuts, 2, GH_PUMP_OUT_CHUNKED);
        }
}

static void test_chunked_byte_by_byte(void **state)
{
    (void)state;
    size_t cuts[sizeof(sample)];
    size_t n = 0;
    for (size_t i = 1; i < sizeof(sample) - 1; i++)
        cuts[n++] = i;
    run_cuts(cuts, n, GH_PUMP_OUT_CHUNKED);
    run_cuts(cuts, n, GH_PUMP_OUT_RAW);
}

static void test_chunked_to_raw(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    char in[sizeof(sample)];
    memcpy(in, sample, sizeof(sample));
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_RAW), 0);
    assert_int_equal(fill(&bp, in, sizeof(sample) - 1, &o, &c, &pl), 3);
    assert_true(bp.done);
    assert_int_equal(c, SAMPLE_BODY_LEN);
    ASSERT_OUT(&o, "hello world0123456789"); /* no framing, no trailers */

    size_t total = sizeof(sample) - 1;
    for (size_t i = 0; i <= total; i++) {
        size_t cuts[1] = {i};
        run_cuts(cuts, 1, GH_PUMP_OUT_RAW);
    }
}

static void test_chunked_empty_body(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    char in[] = "0\r\n\r\nX";
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_CHUNKED), 0);
    assert_int_equal(fill(&bp, in, 6, &o, &c, &pl), 2);
    assert_true(bp.done);
    assert_int_equal(c, 5);
    assert_int_equal(pl, 0);
    assert_int_equal(bp.num_data, 0);
    ASSERT_OUT(&o, "0\r\n\r\n");

    out_t r = {.len = 0};
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_RAW), 0);
    assert_int_equal(fill(&bp, in, 6, &r, &c, &pl), 0);
    assert_true(bp.done);
    assert_int_equal(c, 5);
    assert_int_equal(r.len, 0);
}

/* More chunks in one read than a fill has spans for: the fill stops after
 * GH_PUMP_MAX_SPANS, says how much it took, and the next fill goes on. */
static void test_chunked_many_spans(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0}, want = {.len = 0}, pay = {.len = 0};
    char in[1024];
    size_t n = 0;
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(in + n, sizeof(in) - n, "1\r\n%c\r\n", 'A' + i % 26);
        char line[16];
        int m = snprintf(line, sizeof(line), "1\r\n%c\r\n", 'A' + i % 26);
        out_str(&want, line, (size_t)m);
    }
    n += (size_t)snprintf(in + n, sizeof(in) - n, "0\r\n\r\n");
    out_str(&want, "0\r\n\r\n", 5);
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_CHUNKED), 0);
    size_t off = 0;
    int fills = 0;
    uint64_t total = 0;
    while (!bp.done) {
        size_t c;
        uint64_t pl;
        int k = fill(&bp, in + off, n - off, &o, &c, &pl);
        assert_true(k <= GH_PUMP_MAX_BUFS);
        assert_true(bp.num_data <= GH_PUMP_MAX_SPANS);
        if (!bp.done) {
            assert_int_equal(bp.num_data, GH_PUMP_MAX_SPANS);
            assert_true(c < n - off);
        }
        data_add(&pay, &bp);
        total += pl;
        off += c;
        fills++;
        assert_true(fills < 10);
    }
    assert_int_equal(off, n);
    assert_int_equal(fills, 3);
    assert_int_equal(total, 40);
    assert_out(&o, want.buf, want.len);
    assert_int_equal(pay.len, 40);
}

static void expect_malformed(const char *in, gh_pump_out_t out)
{
    gh_arena_t a;
    gh_arena_init(&a, 16384);
    gh_body_pump_t bp;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    gh_h1_error_t err = {0, NULL};
    size_t c = 0;
    uint64_t pl = 0;
    size_t n = strlen(in);
    char *p = malloc(n + 1);
    memcpy(p, in, n + 1);
    assert_int_equal(gh_body_pump_init(&bp, &a, GH_H1_BODY_CHUNKED, 0, out), 0);
    int r = gh_body_pump_fill(&bp, p, n, bufs, &c, &pl, &err);
    if (r != -1)
        fail_msg("'%s': expected -1, got %d", in, r);
    assert_int_equal(err.status, 400);
    assert_non_null(err.detail);
    assert_false(bp.done);
    /* The decoder stays failed. */
    gh_h1_error_t err2 = {0, NULL};
    assert_int_equal(gh_body_pump_fill(&bp, p, n, bufs, &c, &pl, &err2), -1);
    assert_int_equal(err2.status, 400);
    free(p);
    gh_arena_dispose(&a);
}

static void test_chunked_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "zz\r\n",                          /* not hex */
        "\r\n",                            /* no size */
        "5\nhello\r\n",                    /* bare LF */
        "5\r\nhelloXX",                    /* no CRLF after the data */
        "3\r\nabc\r\n4\r\nabcd\r\n-1\r\n", /* error after good chunks in the same read */
        "5 x\r\n",                         /* junk after BWS */
        "1000000000000000\r\n",            /* too large */
        "0\r\nContent-Length: 5\r\n\r\n",  /* framing field in trailers */
        "0\r\n bad\r\n\r\n",               /* obs-fold */
        "0\r\n\r\r",                       /* bare CR at the end */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_malformed(bad[i], GH_PUMP_OUT_CHUNKED);
        expect_malformed(bad[i], GH_PUMP_OUT_RAW);
    }
}

/* ---- until close ---- */

static void test_until_close_raw(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl, total = 0;
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_UNTIL_CLOSE, 0, GH_PUMP_OUT_RAW), 0);
    assert_false(bp.done);
    char a[] = "first ", b[] = "second";
    assert_int_equal(fill(&bp, a, 6, &o, &c, &pl), 1);
    assert_int_equal(c, 6);
    total += pl;
    assert_int_equal(fill(&bp, b, 6, &o, &c, &pl), 1);
    total += pl;
    assert_false(bp.done);
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    assert_int_equal(gh_body_pump_finish(&bp, bufs), 0);
    assert_true(bp.done);
    assert_int_equal(bp.num_data, 0);
    assert_int_equal(total, 12);
    ASSERT_OUT(&o, "first second");
    assert_int_equal(fill(&bp, a, 6, &o, &c, &pl), 0);
    assert_int_equal(c, 0);
}

static void test_until_close_to_chunked(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    out_t o = {.len = 0};
    size_t c;
    uint64_t pl;
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_UNTIL_CLOSE, 0, GH_PUMP_OUT_CHUNKED),
                     0);
    char a[] = "abc", b[] = "0123456789ABCDEFG";
    assert_int_equal(fill(&bp, a, 3, &o, &c, &pl), 3);
    assert_int_equal(fill(&bp, b, 17, &o, &c, &pl), 3);
    assert_int_equal(pl, 17);
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    int n = gh_body_pump_finish(&bp, bufs);
    assert_int_equal(n, 1);
    out_add(&o, bufs, n);
    assert_true(bp.done);
    ASSERT_OUT(&o, "3\r\nabc\r\n11\r\n0123456789ABCDEFG\r\n0\r\n\r\n");
}

/* ---- the pump over a read buffer, as the proxy drives it ---- */

/*
 * The corpus: bodies in each source framing, each followed by the first
 * bytes of the next message, which must stay in the buffer untouched.
 * Payload and trailers are judged by oracle_chunked(), a decoder written
 * here on its own, not by h1.c.
 */
typedef struct {
    const char *name;
    gh_h1_body_t in;
    uint64_t length; /* Content-Length */
    const char *bytes;
} corpus_t;

static const corpus_t corpus[] = {
    {"length", GH_H1_BODY_LENGTH, 11, "hello world"},
    {"length-one", GH_H1_BODY_LENGTH, 1, "x"},
    {"chunked", GH_H1_BODY_CHUNKED, 0,
     "5;name=\"v a\"\r\nhello\r\n1\r\n \r\n11 ; x\r\n0123456789abcdefg\r\n0\r\n"
     "X-Check: yes\r\nX-Other: no\r\nAuthorization: Bearer x\r\n\r\n"},
    {"chunked-one-byte-chunks", GH_H1_BODY_CHUNKED, 0, "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"},
    {"chunked-size-11", GH_H1_BODY_CHUNKED, 0, "11\r\n0123456789ABCDEFG\r\n0\r\n\r\n"},
    {"chunked-empty", GH_H1_BODY_CHUNKED, 0, "0\r\n\r\n"},
    {"chunked-empty-trailers", GH_H1_BODY_CHUNKED, 0, "000;e=1\r\nX-Check: 1\r\n\r\n"},
    {"chunked-upper-hex", GH_H1_BODY_CHUNKED, 0, "A\r\n0123456789\r\n0\r\n\r\n"},
};
#define CORPUS_N (sizeof(corpus) / sizeof(corpus[0]))
static const char next_msg[] = "GET /next HTTP/1.1\r\n";

/* An independent chunked decoder (RFC 9112 section 7.1): returns the
 * body's length in s, its payload and its trailer lines. */
static size_t oracle_chunked(const char *s, out_t *payload, out_t *trailers)
{
    size_t i = 0;
    for (;;) {
        size_t size = 0;
        while (strchr("0123456789abcdefABCDEF", s[i]) != NULL && s[i] != '\0') {
            char c = s[i] | 0x20;
            size = size * 16 + (size_t)(c <= '9' ? c - '0' : c - 'a' + 10);
            i++;
        }
        i = (size_t)(strstr(s + i, "\r\n") - s) + 2; /* extensions ignored */
        if (size == 0)
            break;
        out_str(payload, s + i, size);
        i += size + 2;
    }
    for (;;) {
        size_t l = (size_t)(strstr(s + i, "\r\n") - (s + i)) + 2;
        if (l == 2)
            return i + 2;
        out_str(trailers, s + i, l);
        i += l;
    }
}

/* Keeps the trailer lines whose name is in the list (case-insensitive). */
static int allow_listed(const char *name, size_t len, void *arg)
{
    for (const char *const *n = arg; *n != NULL; n++)
        if (strlen(*n) == len && strncasecmp(*n, name, len) == 0)
            return 1;
    return 0;
}
static const char *const listed[] = {"x-check", "authorization", NULL};

/*
 * Drives gh_body_pump_take the way stream.c and router.c do: each piece is
 * appended to one read buffer; bufs are "written" and their bytes dropped
 * only after; nothing else touches the buffer. The buffer must never hand
 * the decoder a byte twice, and what is left after the body is exactly the
 * next message.
 */
static void pump_pieces(const corpus_t *cp, const size_t *cuts, size_t ncuts, gh_pump_out_t out)
{
    size_t blen = strlen(cp->bytes);
    size_t total = blen + sizeof(next_msg) - 1;
    char *src = malloc(total);
    memcpy(src, cp->bytes, blen);
    memcpy(src + blen, next_msg, sizeof(next_msg) - 1);
    char *buf = malloc(total);
    out_t *o = calloc(1, sizeof(*o)), *pay = calloc(1, sizeof(*pay));
    gh_arena_t a;
    gh_arena_init(&a, 16384);
    gh_body_pump_t bp;
    assert_int_equal(gh_body_pump_init(&bp, &a, cp->in, cp->length, out), 0);
    bp.on_trailer = allow_listed;
    bp.trailer_arg = (void *)listed;
    size_t len = 0, pos = 0, used = 0;
    uint64_t payload = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : total;
        if (end < pos)
            continue;
        memcpy(buf + len, src + pos, end - pos);
        len += end - pos;
        pos = end;
        for (;;) {
            uv_buf_t bufs[GH_PUMP_MAX_BUFS];
            gh_h1_error_t err = {0, NULL};
            size_t inflight = 99999, taken = 99999, before = len;
            uint64_t pl = 0;
            int n = gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err);
            if (n < 0)
                fail_msg("%s: refused at cuts (%zu pieces): %s", cp->name, ncuts + 1,
                         err.detail ? err.detail : "");
            assert_true(len <= before);
            assert_int_equal(taken, before - len + inflight);
            assert_true(inflight <= len);
            out_add(o, bufs, n);
            data_add(pay, &bp);
            payload += pl;
            used += taken;
            if (n == 0) {
                /* Nothing to write: nothing of the buffer may be held. */
                assert_int_equal(inflight, 0);
                break;
            }
            memmove(buf, buf + inflight, len - inflight); /* the write completed */
            len -= inflight;
        }
    }
    assert_true(bp.done);
    assert_int_equal(used, blen);
    if (len != sizeof(next_msg) - 1 || memcmp(buf, next_msg, len) != 0)
        fail_msg("%s: the next message is not intact: [%.*s]", cp->name, (int)len, buf);

    out_t *wp = calloc(1, sizeof(*wp)), *wt = calloc(1, sizeof(*wt));
    if (cp->in == GH_H1_BODY_CHUNKED)
        assert_int_equal(oracle_chunked(cp->bytes, wp, wt), blen);
    else
        out_str(wp, cp->bytes, blen);
    assert_int_equal(payload, wp->len);
    assert_out(pay, wp->buf, wp->len);
    if (out == GH_PUMP_OUT_CHUNKED) {
        out_t *dp = calloc(1, sizeof(*dp)), *dt = calloc(1, sizeof(*dt));
        decode_chunked(o->buf, o->len, dp, dt);
        assert_out(dp, wp->buf, wp->len);
        /* Only the listed trailers, and never Authorization, whatever the
         * list says. */
        out_t *want_t = calloc(1, sizeof(*want_t));
        for (size_t i = 0; i < wt->len;) {
            const char *eol = memchr(wt->buf + i, '\n', wt->len - i);
            size_t l = (size_t)(eol - (wt->buf + i)) + 1;
            if (strncasecmp(wt->buf + i, "x-check:", 8) == 0)
                out_str(want_t, wt->buf + i, l);
            i += l;
        }
        assert_out(dt, want_t->buf, want_t->len);
        free(dp);
        free(dt);
        free(want_t);
    } else {
        assert_out(o, wp->buf, wp->len);
    }
    free(wp);
    free(wt);
    free(o);
    free(pay);
    free(buf);
    free(src);
    gh_arena_dispose(&a);
}

static void pump_corpus_cuts(const size_t *cuts, size_t ncuts, const corpus_t *cp)
{
    pump_pieces(cp, cuts, ncuts, GH_PUMP_OUT_CHUNKED);
    pump_pieces(cp, cuts, ncuts, GH_PUMP_OUT_RAW);
}

static void test_take_split_everywhere(void **state)
{
    (void)state;
    for (size_t c = 0; c < CORPUS_N; c++) {
        const corpus_t *cp = &corpus[c];
        size_t total = strlen(cp->bytes) + sizeof(next_msg) - 1;
        pump_corpus_cuts(NULL, 0, cp);
        for (size_t i = 0; i <= total; i++)
            pump_corpus_cuts(&i, 1, cp);
        /* every pair of cut points */
        for (size_t i = 1; i < total; i++)
            for (size_t j = i; j < total; j++) {
                size_t cuts[2] = {i, j};
                pump_corpus_cuts(cuts, 2, cp);
            }
        /* a byte at a time */
        size_t *cuts = malloc(total * sizeof(*cuts));
        for (size_t i = 0; i < total; i++)
            cuts[i] = i + 1;
        pump_corpus_cuts(cuts, total - 1, cp);
        free(cuts);
    }
}

/* Generated chunked bodies (many chunks, upper- and lower-case sizes,
 * extensions, data holding CRLFs and "0\r\n\r\n", trailers) fed in random
 * pieces: more chunks per read than a fill has spans, chunks larger than a
 * piece. Seeded, so a failure repeats. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void test_take_random_bodies(void **state)
{
    (void)state;
    static const char tricky[] = "\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    char *body = malloc(32768);
    for (int iter = 0; iter < 400; iter++) {
        size_t n = 0;
        unsigned chunks = 1 + rnd(60);
        for (unsigned k = 0; k < chunks; k++) {
            size_t size = 1 + rnd(k % 7 == 0 ? 600 : 40);
            n += (size_t)snprintf(body + n, 32768 - n, rnd(2) ? "%zx" : "%zX", size);
            if (rnd(4) == 0)
                n += (size_t)snprintf(body + n, 32768 - n, rnd(2) ? ";a=b" : ";q=\"x y\"");
            memcpy(body + n, "\r\n", 2);
            n += 2;
            for (size_t i = 0; i < size; i++)
                body[n + i] = rnd(3) == 0 ? tricky[i % (sizeof(tricky) - 1)] : (char)(1 + rnd(255));
            n += size;
            memcpy(body + n, "\r\n", 2);
            n += 2;
        }
        n += (size_t)snprintf(body + n, 32768 - n, "0\r\n%s%s\r\n", rnd(2) ? "X-Check: v\r\n" : "",
                              rnd(2) ? "Cookie: c=1\r\n" : "");
        body[n] = '\0';
        corpus_t cp = {"random", GH_H1_BODY_CHUNKED, 0, body};
        size_t total = n + sizeof(next_msg) - 1;
        size_t cuts[48];
        size_t ncuts = rnd(48);
        for (size_t i = 0; i < ncuts; i++)
            cuts[i] = 1 + rnd((uint32_t)total - 1);
        for (size_t i = 1; i < ncuts; i++) /* sort */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        pump_corpus_cuts(cuts, ncuts, &cp);
    }
    free(body);
}

/* The bug class in one case: "1" and "1" in two reads are the size 0x11,
 * never 1 then 1; the framing-only reads leave nothing behind. */
static void test_take_drops_spent_framing(void **state)
{
    (void)state;
    gh_body_pump_t bp;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    gh_h1_error_t err = {0, NULL};
    size_t inflight, taken, len;
    uint64_t pl;
    char buf[64];
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_CHUNKED), 0);
    memcpy(buf, "1", 1);
    len = 1;
    assert_int_equal(gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err), 0);
    assert_int_equal(len, 0);
    assert_int_equal(inflight, 0);
    assert_int_equal(taken, 1);
    memcpy(buf, "1\r", 2);
    len = 2;
    assert_int_equal(gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err), 0);
    assert_int_equal(len, 0);
    memcpy(buf, "\n0123456789ABCDEFG\r", 19);
    len = 19;
    int n = gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err);
    assert_int_equal(n, 3);
    assert_int_equal(pl, 17);
    out_t o = {.len = 0};
    out_add(&o, bufs, n);
    ASSERT_OUT(&o, "11\r\n0123456789ABCDEFG\r\n");
    /* The data went out from offset 1: the "\n" before it was dropped
     * with it, after the write. */
    assert_int_equal(inflight, 19);
    len = 0;
    memcpy(buf, "\n", 1);
    len = 1;
    assert_int_equal(gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err), 0);
    assert_int_equal(len, 0);
    memcpy(buf, "0\r\n\r\nNEXT", 9);
    len = 9;
    n = gh_body_pump_take(&bp, buf, &len, bufs, &inflight, &taken, &pl, &err);
    o.len = 0;
    out_add(&o, bufs, n);
    ASSERT_OUT(&o, "0\r\n\r\n");
    assert_true(bp.done);
    assert_int_equal(inflight, 5);
    assert_int_equal(len, 9);
}

/* Trailers: none by default; a listed name passes; names that could
 * change framing, routing or credentials never do, whatever the list. */
static void trailers_out(const char *in, gh_trailer_allow_cb cb, void *arg, out_t *o)
{
    gh_body_pump_t bp;
    uv_buf_t bufs[GH_PUMP_MAX_BUFS];
    size_t c;
    uint64_t pl;
    gh_h1_error_t err = {0, NULL};
    char *p = strdup(in);
    assert_int_equal(gh_body_pump_init(&bp, &arena, GH_H1_BODY_CHUNKED, 0, GH_PUMP_OUT_CHUNKED), 0);
    bp.on_trailer = cb;
    bp.trailer_arg = arg;
    int n = gh_body_pump_fill(&bp, p, strlen(p), bufs, &c, &pl, &err);
    assert_true(bp.done);
    out_add(o, bufs, n);
    free(p);
}

static void test_trailer_policy(void **state)
{
    (void)state;
    static const char in[] = "0\r\nX-Check: 1\r\nHost: evil\r\nCookie: a=b\r\n"
                             "authorization: x\r\nConnection: close\r\nTE: trailers\r\n"
                             "X-Forwarded-For: 1.2.3.4\r\nX-Other: 2\r\n\r\n";
    out_t o = {.len = 0};
    trailers_out(in, NULL, NULL, &o);
    ASSERT_OUT(&o, "0\r\n\r\n");
    o.len = 0;
    trailers_out(in, allow_all, NULL, &o);
    ASSERT_OUT(&o, "0\r\nX-Check: 1\r\nX-Other: 2\r\n\r\n");
    o.len = 0;
    trailers_out(in, allow_listed, (void *)listed, &o);
    ASSERT_OUT(&o, "0\r\nX-Check: 1\r\n\r\n");

    static const char *const never[] = {"content-length", "Transfer-Encoding",
                                        "trailer",        "te",
                                        "connection",     "keep-alive",
                                        "upgrade",        "host",
                                        "authorization",  "proxy-authorization",
                                        "cookie",         "set-cookie",
                                        "x-request-id",   "via"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        assert_true(gh_field_trailer_forbidden(never[i], strlen(never[i])));
    assert_false(gh_field_trailer_forbidden("x-check", 7));
    assert_false(gh_field_trailer_forbidden("hos", 3));
    assert_false(gh_field_trailer_forbidden("hosts", 5));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_length_raw_partial),
        T(test_length_exact_end),
        T(test_length_to_chunked),
        T(test_length_zero_and_none),
        T(test_sample_layout),
        T(test_chunked_to_chunked_whole),
        T(test_chunked_to_chunked_split_everywhere),
        T(test_chunked_byte_by_byte),
        T(test_chunked_to_raw),
        T(test_chunked_empty_body),
        T(test_chunked_many_spans),
        T(test_chunked_malformed),
        T(test_until_close_raw),
        T(test_until_close_to_chunked),
        T(test_take_split_everywhere),
        T(test_take_random_bodies),
        T(test_take_drops_spent_framing),
        T(test_trailer_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
