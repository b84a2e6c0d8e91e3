/*
 * Strict HTTP/1.1 head parser and chunked decoder (RFC 9110, RFC 9112).
 *
 * The head parsers make one left-to-right pass and refuse a message at the
 * first byte that cannot be part of a valid one, so a prefix of a bad head
 * already fails with the same status as the whole head (the fuzz targets
 * check this). Checks that need a whole field line (Content-Length,
 * Transfer-Encoding, Host) run when its CRLF is seen; checks that need the
 * whole head (Host present, derived framing) run at the empty line.
 *
 * Decisions this file takes beyond the header's contract:
 *   - Content-Length: 0 yields GH_H1_BODY_NONE (content_length 0), for
 *     requests and responses alike.
 *   - A Transfer-Encoding that is a single token other than "chunked"
 *     ("gzip", "identity") is 501 on a request (RFC 9112 section 6.1: a
 *     server that does not understand a coding SHOULD answer 501); a list,
 *     parameters, a repeat, odd whitespace or an empty value is 400.
 *   - Content-Length and Transfer-Encoding values may carry OWS around them
 *     (RFC 9110 section 5.5), which is trimmed. This is safe because the
 *     proxy never forwards these lines: it frames every body it sends
 *     itself, so no peer ever sees the client's spelling of them.
 *   - A single unsupported coding ("gzip") is 501, but only once the head is
 *     complete, so that a repeated Transfer-Encoding is always a 400
 *     whichever line comes first.
 *   - A repeated Content-Length must be byte-identical ("5" and "05" differ).
 *   - A response without a length (UNTIL_CLOSE) has keep_alive 0.
 *   - A status-line without the SP before an empty reason ("HTTP/1.1 200")
 *     is accepted: common in the wild, and harmless for framing.
 *   - '#' in a request-target is refused (a fragment is never sent; peers
 *     that strip it would route on a different path than we do); the target
 *     form must match the method: '*' only for OPTIONS, authority-form only
 *     and always for CONNECT, otherwise origin-form or absolute-form.
 *   - Host must be made of URI host/port bytes (RFC 3986 reg-name, IP-literal,
 *     ':' port); routing on a Host with '/', '@' or spaces is asking for trouble.
 *   - Bare LF is refused everywhere (header comment), also in the chunked coding.
 */
#include "gatehouse/h1.h"

#include <string.h>

#ifdef __SSE2__
#include <immintrin.h>
#endif

/*
 * Byte classes, one 256-entry table (generated; tests/unit/http/test_h1.c
 * checks the token class against RFC 9110 section 5.6.2 for every byte):
 *   1  C_TCHAR  token character
 *   2  C_FIELD  field-value/reason byte: HTAB, SP, VCHAR, obs-text
 *   4  C_TARGET request-target byte: 0x21..0x7e except '#'
 *   8  C_HEX    hex digit
 *   16 C_HOST   Host byte: unreserved, sub-delims, '%', ':', '[', ']'
 *   32 C_QD     quoted-string byte: qdtext (no '"' nor '\')
 */
enum {
    C_TCHAR = 1,
    C_FIELD = 2,
    C_TARGET = 4,
    C_HEX = 8,
    C_HOST = 16,
    C_QD = 32,
};

static const unsigned char cls[256] = {
    /* 00 */ 0,  0,  0,  0,  0,  0,  0,  0,  0,  34, 0,  0,  0,  0,  0,  0,
    /* 10 */ 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    /* 20 */ 34, 55, 6,  35, 55, 55, 55, 55, 54, 54, 55, 55, 54, 55, 55, 38,
    /* 30 */ 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 54, 54, 38, 54, 38, 38,
    /* 40 */ 38, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,
    /* 50 */ 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 54, 6,  54, 39, 55,
    /* 60 */ 39, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,
    /* 70 */ 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 38, 39, 38, 55, 0,
    /* 80 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* 90 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* a0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* b0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* c0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* d0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* e0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
    /* f0 */ 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
};

#define IS(c, mask) ((cls[(unsigned char)(c)] & (mask)) != 0)

int gh_h1_is_tchar(unsigned char c)
{
    return IS(c, C_TCHAR);
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t load64(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof(x));
    return x;
}

/* x with every byte 'A'..'Z' made lower case, eight bytes at once: a byte
 * is upper case when its low seven bits reach 'A' but not past 'Z' and its
 * high bit is clear; none of the sums carries into the next byte. */
static uint64_t lower64(uint64_t x)
{
    uint64_t t = x & ~HIGHS;
    uint64_t upper = (t + ONES * (0x80 - 'A')) & ~(t + ONES * (0x80 - 'Z' - 1)) & ~x & HIGHS;
    return x | upper >> 2;
}

/* s[0..len) equals the lower-case literal lower[0..len), ignoring ASCII case.
 * Names are compared on every header of every request: a word at a time,
 * the last word overlapping the one before when len is not a multiple of 8. */
int gh_h1_name_equals(const char *s, const char *lower, size_t len)
{
    if (len < 8) {
        for (size_t i = 0; i < len; i++) {
            if (to_lower((unsigned char)s[i]) != (unsigned char)lower[i])
                return 0;
        }
        return 1;
    }
    for (size_t i = 0; i + 8 < len; i += 8)
        if (lower64(load64(s + i)) != load64(lower + i))
            return 0;
    return lower64(load64(s + len - 8)) == load64(lower + len - 8);
}

