/*
 * libFuzzer target for gh_trace_extract (traceparent, tracestate, b3,
 * x-b3-*), with the input read as header lines: "name:value\n" (up to 32
 * headers; a line without a colon is a name with an empty value). Each
 * header's bytes get an exactly sized copy, so a read past a value is an
 * ASan report.
 *
 * Besides "no crash", it checks:
 *   - a refused input leaves the context all zero;
 *   - an accepted one has non-zero ids and a tracestate of at most
 *     GH_TRACESTATE_MAX bytes of printable ASCII or HTAB (list OWS), since it
 *     is forwarded as a header;
 *   - the traceparent verdict agrees with an independent, deliberately
 *     plain reading of the W3C rules, and so do the ids;
 *   - gatehouse's own span, formatted and parsed back, is the same span.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/trace.h>

#define MAX_HDRS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lhex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The W3C rules, restated position by position. */
static int ref_traceparent(const char *v, size_t n, uint8_t tid[16], uint8_t sid[8])
{
    if (n < 55)
        return 0;
    for (size_t i = 0; i < 55; i++) {
        int dash = i == 2 || i == 35 || i == 52;
        if (dash ? v[i] != '-' : !lhex(v[i]))
            return 0;
    }
    if (v[0] == 'f' && v[1] == 'f')
        return 0;
    if (v[0] == '0' && v[1] == '0' && n != 55)
        return 0;
    if (n > 55 && v[55] != '-')
        return 0;
    int nz_t = 0, nz_s = 0;
    for (size_t i = 0; i < 16; i++) {
        tid[i] = (uint8_t)(hexval(v[3 + 2 * i]) * 16 + hexval(v[4 + 2 * i]));
        nz_t |= tid[i];
    }
    for (size_t i = 0; i < 8; i++) {
        sid[i] = (uint8_t)(hexval(v[36 + 2 * i]) * 16 + hexval(v[37 + 2 * i]));
        nz_s |= sid[i];
    }
    return nz_t && nz_s;
}

static uint64_t rnd(void *arg)
{
    uint64_t *x = arg;
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int name_is(const gh_h1_header_t *h, const char *lit)
{
    return gh_h1_name_is(h, lit, strlen(lit));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gh_h1_header_t h[MAX_HDRS] = {{0}};
    char *copies[2 * MAX_HDRS];
    size_t n = 0, nc = 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && n < MAX_HDRS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        const char *name_end = colon ? colon : line_end;
        const char *val = colon ? colon + 1 : line_end;
        size_t nl_len = (size_t)(name_end - p), v_len = (size_t)(line_end - val);
        char *nm = malloc(nl_len ? nl_len : 1), *vv = malloc(v_len ? v_len : 1);
        if (nm == NULL || vv == NULL)
            abort();
        memcpy(nm, p, nl_len);
        memcpy(vv, val, v_len);
        copies[nc++] = nm;
        copies[nc++] = vv;
        h[n].name = nm;
        h[n].name_len = nl_len;
        h[n].value = vv;
        h[n].value_len = v_len;
        n++;
        p = nl ? nl + 1 : end;
    }

    gh_trace_ctx_t in;
    memset(&in, 0xa5, sizeof(in));
    int rc = gh_trace_extract(h, n, &in);
    if (rc != 0 && rc != 1)
        abort();

    /* The oracle for traceparent. */
    const gh_h1_header_t *tp = NULL;
    size_t ntp = 0, nb3 = 0;
    for (size_t i = 0; i < n; i++) {
        if (name_is(&h[i], "traceparent")) {
            tp = &h[i];
            ntp++;
        }
        if (name_is(&h[i], "b3") || name_is(&h[i], "x-b3-traceid"))
            nb3++;
    }
    uint8_t tid[16], sid[8];
    int ref_ok = ntp == 1 && ref_traceparent(tp->value, tp->value_len, tid, sid);
    if (ref_ok) {
        if (rc != 1 || memcmp(in.trace_id, tid, 16) != 0 || memcmp(in.span_id, sid, 8) != 0 ||
            in.sampled != (unsigned)(hexval(tp->value[54]) & 1) || in.sample_deferred)
            abort();
    } else if (nb3 == 0 && rc != 0) {
        abort();
    }

    if (rc == 0) {
        static const gh_trace_ctx_t zero;
        if (memcmp(&in, &zero, sizeof(in)) != 0)
            abort();
    } else {
        static const uint8_t z[16];
        if (memcmp(in.trace_id, z, 16) == 0 || memcmp(in.span_id, z, 8) == 0)
            abort();
        size_t tl = strnlen(in.tracestate, sizeof(in.tracestate));
        if (tl > GH_TRACESTATE_MAX)
            abort();
        for (size_t i = 0; i < tl; i++) {
            if ((in.tracestate[i] < 0x20 && in.tracestate[i] != '\t') || in.tracestate[i] > 0x7e)
                abort();
        }
        if (!ref_ok && tl != 0)
            abort(); /* tracestate only rides with a valid traceparent */

        /* Round trip gatehouse's own span through its headers. */
        uint64_t seed = size;
        gh_trace_ctx_t span, back;
        char buf[128 + GH_TRACESTATE_MAX];
        gh_trace_start(&span, &in, 0.5, rnd, &seed);
        if (memcmp(span.trace_id, in.trace_id, 16) != 0 ||
            memcmp(span.parent_span_id, in.span_id, 8) != 0 || !span.has_parent ||
            (!in.sample_deferred && span.sampled != in.sampled))
            abort();
        size_t len = gh_trace_format_headers(&span, buf, sizeof(buf));
        if (len == 0)
            abort();
        gh_h1_header_t out[2];
        size_t k = 0;
        const char *q = buf, *qe = buf + len;
        while (q < qe) {
            const char *colon = memchr(q, ':', (size_t)(qe - q));
            const char *crlf = memchr(q, '\r', (size_t)(qe - q));
            if (k == 2 || colon == NULL || crlf == NULL || colon > crlf || colon[1] != ' ' ||
                crlf + 1 >= qe || crlf[1] != '\n')
                abort();
            out[k].name = q;
            out[k].name_len = (size_t)(colon - q);
            out[k].value = colon + 2;
            out[k].value_len = (size_t)(crlf - colon - 2);
            k++;
            q = crlf + 2;
        }
        if (gh_trace_extract(out, k, &back) != 1 || memcmp(back.trace_id, span.trace_id, 16) != 0 ||
            memcmp(back.span_id, span.span_id, 8) != 0 || back.sampled != span.sampled ||
            strcmp(back.tracestate, span.tracestate) != 0)
            abort();
    }

    for (size_t i = 0; i < nc; i++)
        free(copies[i]);
    return 0;
}
