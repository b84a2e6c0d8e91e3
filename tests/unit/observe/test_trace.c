/* Trace context: W3C traceparent/tracestate and B3 extraction, span start,
 * header formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/trace.h>

#define TID "4bf92f3577b34da6a3ce929d0e0e4736"
#define SID "00f067aa0ba902b7"
#define TP_OK "00-" TID "-" SID "-01"

static gh_h1_header_t hdr(const char *name, const char *value)
{
    gh_h1_header_t h = {name, strlen(name), value, strlen(value)};
    return h;
}

static int extract1(const char *name, const char *value, gh_trace_ctx_t *out)
{
    gh_h1_header_t h = hdr(name, value);
    return gh_trace_extract(&h, 1, out);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void assert_ids(const gh_trace_ctx_t *c, const char *tid, const char *sid)
{
    char t[33], s[17];
    hex(c->trace_id, 16, t);
    hex(c->span_id, 8, s);
    assert_string_equal(t, tid);
    assert_string_equal(s, sid);
}

/* ---- traceparent ---- */

static void test_tp_valid(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(extract1("traceparent", TP_OK, &c), 1);
    assert_ids(&c, TID, SID);
    assert_true(c.sampled);
    assert_false(c.sample_deferred);
    assert_string_equal(c.tracestate, "");

    assert_int_equal(extract1("traceparent", "00-" TID "-" SID "-00", &c), 1);
    assert_false(c.sampled);
}

static void test_tp_name_case_insensitive(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(extract1("TraceParent", TP_OK, &c), 1);
    assert_int_equal(extract1("TRACEPARENT", TP_OK, &c), 1);
}

static void test_tp_flags_other_bits(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    /* Unknown flag bits are ignored; only bit 0 means sampled. */
    assert_int_equal(extract1("traceparent", "00-" TID "-" SID "-ff", &c), 1);
    assert_true(c.sampled);
    assert_int_equal(extract1("traceparent", "00-" TID "-" SID "-02", &c), 1);
    assert_false(c.sampled);
}

static void test_tp_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00",
        /* upper-case hex anywhere */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" SID "-01",
        "00-" TID "-00F067AA0BA902B7-01",
        "00-" TID "-" SID "-0A",
        "0A-" TID "-" SID "-01",
        /* all-zero ids */
        "00-00000000000000000000000000000000-" SID "-01",
        "00-" TID "-0000000000000000-01",
        /* version ff */
        "ff-" TID "-" SID "-01",
        /* wrong lengths */
        "00-" TID "0-" SID "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-" SID "-01",
        "00-" TID "-00f067aa0ba902b-01",
        "00-" TID "-" SID "-1",
        "0-" TID "-" SID "-01",
        /* version 00 with anything after the flags */
        "00-" TID "-" SID "-01-",
        "00-" TID "-" SID "-01-extra",
        "00-" TID "-" SID "-01 ",
        /* wrong separators */
        "00_" TID "-" SID "-01",
        "00-" TID "_" SID "-01",
        "00-" TID "-" SID "_01",
        /* non-hex */
        "00-" TID "-" SID "-0g",
        "00-4bf92f3577b34da6a3ce929d0e0e473z-" SID "-01",
        "zz-" TID "-" SID "-01",
        /* whitespace inside */
        "00- bf92f3577b34da6a3ce929d0e0e4736-" SID "-01",
        /* higher version: what follows the flags must start with '-' */
        "01-" TID "-" SID "-01x",
        "cc-" TID "-" SID "-01.what",
        /* higher version still needs the 00 prefix intact */
        "01-" TID "-" SID,
        "01-" TID "-00F067AA0BA902B7-01-x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_trace_ctx_t c;
        if (extract1("traceparent", bad[i], &c) != 0)
            fail_msg("accepted invalid traceparent '%s'", bad[i]);
        /* Refused means absent: nothing left in the context. */
        assert_false(c.sampled);
        assert_false(c.has_parent);
    }
}

static void test_tp_future_versions(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(extract1("traceparent", "01-" TID "-" SID "-01", &c), 1);
    assert_ids(&c, TID, SID);
    assert_true(c.sampled);
    assert_int_equal(extract1("traceparent", "cc-" TID "-" SID "-01-what-the-future-holds", &c), 1);
    assert_ids(&c, TID, SID);
    assert_int_equal(extract1("traceparent", "fe-" TID "-" SID "-00-", &c), 1);
    assert_false(c.sampled);
}

