#include "proxy/body.h"

#include <gatehouse/fields.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static char last_chunk[] = "0\r\n\r\n";
static char crlf[] = "\r\n";
static char zero_line[] = "0\r\n";

int gh_body_pump_init(gh_body_pump_t *bp, gh_arena_t *a, gh_h1_body_t in, uint64_t length,
                      gh_pump_out_t out)
{
    memset(bp, 0, offsetof(gh_body_pump_t, sizes));
    bp->num_data = 0;
    bp->in = in;
    bp->out = out;
    bp->remaining = length;
    bp->dec = NULL;
    bp->on_trailer = NULL;
    bp->trailer_arg = NULL;
    if (in == GH_H1_BODY_NONE || (in == GH_H1_BODY_LENGTH && length == 0))
        bp->done = 1;
    if (in == GH_H1_BODY_CHUNKED) {
        bp->dec = gh_arena_alloc(a, sizeof(*bp->dec));
        if (bp->dec == NULL)
            return -1;
        gh_h1_chunked_init(bp->dec);
    }
    return 0;
}

static unsigned add_span(gh_body_pump_t *bp, uv_buf_t *bufs, unsigned n, char *p, size_t len)
{
    unsigned i = bp->num_data;
    bp->data[i] = uv_buf_init(p, (unsigned)len);
    bp->num_data++;
    if (bp->out == GH_PUMP_OUT_CHUNKED) {
        int k = snprintf(bp->sizes[i], sizeof(bp->sizes[i]), "%zx\r\n", len);
        bufs[n++] = uv_buf_init(bp->sizes[i], (unsigned)k);
        bufs[n++] = uv_buf_init(p, (unsigned)len);
        bufs[n++] = uv_buf_init(crlf, 2);
    } else {
        bufs[n++] = uv_buf_init(p, (unsigned)len);
    }
    return n;
}

/* Keeps, in place, the trailer lines the pump's policy lets through. */
static void filter_trailers(gh_body_pump_t *bp)
{
    char *t = bp->dec->trailers;
    size_t len = bp->dec->trailers_len, out = 0;
    for (size_t i = 0; i < len;) {
        const char *eol = memchr(t + i, '\n', len - i);
        size_t line = eol != NULL ? (size_t)(eol - (t + i)) + 1 : len - i;
        const char *colon = memchr(t + i, ':', line);
        size_t nlen = colon != NULL ? (size_t)(colon - (t + i)) : line;
        if (colon != NULL && bp->on_trailer != NULL && !gh_field_trailer_forbidden(t + i, nlen) &&
            bp->on_trailer(t + i, nlen, bp->trailer_arg)) {
            memmove(t + out, t + i, line);
            out += line;
        }
        i += line;
    }
    bp->dec->trailers_len = out;
}

/* Caps one span so that an iovec length never overflows unsigned. */
#define SPAN_MAX ((size_t)1 << 30)

int gh_body_pump_fill(gh_body_pump_t *bp, char *p, size_t len, uv_buf_t *bufs, size_t *consumed,
                      uint64_t *payload, gh_h1_error_t *err)
{
    unsigned n = 0;
    size_t used = 0;
    uint64_t pl = 0;

    bp->num_data = 0;
    if (bp->done || len == 0) {
        *consumed = 0;
        *payload = 0;
        return 0;
    }
    switch (bp->in) {
    case GH_H1_BODY_LENGTH: {
        size_t take = len;
        if ((uint64_t)take > bp->remaining)
            take = (size_t)bp->remaining;
        if (take > SPAN_MAX)
            take = SPAN_MAX;
        n = add_span(bp, bufs, n, p, take);
        bp->remaining -= take;
        used = take;
        pl = take;
        if (bp->remaining == 0) {
            bp->done = 1;
            if (bp->out == GH_PUMP_OUT_CHUNKED)
                bufs[n++] = uv_buf_init(last_chunk, 5);
        }
        break;
    }
    case GH_H1_BODY_UNTIL_CLOSE: {
        size_t take = len > SPAN_MAX ? SPAN_MAX : len;
        n = add_span(bp, bufs, n, p, take);
        used = take;
        pl = take;
        break;
    }
    case GH_H1_BODY_CHUNKED:
        while (used < len && bp->num_data < GH_PUMP_MAX_SPANS) {
            size_t c = 0, off = 0, dlen = 0;
            int r = gh_h1_chunked_decode(bp->dec, p + used, len - used, &c, &off, &dlen, err);
            if (r < 0)
                return -1;
            if (r == GH_H1_CHUNK_DATA && dlen > 0) {
                n = add_span(bp, bufs, n, p + used + off, dlen);
                pl += dlen;
            }
            used += c;
            if (r == GH_H1_CHUNK_DONE) {
                bp->done = 1;
                if (bp->out == GH_PUMP_OUT_CHUNKED) {
                    bufs[n++] = uv_buf_init(zero_line, 3);
                    filter_trailers(bp);
                    if (bp->dec->trailers_len > 0)
                        bufs[n++] = uv_buf_init(bp->dec->trailers, (unsigned)bp->dec->trailers_len);
                    bufs[n++] = uv_buf_init(crlf, 2);
                }
                break;
            }
            if (r == GH_H1_CHUNK_MORE)
                break;
        }
        break;
    case GH_H1_BODY_NONE:
        bp->done = 1;
        break;
    }
    *consumed = used;
    *payload = pl;
    return (int)n;
}

int gh_body_pump_take(gh_body_pump_t *bp, char *buf, size_t *len, uv_buf_t *bufs, size_t *inflight,
                      size_t *taken, uint64_t *payload, gh_h1_error_t *err)
{
    size_t dropped = 0;
    for (;;) {
        size_t c = 0;
        int k = gh_body_pump_fill(bp, buf, *len, bufs, &c, payload, err);
        if (k < 0)
            return -1;
        if (k > 0 || c == 0) {
            *inflight = c;
            *taken = dropped + c;
            return k;
        }
        /* No bufs point into buf: the spent framing can go now. */
        memmove(buf, buf + c, *len - c);
        *len -= c;
        dropped += c;
    }
}

int gh_body_pump_finish(gh_body_pump_t *bp, uv_buf_t *bufs)
{
    bp->done = 1;
    bp->num_data = 0;
    if (bp->out == GH_PUMP_OUT_CHUNKED) {
        bufs[0] = uv_buf_init(last_chunk, 5);
        return 1;
    }
    return 0;
}