static int equals_ci(const char *s, size_t len, const char *lower, size_t lower_len)
{
    return len == lower_len && gh_h1_name_equals(s, lower, len);
}

#define EQUALS_CI(s, len, lit) equals_ci((s), (len), (lit), sizeof(lit) - 1)

/* First byte in [p, end) outside the class, or end. Unrolled by four: this
 * is where the parser spends its time (names and values). */
static const char *skip_class(const char *p, const char *end, unsigned char mask)
{
    while (end - p >= 4) {
        if (!IS(p[0], mask))
            return p;
        if (!IS(p[1], mask))
            return p + 1;
        if (!IS(p[2], mask))
            return p + 2;
        if (!IS(p[3], mask))
            return p + 3;
        p += 4;
    }
    while (p < end && IS(*p, mask))
        p++;
    return p;
}

/*
 * Field values and request-targets are most of a head. Eight bytes at a
 * time: the usual byte-twiddling tests (Hacker's Delight 6-1) say whether
 * a word may hold a byte below 0x20 (or 0x21), a DEL or a '#'; a word that
 * may is finished byte by byte through the table, so a false alarm (HTAB,
 * or a borrow across bytes) costs time, never correctness.
 */
/* Nonzero if some byte of x is below n (n <= 0x80), for bytes below 0x80. */
static uint64_t has_less(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

static uint64_t has_byte(uint64_t x, unsigned b)
{
    return has_less(x ^ (ONES * b), 1);
}

#ifdef __SSE2__
/* Bit i set when byte i of v is a control byte (under 0x20) or DEL. */
static unsigned ctl_mask(__m128i v)
{
    /* max(v, 0x20) == v: v >= 0x20 unsigned, so obs-text passes. */
    __m128i ok = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)),
                                  _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x20)), v));
    return (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
}
#endif

#if defined(__SSE2__) && defined(__GNUC__)
#define HAVE_AVX2_PATH 1
/* Set only by tests, before any parsing, to run the SSE2-only path on a CPU
 * with AVX2 too. */
static int avx2_off;

/* Plain ASCII (0x20..0x7e) as the signed bytes above 0x20 once 1 is added:
 * DEL becomes -128, and control bytes and obs-text stay at or below 0x20. */
__attribute__((target("avx2"))) static inline __m256i plus1_avx2(const char *q)
{
    return _mm256_add_epi8(_mm256_loadu_si256((const __m256i *)(const void *)q),
                           _mm256_set1_epi8(1));
}

/* Bit i set when byte i of the 64 at q is not plain ASCII. */
__attribute__((target("avx2"))) static inline uint64_t bad64_avx2(const char *q)
{
    const __m256i lim = _mm256_set1_epi8(0x20);
    uint32_t a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(plus1_avx2(q), lim));
    uint32_t b = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(plus1_avx2(q + 32), lim));
    return ~((uint64_t)b << 32 | a);
}

/* First byte of [p, end) outside 0x20..0x7e (obs-text too), or end; needs
 * end - p >= 64. 128 bytes a step while that many are left (the smallest
 * of four vectors, compared once), then 64; the last step reads the 64
 * bytes that end at end, overlapping bytes already cleared, rather than
 * finishing byte by byte. */
__attribute__((target("avx2"))) static const char *clear_ascii_avx2(const char *p, const char *end)
{
    while (end - p >= 128) {
        __m256i m = _mm256_min_epi8(_mm256_min_epi8(plus1_avx2(p), plus1_avx2(p + 32)),
                                    _mm256_min_epi8(plus1_avx2(p + 64), plus1_avx2(p + 96)));
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi8(m, _mm256_set1_epi8(0x20))) != -1)
            break;
        p += 128;
    }
    for (;;) {
        if (end - p < 64) {
            if (p == end)
                return end;
            const char *q = end - 64;
            uint64_t bad = bad64_avx2(q) & ~(uint64_t)0 << (p - q); /* before p: cleared */
            return bad != 0 ? q + __builtin_ctzll(bad) : end;
        }
        uint64_t bad = bad64_avx2(p);
        if (bad != 0)
            return p + __builtin_ctzll(bad);
        p += 64;
    }
}
#endif

/* Skips bytes of [p, end) that cannot be control bytes (under 0x20, HTAB
 * included) or DEL: it stops at the first such byte, or at end, or (without
 * SSE2, or in the last 16 bytes of a buffer shorter than that) short of end
 * at the start of the 8 bytes holding one or with fewer than 8 left; the
 * caller finishes through the class table. Long values such as bearer
 * tokens are most of a request's head: SSE2 (every x86-64) checks 16 bytes
 * at a time exactly, and after 32 clean bytes AVX2 (checked per call, a load
 * of what the compiler's runtime read at start-up) clears plain ASCII 64
 * bytes a step. A last piece shorter than a vector is read as the vector
 * that ends at end, overlapping bytes already checked, never before the
 * first byte it was given. */
