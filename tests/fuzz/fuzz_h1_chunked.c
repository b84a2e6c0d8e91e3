/*
 * libFuzzer target for the chunked decoder. The input is decoded three
 * ways: in one piece, byte by byte, and in pieces whose sizes come from the
 * input itself; every piece is an exactly sized copy so ASan sees any read
 * past it. All three must agree on the outcome, where it happened (bytes
 * consumed), the body bytes and the trailers. Events are checked on the way:
 * data lies inside what was consumed, consumed never exceeds the input,
 * MORE consumes everything, and the trailers are whole CRLF-terminated lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gatehouse/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int rc; /* MORE (input ran out), DONE or ERROR */
    size_t consumed;
    char *body;
    size_t body_len;
    char trailers[GH_H1_MAX_TRAILERS];
    size_t trailers_len;
} outcome_t;

static gh_h1_chunked_t dec;

/* Pieces: 0 = whole, 1 = bytewise, 2 = sizes drawn from the input. */
static void decode(const uint8_t *data, size_t size, int mode, outcome_t *o)
{
    size_t off = 0, draw = 0;

    gh_h1_chunked_init(&dec);
    o->rc = GH_H1_CHUNK_MORE;
    o->consumed = 0;
    o->body_len = 0;
    o->trailers_len = 0;
    while (off < size) {
        size_t n = size - off;
        if (mode == 1)
            n = 1;
        else if (mode == 2)
            n = 1 + data[draw++ % size] % 17u;
        if (n > size - off)
            n = size - off;
        char *piece = malloc(n);
        size_t pos = 0;
        if (piece == NULL)
            abort();
        memcpy(piece, data + off, n);
        for (;;) {
            size_t consumed = (size_t)-1, doff = (size_t)-1, dlen = (size_t)-1;
            gh_h1_error_t err = {0, NULL};
            int rc =
                gh_h1_chunked_decode(&dec, piece + pos, n - pos, &consumed, &doff, &dlen, &err);
            if (consumed > n - pos)
                abort();
            if (rc == GH_H1_CHUNK_DATA) {
                if (dlen == 0 || doff > consumed || dlen > consumed - doff)
                    abort();
                memcpy(o->body + o->body_len, piece + pos + doff, dlen);
                o->body_len += dlen;
                pos += consumed;
                continue;
            }
            if (dlen != 0)
                abort();
            if (rc == GH_H1_CHUNK_MORE) {
                if (consumed != n - pos)
                    abort();
                break;
            }
            if (rc == GH_H1_ERROR) {
                if (err.status != 400 || err.detail == NULL)
                    abort();
            } else if (rc != GH_H1_CHUNK_DONE) {
                abort();
            }
            o->rc = rc;
            o->consumed = off + pos + consumed;
            free(piece);
            goto out;
        }
        free(piece);
        off += n;
    }
    o->consumed = size;
out:
    if (dec.trailers_len > GH_H1_MAX_TRAILERS)
        abort();
    if (o->rc == GH_H1_CHUNK_DONE) {
        /* Whole lines, each "name: value" CRLF, no bare CR or LF. */
        const char *t = dec.trailers;
        size_t tl = dec.trailers_len;
        if (tl > 0 && (tl < 3 || t[tl - 2] != '\r' || t[tl - 1] != '\n'))
            abort();
        for (size_t i = 0; i < tl; i++) {
            if (t[i] == '\r' && (i + 1 >= tl || t[i + 1] != '\n'))
                abort();
            if (t[i] == '\n' && (i == 0 || t[i - 1] != '\r'))
                abort();
            if (t[i] == '\0')
                abort();
        }
        memcpy(o->trailers, t, tl);
        o->trailers_len = tl;
    }
}

static void compare(const outcome_t *a, const outcome_t *b)
{
    if (a->rc != b->rc || a->consumed != b->consumed || a->body_len != b->body_len ||
        memcmp(a->body, b->body, a->body_len) != 0 || a->trailers_len != b->trailers_len ||
        memcmp(a->trailers, b->trailers, a->trailers_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outcome_t o[3];
    if (size > 65536)
        return 0;
    for (int m = 0; m < 3; m++) {
        o[m].body = malloc(size ? size : 1);
        if (o[m].body == NULL)
            abort();
        decode(data, size, m, &o[m]);
        if (o[m].body_len > size)
            abort();
    }
    compare(&o[0], &o[1]);
    compare(&o[0], &o[2]);
    for (int m = 0; m < 3; m++)
        free(o[m].body);
    return 0;
}
