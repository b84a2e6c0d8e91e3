/*
 * libFuzzer target for gh_h1_response_parse: the same checks as the request
 * target (bounds, pointers inside the head, no bare CR/LF, prefix agreement),
 * plus the response framing rules: 1xx/204/304 have no body, a body without
 * a length ends the connection, every refusal is a 502.
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
    gh_h1_response_t res;
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
    out->res.headers = out->hdrs;
    out->rc = gh_h1_response_parse(copy, len, lim, &out->res, &err);
    if (out->rc == GH_H1_ERROR) {
        if (err.detail == NULL || err.status != 502)
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
    const gh_h1_response_t *s = &r->res;
    if (n > len || n > lim->max_head || n < 4)
        abort();
    if (memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r' && buf[i + 1] != '\n')
            abort();
        if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
            abort();
        if (buf[i] == '\0')
            abort();
    }
    if (s->status < 100 || s->status > 999 || (s->minor_version != 0 && s->minor_version != 1))
        abort();
    if (!inside(s->reason, s->reason_len, buf, n))
        abort();
    if (s->num_headers > lim->max_headers)
        abort();
    int te = 0, cl = 0;
    for (size_t i = 0; i < s->num_headers; i++) {
        const gh_h1_header_t *h = &s->headers[i];
        if (!inside(h->name, h->name_len, buf, n) || !inside(h->value, h->value_len, buf, n) ||
            h->name_len == 0)
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
            gh_h1_header_t v = {h->value, h->value_len, NULL, 0};
            te++;
            if (!GH_H1_NAME_IS(&v, "chunked"))
                abort();
        }
        if (GH_H1_NAME_IS(h, "content-length"))
            cl++;
    }
    if (te > 1 || (te && cl) || (te && s->minor_version == 0))
        abort();
    int bodyless = s->status < 200 || s->status == 204 || s->status == 304;
    switch (s->body) {
    case GH_H1_BODY_NONE:
        if (!bodyless && !(cl && s->content_length == 0))
            abort();
        break;
    case GH_H1_BODY_LENGTH:
        if (bodyless || !cl || s->content_length == 0)
            abort();
        break;
    case GH_H1_BODY_CHUNKED:
        if (bodyless || !te)
            abort();
        break;
    case GH_H1_BODY_UNTIL_CLOSE:
        if (bodyless || te || cl || s->keep_alive)
            abort();
        break;
    default:
        abort();
    }
}

static void same(const result_t *a, const char *abase, const result_t *b, const char *bbase)
{
    const gh_h1_response_t *x = &a->res, *y = &b->res;
    if (a->rc != b->rc || x->status != y->status || x->reason - abase != y->reason - bbase ||
        x->reason_len != y->reason_len || x->minor_version != y->minor_version ||
        x->num_headers != y->num_headers || x->body != y->body ||
        x->content_length != y->content_length || x->keep_alive != y->keep_alive)
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

    if (whole.rc > 0)
        check_ok(&whole, wbase, size, lim);
    else if (whole.rc != GH_H1_ERROR && whole.rc != GH_H1_INCOMPLETE)
        abort();

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
            if (part.rc > 0 || (seen_error && part.rc != GH_H1_ERROR))
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