static const char *find_ctl(const char *p, const char *end)
{
#ifdef __SSE2__
    const char *start = p;
    /* Most values end within 32 bytes: SSE2 first, AVX2 only for long runs. */
    for (int step = 0; end - p >= 16; step++) {
        unsigned m = ctl_mask(_mm_loadu_si128((const __m128i *)(const void *)p));
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
#ifdef HAVE_AVX2_PATH
        if (step == 1 && end - p >= 64 && !avx2_off && __builtin_cpu_supports("avx2"))
            p = clear_ascii_avx2(p, end);
#endif
    }
    if (p != end && end - start >= 16) {
        const char *q = end - 16;
        unsigned m = ctl_mask(_mm_loadu_si128((const __m128i *)(const void *)q));
        m &= ~0u << (p - q);
        return m != 0 ? q + __builtin_ctz(m) : end;
    }
#endif
    while (end - p >= 8) {
        uint64_t x = load64(p);
        if (has_less(x, 0x20) | has_byte(x, 0x7f))
            break;
        p += 8;
    }
    return p;
}

/* Field values may hold HTAB, so a tab only pauses the bulk scan; the last
 * few bytes go through the class table. */
static const char *skip_value(const char *p, const char *end)
{
    for (;;) {
        p = find_ctl(p, end);
        if (p == end || *p != '\t')
            return skip_class(p, end, C_FIELD);
        p++;
    }
}

static const char *skip_target(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t x = load64(p);
        if (has_less(x, 0x21) | has_byte(x, 0x7f) | has_byte(x, '#') | (x & HIGHS))
            break;
        p += 8;
    }
    return skip_class(p, end, C_TARGET);
}

/* ---- head parser ------------------------------------------------------ */

enum { R_OK = 0, R_MORE = 1, R_ERR = 2 };

typedef struct {
    const char *end; /* buf + min(len, max_head): bytes we may look at */
    int over;        /* len > max_head: running out of bytes means too large */
    int response;
    gh_h1_error_t *err;
} ctx_t;

/* What the field lines tell about the message, gathered while scanning. */
typedef struct {
    gh_h1_header_t *headers;
    size_t num;
    size_t max;
    int minor;
    const char *cl; /* first Content-Length value, NULL if none */
    size_t cl_len;
    uint64_t content_length;
    int te;       /* a (valid) Transfer-Encoding: chunked was seen */
    int te_other; /* a Transfer-Encoding with one coding that is not chunked */
    int conn_close;
    int conn_keep_alive;
    int host_index;
    int expect_continue;
    int has_upgrade;
} fields_t;

static int fail(ctx_t *c, int status, const char *detail)
{
    c->err->status = c->response ? 502 : status;
    c->err->detail = detail;
    return R_ERR;
}

/* Called whenever the scan reaches c->end. */
static int more(ctx_t *c)
{
    if (c->over)
        return fail(c, 431, "header section too large");
    return R_MORE;
}

/* At p: the byte that should start a CRLF. */
static int expect_crlf(ctx_t *c, const char **pp, const char *what)
{
    const char *p = *pp;
    if (p == c->end)
        return more(c);
    if (*p != '\r')
        return fail(c, 400, *p == '\n' ? "bare LF line terminator" : what);
    if (c->end - p < 2)
        return more(c);
    if (p[1] != '\n')
        return fail(c, 400, "bare CR");
    *pp = p + 2;
    return R_OK;
}

/* "HTTP/1.0" or "HTTP/1.1". The name is case-sensitive (RFC 9112 section
 * 2.3). Other versions get 400, not 505: we speak only these two. */
static int parse_version(ctx_t *c, const char **pp, int *minor)
{
    static const char prefix[] = "HTTP/1.";
    const char *p = *pp;
    for (size_t i = 0; i < sizeof(prefix) - 1; i++, p++) {
        if (p == c->end)
            return more(c);
        if (*p != prefix[i])
            return fail(c, 400, "unsupported HTTP version");
    }
    if (p == c->end)
        return more(c);
    if (*p != '0' && *p != '1')
        return fail(c, 400, "unsupported HTTP version");
    *minor = *p - '0';
    *pp = p + 1;
    return R_OK;
}

/* Value is 1*DIGIT with at most 18 digits (fits in 63 bits with room). */
static int parse_length(const char *v, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char d = (unsigned char)(v[i] - '0');
        if (d > 9)
            return -1;
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* An authority as in Host (RFC 9110 section 7.2, RFC 3986 section 3.2.2):
 * a reg-name or IPv4 address, or an IPv6 literal in brackets, then an
 * optional port of up to five digits. Userinfo, percent-encoding and
 * anything else are refused, so the host gatehouse routes and
 * authenticates on is the one the upstream reads. The reg-name is held to
 * letters, digits and "-._~": RFC 3986 also allows the sub-delims
 * "!$&'()*+,;=", which no DNS name has, and with which "a.test,b.test"
 * would be read as two hosts by an upstream that splits X-Forwarded-Host
 * (or Forwarded) on them. */
static int is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int gh_h1_authority_is_valid(const char *a, size_t n)
{
    static const char regname[] = "-._~";
    size_t i = 0;
    if (n > 0 && a[0] == '[') {
        for (i = 1; i < n && a[i] != ']'; i++)
            if (!IS(a[i], C_HEX) && a[i] != ':' && a[i] != '.')
                return 0;
        if (i == n || i < 3)
            return 0;
        i++;
    } else {
        for (; i < n && a[i] != ':'; i++)
            if (!is_alnum(a[i]) && (a[i] == '\0' || strchr(regname, a[i]) == NULL))
                return 0;
        if (i == 0)
            return 0;
    }
    if (i == n)
        return 1;
    if (a[i] != ':' || n - i - 1 > 5)
        return 0;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (a[i] < '0' || a[i] > '9')
            return 0;
        port = port * 10 + (unsigned)(a[i] - '0');
    }
    return port <= 65535;
}