static void test_tp_repeated_is_invalid(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("traceparent", TP_OK)};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 0);
}

static void test_tp_wins_over_b3(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {
        hdr("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        hdr("traceparent", "00-" TID "-" SID "-00"),
    };
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_ids(&c, TID, SID);
    assert_false(c.sampled);
}

static void test_tp_invalid_falls_back_to_b3(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {
        hdr("traceparent", "00-" TID "-" SID "-0"),
        hdr("tracestate", "a=b"),
        hdr("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    };
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 3, &c), 1);
    assert_ids(&c, "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1");
    /* tracestate belongs to the traceparent that was refused. */
    assert_string_equal(c.tracestate, "");
}

static void test_no_context(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("host", "example.com"), hdr("x-request-id", "abc")};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 0);
    assert_int_equal(gh_trace_extract(NULL, 0, &c), 0);
}

/* ---- tracestate ---- */

static void test_ts_passed(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK),
                          hdr("TraceState", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_string_equal(c.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
}

static void test_ts_combined(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("tracestate", "rojo=00f067aa0ba902b7"), hdr("traceparent", TP_OK),
                          hdr("tracestate", ""), hdr("tracestate", "congo=t61rcWkgMzE")};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 4, &c), 1);
    assert_string_equal(c.tracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
}

static void test_ts_valid_forms(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "a=1",
        "a=1 , b=2",
        "a=1,,b=2",
        "tenant@vendor=x",
        "0tenant@v=x",
        "k_-*/9=v",
        "a= leading space ok",
        "a=!\"#$%&'()*+-./:;<>?@[]^_`{|}~",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", ok[i])};
        gh_trace_ctx_t c;
        assert_int_equal(gh_trace_extract(h, 2, &c), 1);
        if (strcmp(c.tracestate, ok[i]) != 0)
            fail_msg("dropped valid tracestate '%s'", ok[i]);
    }
}

static void test_ts_invalid_dropped(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "A=1",                 /* upper-case key */
        "1a=1",                /* simple key must start with a letter */
        "a",                   /* no '=' */
        "a=",                  /* empty value */
        "=1",                  /* empty key */
        "a=1,a=2",             /* duplicate key */
        "a=b=c",               /* '=' in value */
        "a=\x01",              /* control byte */
        "a=\xc3\xa9",          /* non-ASCII */
        "t@=1",                /* empty system id */
        "@v=1",                /* empty tenant id */
        "t@1v=1",              /* system id starts with a digit */
        "t@abcdefghijklmno=1", /* system id longer than 14 */
        "a b=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", bad[i])};
        gh_trace_ctx_t c;
        /* The traceparent stands; only the list is dropped. */
        assert_int_equal(gh_trace_extract(h, 2, &c), 1);
        if (c.tracestate[0] != '\0')
            fail_msg("kept invalid tracestate '%s'", bad[i]);
    }
}

