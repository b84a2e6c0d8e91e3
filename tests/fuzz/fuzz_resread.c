/*
 * libFuzzer target for the callout's response reader (src/proxy/resread.c).
 * The first input byte picks the body limit (bits 0-5: 0 .. 63 bytes, or
 * with bit 6 set 1 MiB) and how the input ends (bit 7: a clean EOF, else
 * the connection stays open); the rest is what the upstream sent. It is
 * read three ways: in one piece, byte by byte, and in pieces whose sizes
 * come from the input, each piece appended to a read buffer of exactly the
 * bytes held (ASan sees any read past them). All three must agree on the
 * outcome, the status, the body, and on the bytes left after a response;
 * a body never passes its limit, and a response is never a 1xx.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/callout.h>

#include "proxy/resread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int rc;
    int status;
    char *body; /* heap */
    size_t body_len;
    size_t left;
} outcome_t;

static gh_h1_header_t scratch[64];

static void read_as(const uint8_t *msg, size_t n, int mode, size_t max_body, int end,
                    const uint8_t *draw, size_t draws, outcome_t *o)
{
    gh_resread_t r;
    gh_resread_init(&r);
    r.max_head = 2048;
    r.max_headers = 64;
    r.max_body = max_body;
    r.scratch = scratch;
    char *buf = NULL;
    size_t len = 0, off = 0, d = 0;
    int rc = GH_RESREAD_MORE;
    while (off < n && rc == GH_RESREAD_MORE) {
        size_t step = mode == 0 ? n : mode == 1 ? 1 : 1 + (draws ? draw[d++ % draws] % 23u : 0);
        if (step > n - off)
            step = n - off;
        /* Exactly len + step bytes: a fresh buffer each time. */
        char *nb = malloc(len + step);
        if (nb == NULL)
            abort();
        if (len > 0)
            memcpy(nb, buf, len);
        memcpy(nb + len, msg + off, step);
        free(buf);
        buf = nb;
        len += step;
        off += step;
        size_t before = len;
        rc = gh_resread_feed(&r, buf, &len, GH_RESREAD_OPEN);
        if (len > before)
            abort();
    }
    if (rc == GH_RESREAD_MORE && end != GH_RESREAD_OPEN)
        rc = gh_resread_feed(&r, buf, &len, end);
    if (rc != GH_RESREAD_MORE && rc != GH_RESREAD_DONE &&
        (rc > 0 || rc < GH_CALLOUT_E_INVALID || gh_resread_why(&r)[0] == '\0'))
        abort();
    o->rc = rc;
    o->status = 0;
    o->body_len = 0;
    o->left = len + (n - off);
    if (rc == GH_RESREAD_DONE) {
        if (r.res.status < 200 || r.res.status > 999 || r.body_len > max_body)
            abort();
        o->status = r.res.status;
        o->body_len = r.body_len;
        if (r.body_len > 0)
            memcpy(o->body, r.body, r.body_len);
    }
    free(buf);
    gh_resread_dispose(&r);
}

static void compare(const outcome_t *a, const outcome_t *b)
{
    if (a->rc != b->rc || a->status != b->status || a->body_len != b->body_len ||
        memcmp(a->body, b->body, a->body_len) != 0 ||
        (a->rc == GH_RESREAD_DONE && a->left != b->left))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outcome_t o[3];
    if (size < 1 || size > 65536)
        return 0;
    size_t max_body = (data[0] & 0x40) ? (size_t)1 << 20 : (size_t)(data[0] & 0x3f);
    int end = (data[0] & 0x80) ? GH_RESREAD_EOF : GH_RESREAD_OPEN;
    const uint8_t *msg = data + 1;
    size_t n = size - 1;
    for (int m = 0; m < 3; m++) {
        o[m].body = malloc(n ? n : 1);
        if (o[m].body == NULL)
            abort();
        read_as(msg, n, m, max_body, end, data, size, &o[m]);
        if (o[m].body_len > n)
            abort();
    }
    compare(&o[0], &o[1]);
    compare(&o[0], &o[2]);
    for (int m = 0; m < 3; m++)
        free(o[m].body);
    return 0;
}