int gh_h1_token_list_next(const char *v, size_t len, size_t *pos, const char **tok, size_t *tok_len)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i == len) {
            *pos = i;
            return 0;
        }
        size_t start = i;
        while (i < len && IS(v[i], C_TCHAR))
            i++;
        size_t stop = i;
        while (i < len && (v[i] == ' ' || v[i] == '\t'))
            i++;
        /* A member is one token, then OWS, then a comma or the end: "a b",
         * "a/b" or a quoted string is malformed, not two members or one
         * odd one, so no two readers can split it differently. */
        if (stop == start || (i < len && v[i] != ','))
            return GH_H1_ERROR;
        *tok = v + start;
        *tok_len = stop - start;
        *pos = i;
        return 1;
    }
}

/* Connection is a comma-separated list of tokens, possibly repeated across
 * field lines (RFC 9110 section 7.6.1). A malformed list is refused: the
 * forwarding code removes the fields it names with the same tokenizer, and
 * a list that readers could split two ways would let a field survive one
 * reading and not another. */
static int scan_connection(ctx_t *c, fields_t *f, const char *v, size_t len)
{
    size_t pos = 0;
    const char *t;
    size_t n;
    int r;
    while ((r = gh_h1_token_list_next(v, len, &pos, &t, &n)) > 0) {
        if (EQUALS_CI(t, n, "close"))
            f->conn_close = 1;
        else if (EQUALS_CI(t, n, "keep-alive"))
            f->conn_keep_alive = 1;
    }
    if (r < 0)
        return fail(c, 400, "malformed Connection");
    return R_OK;
}

/*
 * Checks one complete field line against the framing rules.
 */
static int check_field(ctx_t *c, fields_t *f, const gh_h1_header_t *h)
{
    switch (h->name_len) {
    case 4:
        if (c->response || !GH_H1_NAME_IS(h, "host"))
            break;
        /* RFC 9112 section 3.2: more than one Host is a 400. Two Hosts are
         * how a request gets routed by one and served by another. */
        if (f->host_index >= 0)
            return fail(c, 400, "duplicate Host");
        for (size_t i = 0; i < h->value_len; i++) {
            if (!IS(h->value[i], C_HOST))
                return fail(c, 400, "invalid Host");
        }
        f->host_index = (int)f->num;
        break;
    case 6:
        if (!c->response && GH_H1_NAME_IS(h, "expect") &&
            EQUALS_CI(h->value, h->value_len, "100-continue"))
            f->expect_continue = 1;
        break;
    case 7:
        if (!c->response && GH_H1_NAME_IS(h, "upgrade"))
            f->has_upgrade = 1;
        break;
    case 10:
        if (GH_H1_NAME_IS(h, "connection"))
            return scan_connection(c, f, h->value, h->value_len);
        break;
    case 14: {
        if (!GH_H1_NAME_IS(h, "content-length"))
            break;
        /* RFC 9112 section 6.3: an invalid Content-Length, or several that
         * differ, make the framing unknowable: refuse rather than guess. */
        uint64_t n;
        if (parse_length(h->value, h->value_len, &n) < 0)
            return fail(c, 400, "malformed Content-Length");
        if (f->cl) {
            if (f->cl_len != h->value_len || memcmp(f->cl, h->value, h->value_len) != 0)
                return fail(c, 400, "differing Content-Length values");
        } else {
            f->cl = h->value;
            f->cl_len = h->value_len;
            f->content_length = n;
        }
        if (f->te || f->te_other)
            return fail(c, 400, "both Content-Length and Transfer-Encoding");
        break;
    }
    case 17: {
        if (!GH_H1_NAME_IS(h, "transfer-encoding"))
            break;
        /* RFC 9112 section 6.1 and 6.3: both framings at once is the
         * classic smuggling setup; a repeat or a list is where parsers
         * disagree about which coding is last. Only one exact "chunked". */
        if (f->te || f->te_other)
            return fail(c, 400, "repeated Transfer-Encoding");
        if (f->cl)
            return fail(c, 400, "both Content-Length and Transfer-Encoding");
        if (f->minor == 0)
            return fail(c, 400, "Transfer-Encoding in an HTTP/1.0 message");
        if (h->value_len == 0)
            return fail(c, 400, "malformed Transfer-Encoding");
        if (!EQUALS_CI(h->value, h->value_len, "chunked")) {
            if (skip_class(h->value, h->value + h->value_len, C_TCHAR) == h->value + h->value_len) {
                f->te_other = 1; /* 501 once the head is complete */
                break;
            }
            return fail(c, 400, "malformed Transfer-Encoding");
        }
        f->te = 1;
        break;
    }
    default:
        break;
    }
    return R_OK;
}