static void test_ts_member_limit(void **state)
{
    (void)state;
    char buf[512];
    size_t len = 0;
    for (int i = 0; i < 32; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%sk%d=v", i ? "," : "", i);
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", buf)};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_string_equal(c.tracestate, buf);
    snprintf(buf + len, sizeof(buf) - len, ",k32=v");
    h[1] = hdr("tracestate", buf);
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_string_equal(c.tracestate, "");
}

static void test_ts_length_limit(void **state)
{
    (void)state;
    /* "a=" + 254 chars is one member of 256; two of them plus a comma = 513. */
    char v[600];
    memset(v, 'x', sizeof(v));
    memcpy(v, "a=", 2);
    /* exactly 512 bytes: a=<254> , b=<253> */
    memcpy(v + 256, ",b=", 3);
    v[512] = '\0';
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", v)};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_int_equal(strlen(c.tracestate), 512);
    assert_string_equal(c.tracestate, v);

    v[512] = 'x';
    v[513] = '\0';
    h[1] = hdr("tracestate", v);
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_string_equal(c.tracestate, "");

    /* Over the limit only once combined: the whole list is dropped. */
    char a[257], b[203], c2[60];
    memset(a, 'x', 256);
    memcpy(a, "a=", 2);
    a[256] = '\0';
    memset(b, 'x', 202);
    memcpy(b, "b=", 2);
    b[202] = '\0';
    memset(c2, 'x', 52);
    memcpy(c2, "c=", 2);
    c2[52] = '\0';
    /* 256 + 1 + 202 + 1 + 52 = 512: kept, joined in order */
    gh_h1_header_t h2[] = {hdr("traceparent", TP_OK), hdr("tracestate", a), hdr("tracestate", b),
                           hdr("tracestate", c2)};
    assert_int_equal(gh_trace_extract(h2, 4, &c), 1);
    assert_int_equal(strlen(c.tracestate), 512);
    assert_memory_equal(c.tracestate, a, 256);
    assert_int_equal(c.tracestate[256], ',');
    assert_memory_equal(c.tracestate + 257, b, 202);
    assert_memory_equal(c.tracestate + 460, c2, 52);
    /* one more byte in the last header: 513, dropped */
    c2[52] = 'x';
    c2[53] = '\0';
    h2[3] = hdr("tracestate", c2);
    assert_int_equal(gh_trace_extract(h2, 4, &c), 1);
    assert_string_equal(c.tracestate, "");
}

static void test_ts_ignored_without_traceparent(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("tracestate", "a=1"),
                          hdr("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1")};
    gh_trace_ctx_t c;
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_string_equal(c.tracestate, "");
}

/* ---- B3 ---- */

static void test_b3_single(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(
        extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", &c),
        1);
    assert_ids(&c, "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1");
    assert_true(c.sampled);
    assert_false(c.sample_deferred);

    assert_int_equal(extract1("B3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", &c), 1);
    assert_false(c.sampled);
    assert_false(c.sample_deferred);

    /* d = debug, which implies sampled */
    assert_int_equal(extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d", &c), 1);
    assert_true(c.sampled);

    /* no sampling state: deferred */
    assert_int_equal(extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", &c), 1);
    assert_false(c.sampled);
    assert_true(c.sample_deferred);
}

static void test_b3_single_64bit(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(extract1("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1", &c), 1);
    assert_ids(&c, "0000000000000000a3ce929d0e0e4736", "00f067aa0ba902b7");
    char out[33];
    gh_trace_id_hex(&c, out);
    assert_string_equal(out, "0000000000000000a3ce929d0e0e4736");
}

static void test_b3_single_upper_case(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    assert_int_equal(extract1("b3", "A3CE929D0E0E4736-00F067AA0BA902B7-1", &c), 1);
    assert_ids(&c, "0000000000000000a3ce929d0e0e4736", "00f067aa0ba902b7");
}

static void test_b3_single_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "0",
        "1",
        "d",
        "",
        "80f198ee56343ba864fe8b2a57d3eff7",
        "80f198ee56343ba864fe8b2a57d3eff7-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-11",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-0000000000000000",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",
        "80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1",
        "80f198ee56343ba8-64fe8b2a57d3eff7e457b5a2e4d86bd1",
        "00000000000000000000000000000000-e457b5a2e4d86bd1-1",
        "0000000000000000-e457b5a2e4d86bd1-1",
        "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bdg-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gh_trace_ctx_t c;
        if (extract1("b3", bad[i], &c) != 0)
            fail_msg("accepted invalid b3 '%s'", bad[i]);
    }
}

static void test_b3_multi(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    gh_h1_header_t h[] = {hdr("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"),
                          hdr("X-B3-SpanId", "e457b5a2e4d86bd1"),
                          hdr("X-B3-ParentSpanId", "05e3ac9a4f6e3b90"), hdr("X-B3-Sampled", "1")};
    assert_int_equal(gh_trace_extract(h, 4, &c), 1);
    assert_ids(&c, "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1");
    assert_true(c.sampled);
    assert_false(c.sample_deferred);

    h[3] = hdr("x-b3-sampled", "0");
    assert_int_equal(gh_trace_extract(h, 4, &c), 1);
    assert_false(c.sampled);
    assert_false(c.sample_deferred);

    h[3] = hdr("x-b3-sampled", "true");
    assert_int_equal(gh_trace_extract(h, 4, &c), 1);
    assert_true(c.sampled);

    /* debug flag implies sampled, even over sampled: 0 */
    h[3] = hdr("x-b3-flags", "1");
    assert_int_equal(gh_trace_extract(h, 4, &c), 1);
    assert_true(c.sampled);

    /* no decision: deferred */
    assert_int_equal(gh_trace_extract(h, 3, &c), 1);
    assert_false(c.sampled);
    assert_true(c.sample_deferred);

    /* 64-bit trace id */
    h[0] = hdr("x-b3-traceid", "a3ce929d0e0e4736");
    assert_int_equal(gh_trace_extract(h, 2, &c), 1);
    assert_ids(&c, "0000000000000000a3ce929d0e0e4736", "e457b5a2e4d86bd1");
}

