/*
 * libFuzzer target for gh_h1_request_parse.
 *
 * Besides "no crash, no read past len" (every parse gets an exactly sized
 * copy), it checks what the rest of the proxy relies on:
 *   - the returned length is within len and max_head, and the head it covers
 *     ends in CRLF CRLF and has no bare CR or bare LF anywhere;
 *   - every pointer in the result lies inside the head; names are tokens,
 *     values are trimmed and free of CR, LF, NUL;
 *   - the framing agrees with the fields (one "chunked" and no CL, or CL);
 *   - parsing a prefix gives INCOMPLETE before the head is complete and the
 *     same result after; a refused input is refused, with the same status,
 *     from the first refused prefix on.
 * Each input runs under two sets of limits: roomy and tight.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse/h1.h"

#define MAX_HDRS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int rc;
    int status;
    gh_h1_request_t req;
    gh_h1_header_t hdrs[MAX_HDRS];
} result_t;

static const char *parse(const uint8_t *data, size_t len, const gh_h1_limits_t *lim, result_t *out)
{
    char *copy = malloc(len ? len : 1);
    gh_h1_error_t err = {0, NULL};
    if (copy == NULL)
        abort();
    memcpy(copy, data, len);
    memset(out, 0, sizeof(*out));
    out->req.headers = out->hdrs;
    out->rc = gh_h1_request_parse(copy, len, lim, &out->req, &err);
    if (out->rc == GH_H1_ERROR) {
        if (err.detail == NULL)
            abort();
        out->status = err.status;
    }
    return copy;
}

static int inside(const char *p, size_t n, const char *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

static void check_ok(const result_t *r, const char *buf, size_t len, const gh_h1_limits_t *lim)
{
    size_t n = (size_t)r->rc;
    const gh_h1_request_t *q = &r->req;
    if (n > len || n > lim->max_head || n < 4)
        abort();
    if (memcmp(buf + n - 4, "\r\n\r\n", 4) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' && buf[i + 1] != '\n')
            abort();
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            abort();
        if (buf[i] == '\0')
            abort();
    }
    if (!inside(q->method, q->method_len, buf, n) || q->method_len == 0)
        abort();
    for (size_t i = 0; i < q->method_len; i++) {
        if (!gh_h1_is_tchar((unsigned char)q->method[i]))
            abort();
    }
    if (!inside(q->target, q->target_len, buf, n) || q->target_len == 0 ||
        q->target_len > lim->max_uri)
        abort();
    for (size_t i = 0; i < q->target_len; i++) {
        unsigned char c = (unsigned char)q->target[i];
        if (c < 0x21 || c > 0x7e || c == '#')
            abort();
    }
    if (q->minor_version != 0 && q->minor_version != 1)
        abort();
    if (q->num_headers > lim->max_headers)
        abort();
    if (q->minor_version == 1 && q->host_index < 0)
        abort();
    if (q->host_index >= (int)q->num_headers || q->host_index < -1)
        abort();
    int te = 0, cl = 0, host = 0;
    for (size_t i = 0; i < q->num_headers; i++) {
        const gh_h1_header_t *h = &q->headers[i];
        if (!inside(h->name, h->name_len, buf, n) || !inside(h->value, h->value_len, buf, n))
            abort();
        if (h->name_len == 0)
            abort();
        for (size_t k = 0; k < h->name_len; k++) {
            if (!gh_h1_is_tchar((unsigned char)h->name[k]))
                abort();
        }
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned char c = (unsigned char)h->value[k];
            if (c == '\r' || c == '\n' || c == 0 || c == 0x7f)
                abort();
        }
        if (h->value_len > 0 &&
            (h->value[0] == ' ' || h->value[0] == '\t' || h->value[h->value_len - 1] == ' ' ||
             h->value[h->value_len - 1] == '\t'))
            abort();
        if (GH_H1_NAME_IS(h, "transfer-encoding")) {
            te++;
            gh_h1_header_t v = {h->value, h->value_len, NULL, 0};
            if (!GH_H1_NAME_IS(&v, "chunked"))
                abort();
        }
        if (GH_H1_NAME_IS(h, "content-length"))
            cl++;
        if (GH_H1_NAME_IS(h, "host")) {
            host++;
            if ((int)i != q->host_index)
                abort();
        }
    }
    if (te > 1 || (te && cl) || host > 1 || (te && q->minor_version == 0))
        abort();
    switch (q->body) {
    case GH_H1_BODY_CHUNKED:
        if (!te)
            abort();
        break;
    case GH_H1_BODY_LENGTH:
        if (!cl || q->content_length == 0 || q->content_length > 999999999999999999ull)
            abort();
        break;
    case GH_H1_BODY_NONE:
        if (te || q->content_length != 0)
            abort();
        break;
    default:
        abort();
    }
}

static void same(const result_t *a, const char *abase, const result_t *b, const char *bbase)
{
    const gh_h1_request_t *x = &a->req, *y = &b->req;
    if (a->rc != b->rc || x->method - abase != y->method - bbase ||
        x->method_len != y->method_len || x->target - abase != y->target - bbase ||
        x->target_len != y->target_len || x->minor_version != y->minor_version ||
        x->num_headers != y->num_headers || x->body != y->body ||
        x->content_length != y->content_length || x->host_index != y->host_index ||
        x->keep_alive != y->keep_alive || x->expect_continue != y->expect_continue ||
        x->has_upgrade != y->has_upgrade)
        abort();
    for (size_t i = 0; i < x->num_headers; i++) {
        if (x->headers[i].name - abase != y->headers[i].name - bbase ||
            x->headers[i].name_len != y->headers[i].name_len ||
            x->headers[i].value - abase != y->headers[i].value - bbase ||
            x->headers[i].value_len != y->headers[i].value_len)
            abort();
    }
}

static void run(const uint8_t *data, size_t size, const gh_h1_limits_t *lim)
{
    static result_t whole, part;
    const char *wbase = parse(data, size, lim, &whole);

    if (whole.rc > 0) {
        check_ok(&whole, wbase, size, lim);
    } else if (whole.rc == GH_H1_ERROR) {
        if (whole.status != 400 && whole.status != 414 && whole.status != 431 &&
            whole.status != 501)
            abort();
    } else if (whole.rc != GH_H1_INCOMPLETE) {
        abort();
    }

    /* All prefixes of short inputs, a sample of prefixes of long ones. */
    size_t step = size <= 512 ? 1 : size / 256;
    int seen_error = 0;
    for (size_t n = 0; n < size; n += step) {
        const char *pbase = parse(data, n, lim, &part);
        if (whole.rc > 0) {
            if (n < (size_t)whole.rc && part.rc != GH_H1_INCOMPLETE)
                abort();
            if (n >= (size_t)whole.rc)
                same(&whole, wbase, &part, pbase);
        } else if (whole.rc == GH_H1_INCOMPLETE) {
            if (part.rc != GH_H1_INCOMPLETE)
                abort();
        } else {
            if (part.rc > 0)
                abort();
            if (part.rc == GH_H1_ERROR && part.status != whole.status)
                abort();
            if (seen_error && part.rc != GH_H1_ERROR)
                abort();
            seen_error |= part.rc == GH_H1_ERROR;
        }
        free((void *)pbase);
    }
    free((void *)wbase);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const gh_h1_limits_t roomy = {8192, 64, 4096};
    static const gh_h1_limits_t tight = {96, 3, 12};
    if (size > 16384)
        return 0;
    run(data, size, &roomy);
    run(data, size, &tight);
    return 0;
}