/* Field lines up to and including the empty line; *pp ends after it. */
static int parse_fields(ctx_t *c, const char **pp, fields_t *f)
{
    const char *p = *pp;
    const char *end = c->end;

    for (;;) {
        if (p == end)
            return more(c);
        if (*p == '\r') {
            if (end - p < 2)
                return more(c);
            if (p[1] != '\n')
                return fail(c, 400, "bare CR");
            *pp = p + 2;
            return R_OK;
        }
        if (*p == '\n')
            return fail(c, 400, "bare LF line terminator");
        /* RFC 9112 section 5.2: obs-fold is refused outright, and so is
         * whitespace between the start-line and the first field (2.2). */
        if (*p == ' ' || *p == '\t')
            return fail(c, 400, "obs-fold or line starting with whitespace");
        if (f->num == f->max)
            return fail(c, 431, "too many header fields");

        const char *name = p;
        p = skip_class(p, end, C_TCHAR);
        if (p == end)
            return more(c);
        if (*p != ':') {
            /* RFC 9112 section 5.1: no whitespace between name and colon;
             * some servers strip it and others do not. */
            if (*p == ' ' || *p == '\t')
                return fail(c, 400, "whitespace before colon");
            return fail(c, 400, "invalid byte in header name");
        }
        if (p == name)
            return fail(c, 400, "empty header name");
        size_t name_len = (size_t)(p - name);
        ++p;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *value = p;
        p = skip_value(p, end);
        const char *stop = p;
        int r = expect_crlf(c, &p, "control byte in header value");
        if (r != R_OK)
            return r;
        const char *vend = stop;
        while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;

        gh_h1_header_t *h = &f->headers[f->num];
        h->name = name;
        h->name_len = name_len;
        h->value = value;
        h->value_len = (size_t)(vend - value);
        r = check_field(c, f, h);
        if (r != R_OK)
            return r;
        f->num++;
    }
}

static void fields_init(fields_t *f, gh_h1_header_t *headers, size_t max)
{
    memset(f, 0, sizeof(*f));
    f->headers = headers;
    f->max = max;
    f->host_index = -1;
}

/* Methods are case-sensitive (RFC 9110 section 9.1) and every registered
 * one is upper case. Servers behind us disagree on "delete" or "head"
 * (some read them as DELETE and HEAD), so a method with a lower-case letter
 * could mean one thing to a route, a policy or the framing of the response
 * and another to the upstream: refused, as nginx and Envoy do. */
static int has_lower(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p >= 'a' && *p <= 'z')
            return 1;
    return 0;
}

static int is_method(const char *m, size_t len, const char *lit, size_t lit_len)
{
    return len == lit_len && memcmp(m, lit, len) == 0;
}

#define IS_METHOD(m, len, lit) is_method((m), (len), (lit), sizeof(lit) - 1)

/* RFC 9112 section 3.2: the form of the target follows from the method. */
static int check_target(ctx_t *c, const gh_h1_request_t *req)
{
    const char *t = req->target;
    size_t n = req->target_len;

    if (IS_METHOD(req->method, req->method_len, "CONNECT")) {
        /* authority-form: host ":" port, nothing else. */
        size_t colon = n;
        for (size_t i = 0; i < n; i++) {
            if (!IS(t[i], C_HOST))
                return fail(c, 400, "CONNECT needs authority-form");
            if (t[i] == ':')
                colon = i;
        }
        if (colon == 0 || colon + 1 >= n)
            return fail(c, 400, "CONNECT needs authority-form");
        for (size_t i = colon + 1; i < n; i++) {
            if (t[i] < '0' || t[i] > '9')
                return fail(c, 400, "CONNECT needs authority-form");
        }
        return R_OK;
    }
    if (t[0] == '/')
        return R_OK;
    if (n == 1 && t[0] == '*') {
        if (!IS_METHOD(req->method, req->method_len, "OPTIONS"))
            return fail(c, 400, "asterisk-form is only for OPTIONS");
        return R_OK;
    }
    /* absolute-form: scheme ":" ... with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    unsigned char ch = to_lower((unsigned char)t[0]);
    if (ch < 'a' || ch > 'z')
        return fail(c, 400, "invalid request-target");
    for (size_t i = 1; i < n; i++) {
        ch = to_lower((unsigned char)t[i]);
        if (ch == ':')
            return R_OK;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '-' ||
              ch == '.'))
            break;
    }
    return fail(c, 400, "invalid request-target");
}

static int parse_request_line(ctx_t *c, const char **pp, const gh_h1_limits_t *limits,
                              gh_h1_request_t *req)
{
    const char *p = *pp;
    const char *end = c->end;

    /* RFC 9112 section 2.2: ignore empty lines before the request-line
     * (clients sometimes send a CRLF after a POST body). */
    for (;;) {
        if (p == end)
            return more(c);
        if (*p == '\n')
            return fail(c, 400, "bare LF line terminator");
        if (*p != '\r')
            break;
        if (end - p < 2)
            return more(c);
        if (p[1] != '\n')
            return fail(c, 400, "bare CR");
        p += 2;
    }

    const char *method = p;
    p = skip_class(p, end, C_TCHAR);
    if (p == end)
        return more(c);
    if (*p != ' ' || p == method)
        return fail(c, 400, "invalid method");
    if (has_lower(method, p))
        return fail(c, 400, "method with lower-case letters");
    req->method = method;
    req->method_len = (size_t)(p - method);
    p++;

    /* Refuse with 414 as soon as the target outgrows max_uri, without
     * waiting for the rest of the head. */
    const char *target = p;
    size_t avail = (size_t)(end - p);
    const char *stop = limits->max_uri < avail ? p + limits->max_uri + 1 : end;
    p = skip_target(p, stop);
    if ((size_t)(p - target) > limits->max_uri)
        return fail(c, 414, "request-target too long");
    if (p == end)
        return more(c);
    if (*p != ' ')
        return fail(c, 400, "invalid byte in request-target");
    if (p == target)
        return fail(c, 400, "empty request-target");
    req->target = target;
    req->target_len = (size_t)(p - target);
    int r = check_target(c, req);
    if (r != R_OK)
        return r;
    p++;

    r = parse_version(c, &p, &req->minor_version);
    if (r != R_OK)
        return r;
    r = expect_crlf(c, &p, "invalid request-line");
    if (r != R_OK)
        return r;
    *pp = p;
    return R_OK;
}