static void test_b3_multi_invalid(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    gh_h1_header_t only_trace[] = {hdr("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")};
    assert_int_equal(gh_trace_extract(only_trace, 1, &c), 0);
    gh_h1_header_t short_span[] = {hdr("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                                   hdr("x-b3-spanid", "e457b5a2e4d86bd")};
    assert_int_equal(gh_trace_extract(short_span, 2, &c), 0);
    gh_h1_header_t bad_sampled[] = {hdr("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                                    hdr("x-b3-spanid", "e457b5a2e4d86bd1"),
                                    hdr("x-b3-sampled", "yes")};
    assert_int_equal(gh_trace_extract(bad_sampled, 3, &c), 0);
    gh_h1_header_t twice[] = {hdr("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                              hdr("x-b3-spanid", "e457b5a2e4d86bd1"),
                              hdr("x-b3-spanid", "e457b5a2e4d86bd2")};
    assert_int_equal(gh_trace_extract(twice, 3, &c), 0);
    gh_h1_header_t zero[] = {hdr("x-b3-traceid", "0000000000000000"),
                             hdr("x-b3-spanid", "e457b5a2e4d86bd1")};
    assert_int_equal(gh_trace_extract(zero, 2, &c), 0);
}

static void test_b3_single_wins_over_multi(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    gh_h1_header_t h[] = {hdr("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                          hdr("x-b3-spanid", "e457b5a2e4d86bd1"),
                          hdr("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-0")};
    assert_int_equal(gh_trace_extract(h, 3, &c), 1);
    assert_ids(&c, "0000000000000000a3ce929d0e0e4736", "00f067aa0ba902b7");
}

/* ---- start ---- */

typedef struct {
    uint64_t values[16];
    size_t n, i;
} seq_t;

static uint64_t seq_next(void *arg)
{
    seq_t *s = arg;
    uint64_t v = s->values[s->i % s->n];
    s->i++;
    return v;
}

static uint64_t counter_rnd(void *arg)
{
    uint64_t *x = arg;
    /* splitmix64 */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void test_start_with_parent(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", "rojo=1")};
    gh_trace_ctx_t in, span;
    seq_t seq = {{0x0102030405060708ULL}, 1, 0};
    assert_int_equal(gh_trace_extract(h, 2, &in), 1);
    /* ratio 0 must not override the caller's sampled flag */
    gh_trace_start(&span, &in, 0.0, seq_next, &seq);
    assert_memory_equal(span.trace_id, in.trace_id, 16);
    assert_memory_equal(span.parent_span_id, in.span_id, 8);
    assert_true(span.has_parent);
    assert_true(span.sampled);
    assert_string_equal(span.tracestate, "rojo=1");
    static const uint8_t want_span[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    assert_memory_equal(span.span_id, want_span, 8);

    /* ... nor ratio 1 an unsampled flag */
    in.sampled = 0;
    gh_trace_start(&span, &in, 1.0, seq_next, &seq);
    assert_false(span.sampled);
}

static void test_start_deferred_parent(void **state)
{
    (void)state;
    gh_trace_ctx_t in, span;
    uint64_t x = 1;
    assert_int_equal(extract1("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", &in), 1);
    gh_trace_start(&span, &in, 1.0, counter_rnd, &x);
    assert_true(span.sampled);
    assert_true(span.has_parent);
    gh_trace_start(&span, &in, 0.0, counter_rnd, &x);
    assert_false(span.sampled);
}

static void test_start_root(void **state)
{
    (void)state;
    gh_trace_ctx_t span;
    seq_t seq = {{0x1111111111111111ULL, 0x2222222222222222ULL, 0x3333333333333333ULL}, 3, 0};
    gh_trace_start(&span, NULL, 1.0, seq_next, &seq);
    char t[33];
    gh_trace_id_hex(&span, t);
    assert_string_equal(t, "11111111111111112222222222222222");
    assert_false(span.has_parent);
    static const uint8_t zero[8] = {0};
    assert_memory_equal(span.parent_span_id, zero, 8);
    assert_true(span.sampled);
    assert_string_equal(span.tracestate, "");
}

static void test_start_never_zero_ids(void **state)
{
    (void)state;
    gh_trace_ctx_t span;
    seq_t seq = {{0, 0, 0, 5, 6, 7}, 6, 0};
    gh_trace_start(&span, NULL, 1.0, seq_next, &seq);
    static const uint8_t zero[16] = {0};
    assert_memory_not_equal(span.trace_id, zero, 16);
    assert_memory_not_equal(span.span_id, zero, 8);
}

static void test_sampling_ratio(void **state)
{
    (void)state;
    gh_trace_ctx_t span;
    uint64_t x = 42;
    int sampled = 0;
    for (int i = 0; i < 1000; i++) {
        gh_trace_start(&span, NULL, 0.0, counter_rnd, &x);
        sampled += span.sampled;
    }
    assert_int_equal(sampled, 0);
    for (int i = 0; i < 1000; i++) {
        gh_trace_start(&span, NULL, 1.0, counter_rnd, &x);
        sampled += span.sampled;
    }
    assert_int_equal(sampled, 1000);
    sampled = 0;
    for (int i = 0; i < 10000; i++) {
        gh_trace_start(&span, NULL, 0.25, counter_rnd, &x);
        sampled += span.sampled;
    }
    assert_in_range(sampled, 2200, 2800);
    /* Extreme random values at the edges of [0, 1). */
    seq_t hi = {{~0ULL}, 1, 0};
    gh_trace_start(&span, NULL, 1.0, seq_next, &hi);
    assert_true(span.sampled);
    gh_trace_start(&span, NULL, 0.999999, seq_next, &hi);
    assert_false(span.sampled);
    seq_t lo = {{1}, 1, 0};
    gh_trace_start(&span, NULL, 1e-9, seq_next, &lo);
    assert_true(span.sampled);
}

/* ---- format ---- */

static void test_format_exact(void **state)
{
    (void)state;
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", "rojo=00f067aa0ba902b7")};
    gh_trace_ctx_t in, span;
    seq_t seq = {{0xb7a902ba6af0f000ULL}, 1, 0};
    char buf[128 + GH_TRACESTATE_MAX];
    assert_int_equal(gh_trace_extract(h, 2, &in), 1);
    gh_trace_start(&span, &in, 1.0, seq_next, &seq);
    size_t n = gh_trace_format_headers(&span, buf, sizeof(buf));
    static const char want[] = "traceparent: 00-" TID "-00f0f06aba02a9b7-01\r\n"
                               "tracestate: rojo=00f067aa0ba902b7\r\n";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(buf, want, n);

    /* Exactly enough room works; one byte less writes nothing. */
    assert_int_equal(gh_trace_format_headers(&span, buf, n), n);
    assert_int_equal(gh_trace_format_headers(&span, buf, n - 1), 0);

    span.sampled = 0;
    span.tracestate[0] = '\0';
    n = gh_trace_format_headers(&span, buf, sizeof(buf));
    static const char want2[] = "traceparent: 00-" TID "-00f0f06aba02a9b7-00\r\n";
    assert_int_equal(n, sizeof(want2) - 1);
    assert_memory_equal(buf, want2, n);
}

static void test_format_future_version_as_00(void **state)
{
    (void)state;
    gh_trace_ctx_t in, span;
    seq_t seq = {{1}, 1, 0};
    char buf[128 + GH_TRACESTATE_MAX];
    assert_int_equal(extract1("traceparent", "42-" TID "-" SID "-01-ext", &in), 1);
    gh_trace_start(&span, &in, 1.0, seq_next, &seq);
    size_t n = gh_trace_format_headers(&span, buf, sizeof(buf));
    assert_true(n > 16);
    assert_memory_equal(buf, "traceparent: 00-" TID "-", 16 + 33);
}

static void test_format_max_fits_and_roundtrips(void **state)
{
    (void)state;
    char v[GH_TRACESTATE_MAX + 1];
    memset(v, 'y', GH_TRACESTATE_MAX);
    memcpy(v, "k=", 2);
    v[GH_TRACESTATE_MAX] = '\0';
    /* 'k=' + 510 > value max (256): make it two members of 256 each. */
    memcpy(v + 255, ",j=", 3);
    gh_h1_header_t h[] = {hdr("traceparent", TP_OK), hdr("tracestate", v)};
    gh_trace_ctx_t in, span, back;
    uint64_t x = 7;
    char buf[128 + GH_TRACESTATE_MAX];
    assert_int_equal(gh_trace_extract(h, 2, &in), 1);
    assert_string_equal(in.tracestate, v);
    gh_trace_start(&span, &in, 1.0, counter_rnd, &x);
    size_t n = gh_trace_format_headers(&span, buf, sizeof(buf));
    assert_true(n > 0);

    /* Parse what was written back as headers. */
    gh_h1_header_t out[2];
    size_t k = 0;
    const char *p = buf, *end = buf + n;
    while (p < end && k < 2) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *crlf = memchr(p, '\r', (size_t)(end - p));
        assert_non_null(colon);
        assert_non_null(crlf);
        out[k].name = p;
        out[k].name_len = (size_t)(colon - p);
        out[k].value = colon + 2;
        out[k].value_len = (size_t)(crlf - colon - 2);
        k++;
        p = crlf + 2;
    }
    assert_int_equal(k, 2);
    assert_int_equal(gh_trace_extract(out, k, &back), 1);
    assert_memory_equal(back.trace_id, span.trace_id, 16);
    assert_memory_equal(back.span_id, span.span_id, 8);
    assert_int_equal(back.sampled, span.sampled);
    assert_string_equal(back.tracestate, v);
}

static void test_trace_id_hex(void **state)
{
    (void)state;
    gh_trace_ctx_t c;
    char out[33];
    memset(out, 'z', sizeof(out));
    assert_int_equal(extract1("traceparent", TP_OK, &c), 1);
    gh_trace_id_hex(&c, out);
    assert_string_equal(out, TID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tp_valid),
        cmocka_unit_test(test_tp_name_case_insensitive),
        cmocka_unit_test(test_tp_flags_other_bits),
        cmocka_unit_test(test_tp_invalid),
        cmocka_unit_test(test_tp_future_versions),
        cmocka_unit_test(test_tp_repeated_is_invalid),
        cmocka_unit_test(test_tp_wins_over_b3),
        cmocka_unit_test(test_tp_invalid_falls_back_to_b3),
        cmocka_unit_test(test_no_context),
        cmocka_unit_test(test_ts_passed),
        cmocka_unit_test(test_ts_combined),
        cmocka_unit_test(test_ts_valid_forms),
        cmocka_unit_test(test_ts_invalid_dropped),
        cmocka_unit_test(test_ts_member_limit),
        cmocka_unit_test(test_ts_length_limit),
        cmocka_unit_test(test_ts_ignored_without_traceparent),
        cmocka_unit_test(test_b3_single),
        cmocka_unit_test(test_b3_single_64bit),
        cmocka_unit_test(test_b3_single_upper_case),
        cmocka_unit_test(test_b3_single_invalid),
        cmocka_unit_test(test_b3_multi),
        cmocka_unit_test(test_b3_multi_invalid),
        cmocka_unit_test(test_b3_single_wins_over_multi),
        cmocka_unit_test(test_start_with_parent),
        cmocka_unit_test(test_start_deferred_parent),
        cmocka_unit_test(test_start_root),
        cmocka_unit_test(test_start_never_zero_ids),
        cmocka_unit_test(test_sampling_ratio),
        cmocka_unit_test(test_format_exact),
        cmocka_unit_test(test_format_future_version_as_00),
        cmocka_unit_test(test_format_max_fits_and_roundtrips),
        cmocka_unit_test(test_trace_id_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
