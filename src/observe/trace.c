/*
 * Trace context propagation: W3C Trace Context (traceparent, tracestate) and
 * B3 (single and multi header) in, W3C out.
 *
 * Everything here runs on the request path of a worker: no allocation, no
 * locks, bounded work per header. The parsers are strict where the
 * specification is (W3C: lower-case hex, fixed lengths, all-zero ids and
 * version ff invalid) and treat anything they refuse as absent, so a bad
 * header costs the caller a trace link and never a request.
 */
#include <string.h>

#include <gatehouse/trace.h>

/* W3C Trace Context section 3.2: version-format 00 is
 * "00-" 32HEXDIGLC "-" 16HEXDIGLC "-" 2HEXDIGLC, 55 bytes. */
#define TP_LEN 55

static int hex_val(unsigned char c, int lower_only)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (!lower_only && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes 2*n hex digits at s into out[n]. Returns 0, or -1 on a non-hex
 * byte. */
static int hex_decode(const char *s, uint8_t *out, size_t n, int lower_only)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_val((unsigned char)s[2 * i], lower_only);
        int lo = hex_val((unsigned char)s[2 * i + 1], lower_only);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
}

/* The only header called `name`: 1 and *out when exactly one is present,
 * 0 when none, -1 when repeated. A repeated traceparent or b3 header has no
 * single meaning (intermediaries may have merged two requests' contexts),
 * so it is treated as invalid rather than picking one. */
static int find_one(const gh_h1_header_t *headers, size_t n, const char *name, size_t len,
                    const gh_h1_header_t **out)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (gh_h1_name_is(&headers[i], name, len)) {
            if (found)
                return -1;
            *out = &headers[i];
            found = 1;
        }
    }
    return found;
}

#define FIND_ONE(h, n, lit, out) find_one((h), (n), (lit), sizeof(lit) - 1, (out))

/* W3C Trace Context section 3.2.2 (traceparent field values) and 3.2.4
 * (versioning): version is 2 lower-case hex digits and ff is invalid. For
 * version 00 the value is exactly 55 bytes. A higher version is read by the
 * 00 rules on its first 55 bytes, and what follows (if anything) must start
 * with "-": a future version may append fields, never change these. */
static int parse_traceparent(const char *v, size_t len, gh_trace_ctx_t *out)
{
    uint8_t version, flags;
    if (len < TP_LEN)
        return -1;
    if (hex_decode(v, &version, 1, 1) != 0 || version == 0xff)
        return -1;
    if (version == 0 && len != TP_LEN)
        return -1;
    if (len > TP_LEN && v[TP_LEN] != '-')
        return -1;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return -1;
    if (hex_decode(v + 3, out->trace_id, 16, 1) != 0 ||
        hex_decode(v + 36, out->span_id, 8, 1) != 0 || hex_decode(v + 53, &flags, 1, 1) != 0)
        return -1;
    /* Section 3.2.2.3 and 3.2.2.4: all-zero ids are invalid. */
    if (all_zero(out->trace_id, 16) || all_zero(out->span_id, 8))
        return -1;
    /* Only the sampled bit (bit 0) is defined; other bits are ignored, and
     * for future versions only the sampled bit may be read at all. */
    out->sampled = (flags & 1) != 0;
    return 0;
}