static int finish(int r, const char *buf, const char *p)
{
    if (r == R_MORE)
        return GH_H1_INCOMPLETE;
    if (r == R_ERR)
        return GH_H1_ERROR;
    return (int)(p - buf);
}

static void ctx_init(ctx_t *c, const char *buf, size_t len, const gh_h1_limits_t *limits,
                     int response, gh_h1_error_t *err)
{
    /* The return value is an int: never look at more than INT_MAX bytes. */
    size_t max = limits->max_head < (size_t)0x7fffffff ? limits->max_head : (size_t)0x7fffffff;
    /* cppcheck-suppress knownConditionTrueFalse ; max_head is a runtime limit */
    c->end = buf + (len < max ? len : max);
    c->over = len > max;
    c->response = response;
    c->err = err;
}

int gh_h1_request_parse(const char *buf, size_t len, const gh_h1_limits_t *limits,
                        gh_h1_request_t *req, gh_h1_error_t *err)
{
    ctx_t c;
    fields_t f;
    const char *p = buf;

    ctx_init(&c, buf, len, limits, 0, err);
    req->num_headers = 0;
    int r = parse_request_line(&c, &p, limits, req);
    if (r != R_OK)
        return finish(r, buf, p);

    fields_init(&f, req->headers, limits->max_headers);
    f.minor = req->minor_version;
    r = parse_fields(&c, &p, &f);
    req->num_headers = f.num;
    if (r != R_OK)
        return finish(r, buf, p);

    /* RFC 9112 section 3.2: an HTTP/1.1 request without Host is a 400. */
    if (req->minor_version == 1 && f.host_index < 0)
        return finish(fail(&c, 400, "missing Host"), buf, p);

    if (f.te_other)
        return finish(fail(&c, 501, "unsupported transfer coding"), buf, p);
    req->host_index = f.host_index;
    req->content_length = 0;
    if (f.te) {
        req->body = GH_H1_BODY_CHUNKED;
    } else if (f.cl && f.content_length > 0) {
        req->body = GH_H1_BODY_LENGTH;
        req->content_length = f.content_length;
    } else {
        req->body = GH_H1_BODY_NONE;
    }
    if (req->minor_version == 1)
        req->keep_alive = !f.conn_close;
    else
        req->keep_alive = f.conn_keep_alive && !f.conn_close;
    req->expect_continue = f.expect_continue ? 1u : 0u;
    req->has_upgrade = f.has_upgrade ? 1u : 0u;
    return finish(R_OK, buf, p);
}

static int parse_status_line(ctx_t *c, const char **pp, gh_h1_response_t *res)
{
    const char *p = *pp;
    int r = parse_version(c, &p, &res->minor_version);
    if (r != R_OK)
        return r;
    if (p == c->end)
        return more(c);
    if (*p != ' ')
        return fail(c, 502, "invalid status-line");
    p++;

    int status = 0;
    for (int i = 0; i < 3; i++, p++) {
        if (p == c->end)
            return more(c);
        if (*p < '0' || *p > '9' || (i == 0 && *p == '0'))
            return fail(c, 502, "invalid status code");
        status = status * 10 + (*p - '0');
    }
    res->status = status;
    if (p == c->end)
        return more(c);
    if (*p == ' ')
        p++;
    else if (*p != '\r' && *p != '\n')
        return fail(c, 502, "invalid status code");
    res->reason = p;
    p = skip_value(p, c->end);
    res->reason_len = (size_t)(p - res->reason);
    r = expect_crlf(c, &p, "control byte in reason-phrase");
    if (r != R_OK)
        return r;
    *pp = p;
    return R_OK;
}

int gh_h1_response_parse(const char *buf, size_t len, const gh_h1_limits_t *limits,
                         gh_h1_response_t *res, gh_h1_error_t *err)
{
    ctx_t c;
    fields_t f;
    const char *p = buf;

    ctx_init(&c, buf, len, limits, 1, err);
    res->num_headers = 0;
    int r = parse_status_line(&c, &p, res);
    if (r != R_OK)
        return finish(r, buf, p);

    fields_init(&f, res->headers, limits->max_headers);
    f.minor = res->minor_version;
    r = parse_fields(&c, &p, &f);
    res->num_headers = f.num;
    if (r != R_OK)
        return finish(r, buf, p);

    if (f.te_other)
        return finish(fail(&c, 502, "unsupported transfer coding"), buf, p);
    if (res->minor_version == 1)
        res->keep_alive = !f.conn_close;
    else
        res->keep_alive = f.conn_keep_alive && !f.conn_close;
    res->content_length = 0;
    /* RFC 9112 section 6.3: 1xx, 204 and 304 never have content, whatever
     * the fields say (they were still validated above). */
    if (res->status < 200 || res->status == 204 || res->status == 304) {
        res->body = GH_H1_BODY_NONE;
    } else if (f.te) {
        res->body = GH_H1_BODY_CHUNKED;
    } else if (f.cl) {
        res->body = f.content_length > 0 ? GH_H1_BODY_LENGTH : GH_H1_BODY_NONE;
        res->content_length = f.content_length;
    } else {
        res->body = GH_H1_BODY_UNTIL_CLOSE;
        res->keep_alive = 0;
    }
    return finish(R_OK, buf, p);
}

