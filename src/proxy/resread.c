/*
 * The callout's response reader (resread.h). The head parser and the
 * chunked decoder are the proxy's own (gatehouse/h1.h), so a callout reads
 * responses exactly as strictly as the router does; what is here is the
 * bookkeeping around them: skipping interim responses, copying the head out
 * of the read buffer, and the body's bound.
 */
#include <stdlib.h>
#include <string.h>

#include <gatehouse/callout.h>

#include "proxy/resread.h"

void gh_resread_init(gh_resread_t *r)
{
    memset(r, 0, sizeof(*r));
}

void gh_resread_dispose(gh_resread_t *r)
{
    free(r->head);
    free(r->hdrs);
    free(r->body);
    free(r->dec);
    r->head = NULL;
    r->hdrs = NULL;
    r->body = NULL;
    r->dec = NULL;
}

static int fail(gh_resread_t *r, int code, const char *why)
{
    r->why = why;
    return code;
}

static void drop_front(char *buf, size_t *len, size_t n)
{
    memmove(buf, buf + n, *len - n);
    *len -= n;
}

/* Takes the final head buf[0 .. n) out of the read buffer. */
static int keep_head(gh_resread_t *r, const char *buf, size_t n, gh_h1_response_t *res)
{
    r->head = malloc(n);
    r->hdrs = malloc((res->num_headers + 1) * sizeof(*r->hdrs));
    if (r->head == NULL || r->hdrs == NULL)
        return fail(r, GH_CALLOUT_E_NOMEM, "out of memory");
    memcpy(r->head, buf, n);
    ptrdiff_t d = r->head - buf;
    res->reason += d;
    for (size_t i = 0; i < res->num_headers; i++) {
        r->hdrs[i] = res->headers[i];
        r->hdrs[i].name += d;
        r->hdrs[i].value += d;
    }
    res->headers = r->hdrs;
    r->res = *res;
    r->head_done = 1;
    return 0;
}

/* read_head's answer when the final head is in. */
#define HEAD_IN 2

/* GH_RESREAD_MORE, HEAD_IN, or a GH_CALLOUT_E_*. */
static int read_head(gh_resread_t *r, char *buf, size_t *len, int end)
{
    gh_h1_limits_t lim = {r->max_head, r->max_headers, 0};
    for (;;) {
        gh_h1_response_t res;
        gh_h1_error_t err = {0, NULL};
        res.headers = r->scratch;
        int n = *len > 0 ? gh_h1_response_parse(buf, *len, &lim, &res, &err) : GH_H1_INCOMPLETE;
        if (n == GH_H1_INCOMPLETE) {
            if (end == GH_RESREAD_OPEN)
                return GH_RESREAD_MORE;
            return fail(r, GH_CALLOUT_E_RESET,
                        *len > 0 || r->interim ? "closed the connection in the middle of the "
                                                 "response head"
                                               : "closed the connection before responding");
        }
        if (n < 0)
            return fail(r, GH_CALLOUT_E_MALFORMED, err.detail ? err.detail : "malformed head");
        if (res.status == 101)
            return fail(r, GH_CALLOUT_E_MALFORMED, "switched protocols unasked");
        if (res.status < 200) {
            /* RFC 9110 section 15.2: any number of interim responses may
             * come before the final one; a client that did not ask for
             * them ignores them. */
            r->interim = 1;
            drop_front(buf, len, (size_t)n);
            continue;
        }
        int rc = keep_head(r, buf, (size_t)n, &res);
        if (rc < 0)
            return rc;
        drop_front(buf, len, (size_t)n);
        if (res.body == GH_H1_BODY_LENGTH) {
            /* Refused before a byte of it is read: the length is known. */
            if (res.content_length > r->max_body)
                return fail(r, GH_CALLOUT_E_TOO_LARGE, "response body longer than allowed");
            r->remaining = res.content_length;
            r->body_cap = (size_t)res.content_length;
            r->body = malloc(r->body_cap);
            if (r->body == NULL)
                return fail(r, GH_CALLOUT_E_NOMEM, "out of memory");
        } else if (res.body == GH_H1_BODY_CHUNKED) {
            r->dec = malloc(sizeof(*r->dec));
            if (r->dec == NULL)
                return fail(r, GH_CALLOUT_E_NOMEM, "out of memory");
            gh_h1_chunked_init(r->dec);
        }
        return HEAD_IN;
    }
}

/* Appends body bytes, within max_body: 0, or TOO_LARGE or NOMEM. */
static int append(gh_resread_t *r, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > r->max_body - r->body_len)
        return fail(r, GH_CALLOUT_E_TOO_LARGE, "response body longer than allowed");
    if (n > r->body_cap - r->body_len) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap - r->body_len < n)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (cap > r->max_body)
            cap = r->max_body;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return fail(r, GH_CALLOUT_E_NOMEM, "out of memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

static int read_chunked(gh_resread_t *r, char *buf, size_t *len)
{
    size_t off = 0;
    int rc = GH_RESREAD_MORE;
    while (off < *len) {
        size_t consumed = 0, doff = 0, dlen = 0;
        gh_h1_error_t err = {0, NULL};
        int k = gh_h1_chunked_decode(r->dec, buf + off, *len - off, &consumed, &doff, &dlen, &err);
        if (k == GH_H1_ERROR)
            return fail(r, GH_CALLOUT_E_MALFORMED,
                        err.detail ? err.detail : "malformed chunked body");
        int e = k == GH_H1_CHUNK_DATA ? append(r, buf + off + doff, dlen) : 0;
        if (e < 0)
            return e;
        off += consumed;
        if (k == GH_H1_CHUNK_DONE) {
            rc = GH_RESREAD_DONE;
            break;
        }
        if (k == GH_H1_CHUNK_MORE)
            break;
    }
    /* Spent framing goes at once: left in the buffer it would be decoded a
     * second time with the next read (body.h tells the story). */
    drop_front(buf, len, off);
    return rc;
}

int gh_resread_feed(gh_resread_t *r, char *buf, size_t *len, int end)
{
    int rc;
    if (r->done)
        return GH_RESREAD_DONE;
    if (!r->head_done) {
        rc = read_head(r, buf, len, end);
        if (rc != HEAD_IN)
            return rc;
    }
    switch (r->res.body) {
    case GH_H1_BODY_NONE:
        rc = GH_RESREAD_DONE;
        break;
    case GH_H1_BODY_LENGTH: {
        size_t n = *len < r->remaining ? *len : (size_t)r->remaining;
        memcpy(r->body + r->body_len, buf, n);
        r->body_len += n;
        r->remaining -= n;
        drop_front(buf, len, n);
        rc = r->remaining == 0 ? GH_RESREAD_DONE : GH_RESREAD_MORE;
        break;
    }
    case GH_H1_BODY_CHUNKED:
        rc = read_chunked(r, buf, len);
        if (rc < 0)
            return rc;
        break;
    case GH_H1_BODY_UNTIL_CLOSE:
    default:
        if ((rc = append(r, buf, *len)) < 0)
            return rc;
        *len = 0;
        /* Only a clean close ends such a body: a reset cuts it short, and
         * taking that as the end would make a truncated body look whole. */
        rc = end == GH_RESREAD_EOF ? GH_RESREAD_DONE : GH_RESREAD_MORE;
        break;
    }
    if (rc == GH_RESREAD_MORE && end != GH_RESREAD_OPEN)
        return fail(r, GH_CALLOUT_E_RESET, "closed the connection in the middle of the body");
    if (rc == GH_RESREAD_DONE)
        r->done = 1;
    return rc;
}