static int is_lcalpha(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_key_char(unsigned char c)
{
    return is_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* A tracestate key (section 3.3.1.3.1): simple-key is lcalpha followed by
 * up to 255 key chars; multi-tenant-key is tenant-id "@" system-id, tenant
 * (lcalpha / DIGIT) + up to 240 key chars, system lcalpha + up to 13. */
static int valid_key(const char *k, size_t len)
{
    const char *at = memchr(k, '@', len);
    if (at == NULL) {
        if (len < 1 || len > 256 || !is_lcalpha((unsigned char)k[0]))
            return 0;
        for (size_t i = 1; i < len; i++) {
            if (!is_key_char((unsigned char)k[i]))
                return 0;
        }
        return 1;
    }
    size_t tlen = (size_t)(at - k), slen = len - tlen - 1;
    if (tlen < 1 || tlen > 241 || slen < 1 || slen > 14)
        return 0;
    if (!is_lcalpha((unsigned char)k[0]) && !(k[0] >= '0' && k[0] <= '9'))
        return 0;
    if (!is_lcalpha((unsigned char)at[1]))
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (k + i != at && !is_key_char((unsigned char)k[i]))
            return 0;
    }
    return 1;
}

/* value = 0*255(chr) nblk-chr, chr = %x20 / nblk-chr,
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (no ',' and no '='). */
static int valid_value(const char *v, size_t len)
{
    if (len < 1 || len > 256 || v[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
            return 0;
    }
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Section 3.3.1: a list of at most 32 key=value members with unique keys,
 * separated by commas with optional whitespace; empty members are allowed.
 * An invalid list is dropped whole: forwarding part of it would change what
 * the vendors that wrote it meant. */
static int valid_tracestate(const char *s, size_t len)
{
    const char *keys[32];
    size_t key_lens[32];
    size_t nkeys = 0;
    size_t pos = 0;
    while (pos <= len) {
        const char *comma = memchr(s + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - s) : len;
        size_t a = pos, b = end;
        while (a < b && is_ows(s[a]))
            a++;
        while (b > a && is_ows(s[b - 1]))
            b--;
        if (a < b) {
            const char *eq = memchr(s + a, '=', b - a);
            if (eq == NULL || nkeys == 32)
                return 0;
            size_t klen = (size_t)(eq - (s + a));
            if (!valid_key(s + a, klen) || !valid_value(eq + 1, b - a - klen - 1))
                return 0;
            for (size_t i = 0; i < nkeys; i++) {
                if (key_lens[i] == klen && memcmp(keys[i], s + a, klen) == 0)
                    return 0;
            }
            keys[nkeys] = s + a;
            key_lens[nkeys] = klen;
            nkeys++;
        }
        pos = end + 1;
    }
    return 1;
}

/* Multiple tracestate headers are one list, joined with commas in order
 * (section 3.3.1.1). The combined value is passed on when it is at most
 * GH_TRACESTATE_MAX bytes and valid, else dropped (section 3.3.1.5 lets a
 * vendor drop a list it cannot propagate whole). */
static void collect_tracestate(const gh_h1_header_t *headers, size_t n, gh_trace_ctx_t *out)
{
    size_t len = 0;
    out->tracestate[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const gh_h1_header_t *h = &headers[i];
        if (!GH_H1_NAME_IS(h, "tracestate") || h->value_len == 0)
            continue;
        size_t need = h->value_len + (len > 0 ? 1 : 0);
        if (need > GH_TRACESTATE_MAX - len) {
            out->tracestate[0] = '\0';
            return;
        }
        if (len > 0)
            out->tracestate[len++] = ',';
        memcpy(out->tracestate + len, h->value, h->value_len);
        len += h->value_len;
    }
    out->tracestate[len] = '\0';
    if (len > 0 && !valid_tracestate(out->tracestate, len))
        out->tracestate[0] = '\0';
}

/* B3 trace id: 32 or 16 hex digits; a 64-bit id is the low half of the
 * 128-bit one (left-padded with zeros). B3 says lower-hex, but senders in
 * the wild emit upper case and the id means the same, so case is not held
 * against them: gatehouse re-emits it lower-case in traceparent. */
static int b3_trace_id(const char *v, size_t len, uint8_t out[16])
{
    memset(out, 0, 16);
    if (len == 32)
        return hex_decode(v, out, 16, 0);
    if (len == 16)
        return hex_decode(v, out + 8, 8, 0);
    return -1;
}

static int b3_span_id(const char *v, size_t len, uint8_t out[8])
{
    return len == 16 ? hex_decode(v, out, 8, 0) : -1;
}

/* The single b3 header:
 * {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]], SamplingState one of
 * "1", "0", "d" (debug, which implies sampled). A lone sampling state ("0",
 * "1", "d") carries no ids and so no context to continue. */
static int parse_b3_single(const char *v, size_t len, gh_trace_ctx_t *out)
{
    const char *end = v + len;
    const char *d1 = memchr(v, '-', len);
    if (d1 == NULL)
        return -1;
    if (b3_trace_id(v, (size_t)(d1 - v), out->trace_id) != 0)
        return -1;
    const char *sp = d1 + 1;
    const char *d2 = memchr(sp, '-', (size_t)(end - sp));
    const char *sp_end = d2 != NULL ? d2 : end;
    if (b3_span_id(sp, (size_t)(sp_end - sp), out->span_id) != 0)
        return -1;
    out->sample_deferred = 1;
    out->sampled = 0;
    if (d2 != NULL) {
        const char *st = d2 + 1;
        const char *d3 = memchr(st, '-', (size_t)(end - st));
        const char *st_end = d3 != NULL ? d3 : end;
        if (st_end - st != 1)
            return -1;
        if (st[0] == '1' || st[0] == 'd')
            out->sampled = 1;
        else if (st[0] != '0')
            return -1;
        out->sample_deferred = 0;
        if (d3 != NULL) {
            /* The parent of the sender's span: well-formed or refused, but
             * not needed, since gatehouse's parent is the sender's span. */
            uint8_t parent[8];
            if (b3_span_id(d3 + 1, (size_t)(end - d3 - 1), parent) != 0 || all_zero(parent, 8))
                return -1;
        }
    }
    if (all_zero(out->trace_id, 16) || all_zero(out->span_id, 8))
        return -1;
    return 0;
}

static int value_is(const gh_h1_header_t *h, const char *lit)
{
    size_t n = strlen(lit);
    return h->value_len == n && memcmp(h->value, lit, n) == 0;
}

/* x-b3-traceid and x-b3-spanid (both required), x-b3-sampled ("1"/"0", and
 * the legacy "true"/"false"), x-b3-flags ("1" = debug, implies sampled).
 * Without either sampling header the sender deferred the decision. */
static int parse_b3_multi(const gh_h1_header_t *headers, size_t n, gh_trace_ctx_t *out)
{
    const gh_h1_header_t *tid, *sid, *sampled, *flags;
    if (FIND_ONE(headers, n, "x-b3-traceid", &tid) != 1 ||
        FIND_ONE(headers, n, "x-b3-spanid", &sid) != 1)
        return -1;
    if (b3_trace_id(tid->value, tid->value_len, out->trace_id) != 0 ||
        b3_span_id(sid->value, sid->value_len, out->span_id) != 0 || all_zero(out->trace_id, 16) ||
        all_zero(out->span_id, 8))
        return -1;
    out->sampled = 0;
    out->sample_deferred = 1;
    int rs = FIND_ONE(headers, n, "x-b3-sampled", &sampled);
    int rf = FIND_ONE(headers, n, "x-b3-flags", &flags);
    if (rs < 0 || rf < 0)
        return -1;
    if (rf == 1 && value_is(flags, "1")) {
        out->sampled = 1;
        out->sample_deferred = 0;
    } else if (rs == 1) {
        if (value_is(sampled, "1") || value_is(sampled, "true"))
            out->sampled = 1;
        else if (!value_is(sampled, "0") && !value_is(sampled, "false"))
            return -1;
        out->sample_deferred = 0;
    }
    return 0;
}

int gh_trace_extract(const gh_h1_header_t *headers, size_t n, gh_trace_ctx_t *in)
{
    const gh_h1_header_t *h;
    memset(in, 0, sizeof(*in));
    /* W3C first: when a traceparent is valid, B3 headers (if any) are
     * older propagation from the same caller and lose. An invalid one is
     * absent, so a valid B3 context behind it still counts. Section 3.3.1.5:
     * tracestate is read only when traceparent was valid. */
    if (FIND_ONE(headers, n, "traceparent", &h) == 1 &&
        parse_traceparent(h->value, h->value_len, in) == 0) {
        collect_tracestate(headers, n, in);
        return 1;
    }
    memset(in, 0, sizeof(*in));
    if (FIND_ONE(headers, n, "b3", &h) == 1 && parse_b3_single(h->value, h->value_len, in) == 0)
        return 1;
    memset(in, 0, sizeof(*in));
    if (parse_b3_multi(headers, n, in) == 0)
        return 1;
    memset(in, 0, sizeof(*in));
    return 0;
}

static void fill_id(uint8_t *out, size_t n, uint64_t (*rnd)(void *), void *rnd_arg)
{
    /* An all-zero id is invalid on the wire; with a sound generator this
     * loop runs once (the chance of a zero 64-bit draw is 2^-64). */
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rnd(rnd_arg);
            for (size_t j = 0; j < 8 && i + j < n; j++)
                out[i + j] = (uint8_t)(r >> (8 * j));
        }
    } while (all_zero(out, n));
}

void gh_trace_start(gh_trace_ctx_t *span, const gh_trace_ctx_t *in, double ratio,
                    uint64_t (*rnd)(void *), void *rnd_arg)
{
    int decide = 1;
    memset(span, 0, sizeof(*span));
    if (in != NULL) {
        memcpy(span->trace_id, in->trace_id, sizeof(span->trace_id));
        memcpy(span->parent_span_id, in->span_id, sizeof(span->parent_span_id));
        span->has_parent = 1;
        memcpy(span->tracestate, in->tracestate, sizeof(span->tracestate));
        span->tracestate[GH_TRACESTATE_MAX] = '\0';
        /* The caller's decision stands (the sampled flag is honoured both
         * ways); only a B3 sender that deferred it leaves it to us. */
        if (!in->sample_deferred) {
            span->sampled = in->sampled;
            decide = 0;
        }
    } else {
        fill_id(span->trace_id, sizeof(span->trace_id), rnd, rnd_arg);
    }
    fill_id(span->span_id, sizeof(span->span_id), rnd, rnd_arg);
    if (decide) {
        /* 53 random bits as a fraction in [0, 1): exact for the edge
         * ratios, so 0 never samples and 1 always does. */
        if (ratio >= 1.0)
            span->sampled = 1;
        else if (ratio > 0.0)
            span->sampled = (double)(rnd(rnd_arg) >> 11) * 0x1p-53 < ratio;
    }
}

size_t gh_trace_format_headers(const gh_trace_ctx_t *span, char *buf, size_t cap)
{
    static const char tp_name[] = "traceparent: ";
    static const char ts_name[] = "tracestate: ";
    size_t ts_len = strnlen(span->tracestate, sizeof(span->tracestate));
    size_t need = sizeof(tp_name) - 1 + TP_LEN + 2;
    if (ts_len > 0)
        need += sizeof(ts_name) - 1 + ts_len + 2;
    if (cap < need)
        return 0;
    char *p = buf;
    memcpy(p, tp_name, sizeof(tp_name) - 1);
    p += sizeof(tp_name) - 1;
    /* gatehouse speaks version 00 whatever version it received (section
     * 3.2.4: a vendor that does not know a higher version sends its own). */
    memcpy(p, "00-", 3);
    p += 3;
    hex_encode(span->trace_id, 16, p);
    p += 32;
    *p++ = '-';
    hex_encode(span->span_id, 8, p);
    p += 16;
    memcpy(p, span->sampled ? "-01\r\n" : "-00\r\n", 5);
    p += 5;
    if (ts_len > 0) {
        memcpy(p, ts_name, sizeof(ts_name) - 1);
        p += sizeof(ts_name) - 1;
        memcpy(p, span->tracestate, ts_len);
        p += ts_len;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    return (size_t)(p - buf);
}

void gh_trace_id_hex(const gh_trace_ctx_t *span, char out[33])
{
    hex_encode(span->trace_id, 16, out);
    out[32] = '\0';
}