/* ---- chunked decoder -------------------------------------------------- */

/*
 * RFC 9112 section 7.1:
 *   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   last-chunk = 1*("0") [ chunk-ext ] CRLF
 *   trailer-section = *( field-line CRLF ) CRLF
 * BWS is accepted exactly where the grammar has it and nowhere else.
 */
enum {
    CS_SIZE_FIRST = 0, /* the first hex digit of a chunk-size */
    CS_SIZE,           /* more hex digits, ';', BWS or CR */
    CS_EXT_BWS,        /* BWS before ';' */
    CS_EXT_NAME_BWS,   /* after ';': BWS, then the first name byte */
    CS_EXT_NAME,       /* name bytes */
    CS_EXT_NAME_END,   /* BWS after the name: '=' or ';' next */
    CS_EXT_VAL_BWS,    /* after '=': BWS, then a token or a quoted-string */
    CS_EXT_VAL_TOKEN,  /* token value bytes */
    CS_EXT_VAL_QUOTED, /* inside a quoted-string */
    CS_EXT_VAL_ESCAPE, /* after a backslash in a quoted-string */
    CS_EXT_VAL_END,    /* after the closing quote */
    CS_SIZE_LF,        /* CR seen at the end of the size line */
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START, /* start of a trailer line or of the final CRLF */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERROR,
};

/* The size line with extensions is bounded: nobody needs more than this,
 * and the decoder must not be kept busy by an endless extension. */
#define MAX_SIZE_LINE 4096

void gh_h1_chunked_init(gh_h1_chunked_t *d)
{
    d->state = CS_SIZE_FIRST;
    d->remaining = 0;
    d->line_len = 0;
    d->trailers_len = 0;
}

static int chunk_fail(gh_h1_chunked_t *d, gh_h1_error_t *err, size_t i, size_t *consumed,
                      const char *detail)
{
    d->state = CS_ERROR;
    err->status = 400;
    err->detail = detail;
    *consumed = i;
    return GH_H1_ERROR;
}

static int is_bws(unsigned char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Appends a trailer byte; 0 if the trailer section would be too large. */
static int trailer_put(gh_h1_chunked_t *d, char ch)
{
    if (d->trailers_len >= GH_H1_MAX_TRAILERS)
        return 0;
    d->trailers[d->trailers_len++] = ch;
    d->line_len++;
    return 1;
}

int gh_h1_chunked_decode(gh_h1_chunked_t *d, const char *in, size_t len, size_t *consumed,
                         size_t *data_off, size_t *data_len, gh_h1_error_t *err)
{
    size_t i = 0;

    *data_off = 0;
    *data_len = 0;
    if (d->state == CS_ERROR)
        return chunk_fail(d, err, 0, consumed, "chunked decoder already failed");
    if (d->state == CS_DONE) {
        *consumed = 0;
        return GH_H1_CHUNK_DONE;
    }

    while (i < len) {
        unsigned char ch = (unsigned char)in[i];

        if (d->state == CS_DATA) {
            size_t avail = len - i;
            size_t n = d->remaining < (uint64_t)avail ? (size_t)d->remaining : avail;
            *data_off = i;
            *data_len = n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CS_DATA_CR;
            *consumed = i + n;
            return GH_H1_CHUNK_DATA;
        }
        if (d->state <= CS_SIZE_LF) {
            if (++d->line_len > MAX_SIZE_LINE)
                return chunk_fail(d, err, i, consumed, "chunk-size line too long");
            if (ch == '\n' && d->state != CS_SIZE_LF)
                return chunk_fail(d, err, i, consumed, "bare LF in chunk-size line");
        }

        switch (d->state) {
        case CS_SIZE_FIRST:
        case CS_SIZE:
            if (IS(ch, C_HEX)) {
                /* 15 significant hex digits at most: 2^60 - 1, which also
                 * keeps every size below the 2^62 the header promises. */
                if (d->remaining >> 56)
                    return chunk_fail(d, err, i, consumed, "chunk size too large");
                unsigned v = ch <= '9' ? (unsigned)(ch - '0') : (unsigned)((ch | 0x20) - 'a' + 10);
                d->remaining = (d->remaining << 4) | v;
                d->state = CS_SIZE;
                break;
            }
            if (d->state == CS_SIZE_FIRST)
                return chunk_fail(d, err, i, consumed, "invalid chunk size");
            if (ch == '\r')
                d->state = CS_SIZE_LF;
            else if (ch == ';')
                d->state = CS_EXT_NAME_BWS;
            else if (is_bws(ch))
                d->state = CS_EXT_BWS;
            else
                return chunk_fail(d, err, i, consumed, "invalid chunk size");
            break;
        case CS_EXT_BWS:
            if (ch == ';')
                d->state = CS_EXT_NAME_BWS;
            else if (!is_bws(ch))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_NAME_BWS:
            if (IS(ch, C_TCHAR))
                d->state = CS_EXT_NAME;
            else if (!is_bws(ch))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_NAME:
            if (IS(ch, C_TCHAR))
                break;
            if (ch == '\r')
                d->state = CS_SIZE_LF;
            else if (ch == ';')
                d->state = CS_EXT_NAME_BWS;
            else if (ch == '=')
                d->state = CS_EXT_VAL_BWS;
            else if (is_bws(ch))
                d->state = CS_EXT_NAME_END;
            else
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_NAME_END:
            if (ch == ';')
                d->state = CS_EXT_NAME_BWS;
            else if (ch == '=')
                d->state = CS_EXT_VAL_BWS;
            else if (!is_bws(ch))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_VAL_BWS:
            if (IS(ch, C_TCHAR))
                d->state = CS_EXT_VAL_TOKEN;
            else if (ch == '"')
                d->state = CS_EXT_VAL_QUOTED;
            else if (!is_bws(ch))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_VAL_TOKEN:
        case CS_EXT_VAL_END:
            if (d->state == CS_EXT_VAL_TOKEN && IS(ch, C_TCHAR))
                break;
            if (ch == '\r')
                d->state = CS_SIZE_LF;
            else if (ch == ';')
                d->state = CS_EXT_NAME_BWS;
            else if (is_bws(ch))
                d->state = CS_EXT_BWS;
            else
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_VAL_QUOTED:
            if (ch == '"')
                d->state = CS_EXT_VAL_END;
            else if (ch == '\\')
                d->state = CS_EXT_VAL_ESCAPE;
            else if (!IS(ch, C_QD))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            break;
        case CS_EXT_VAL_ESCAPE:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!IS(ch, C_FIELD))
                return chunk_fail(d, err, i, consumed, "invalid chunk extension");
            d->state = CS_EXT_VAL_QUOTED;
            break;
        case CS_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(d, err, i, consumed, "bare CR in chunk-size line");
            d->line_len = 0;
            d->state = d->remaining ? CS_DATA : CS_TRAILER_START;
            break;
        case CS_DATA_CR:
            if (ch != '\r')
                return chunk_fail(d, err, i, consumed, "missing CRLF after chunk data");
            d->state = CS_DATA_LF;
            break;
        case CS_DATA_LF:
            if (ch != '\n')
                return chunk_fail(d, err, i, consumed, "missing CRLF after chunk data");
            d->state = CS_SIZE_FIRST;
            break;
        case CS_TRAILER_START:
            d->line_len = 0;
            if (ch == '\r') {
                d->state = CS_FINAL_LF;
                break;
            }
            if (ch == ' ' || ch == '\t')
                return chunk_fail(d, err, i, consumed, "obs-fold in trailer section");
            if (ch == ':')
                return chunk_fail(d, err, i, consumed, "empty trailer field name");
            if (!IS(ch, C_TCHAR))
                return chunk_fail(d, err, i, consumed, "invalid trailer field");
            if (!trailer_put(d, (char)ch))
                return chunk_fail(d, err, i, consumed, "trailer section too large");
            d->state = CS_TRAILER_NAME;
            break;
        case CS_TRAILER_NAME:
            if (ch == ':') {
                /* RFC 9110 section 6.5.1: framing fields are meaningless in
                 * a trailer; refuse them so that no peer that merges trailers
                 * into the header section can be confused by them. */
                gh_h1_header_t h = {d->trailers + d->trailers_len - d->line_len, d->line_len, NULL,
                                    0};
                if (GH_H1_NAME_IS(&h, "content-length") || GH_H1_NAME_IS(&h, "transfer-encoding"))
                    return chunk_fail(d, err, i, consumed, "framing field in trailer section");
                d->state = CS_TRAILER_VALUE;
            } else if (is_bws(ch)) {
                return chunk_fail(d, err, i, consumed, "whitespace before colon in trailer");
            } else if (!IS(ch, C_TCHAR)) {
                return chunk_fail(d, err, i, consumed, "invalid trailer field");
            }
            if (!trailer_put(d, (char)ch))
                return chunk_fail(d, err, i, consumed, "trailer section too large");
            break;
        case CS_TRAILER_VALUE:
            if (ch == '\r')
                d->state = CS_TRAILER_LF;
            else if (!IS(ch, C_FIELD))
                return chunk_fail(d, err, i, consumed, "invalid trailer field");
            if (!trailer_put(d, (char)ch))
                return chunk_fail(d, err, i, consumed, "trailer section too large");
            break;
        case CS_TRAILER_LF:
            if (ch != '\n')
                return chunk_fail(d, err, i, consumed, "bare CR in trailer section");
            if (!trailer_put(d, (char)ch))
                return chunk_fail(d, err, i, consumed, "trailer section too large");
            d->state = CS_TRAILER_START;
            break;
        case CS_FINAL_LF:
            if (ch != '\n')
                return chunk_fail(d, err, i, consumed, "bare CR in trailer section");
            d->state = CS_DONE;
            *consumed = i + 1;
            return GH_H1_CHUNK_DONE;
        default:
            return chunk_fail(d, err, i, consumed, "chunked decoder in a bad state");
        }
        i++;
    }
    *consumed = len;
    return GH_H1_CHUNK_MORE;
}
