/*
 * A whole HTTP/1.1 response read into memory, for callouts (callout.c):
 * interim 1xx responses skipped, the final head copied out of the read
 * buffer, the body decoded from its framing (Content-Length, chunked, or
 * until the connection closes) into one bounded buffer.
 *
 * Split-safe: feed it the connection's read buffer after every read, in
 * whatever pieces the bytes came; what it used is removed from the front of
 * the buffer, and bytes it cannot use yet (part of a head, of a chunk-size
 * line) stay there for the next call. Not for HEAD requests (their response
 * has no body whatever its framing says).
 */
#ifndef GATEHOUSE_PROXY_RESREAD_H
#define GATEHOUSE_PROXY_RESREAD_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/h1.h>

enum {
    GH_RESREAD_MORE = 0, /* needs more bytes */
    GH_RESREAD_DONE = 1, /* the response ended; bytes after it stay in the buffer */
};

/* The end of the input a feed sees. */
enum {
    GH_RESREAD_OPEN = 0,  /* more may come */
    GH_RESREAD_EOF = 1,   /* the peer closed cleanly: ends a close-delimited body */
    GH_RESREAD_BROKE = 2, /* a reset or read error: ends nothing */
};

typedef struct {
    /* Limits, set by the caller before the first feed. */
    size_t max_head;         /* of each head (the cluster's max_response_head) */
    size_t max_headers;      /* fields per head; scratch holds this many */
    size_t max_body;         /* decoded body bytes */
    gh_h1_header_t *scratch; /* borrowed: the parser's field array */

    /* The result, once a feed returned GH_RESREAD_DONE (or from the head
     * on, head_done): res's pointers point into head (owned) and hdrs
     * (owned); body (owned) holds body_len decoded bytes. */
    gh_h1_response_t res;
    unsigned head_done : 1;
    unsigned done : 1;
    unsigned interim : 1; /* a 1xx came first */
    char *head;
    gh_h1_header_t *hdrs;
    char *body;
    size_t body_len, body_cap;

    /* Private. */
    uint64_t remaining;   /* Content-Length bytes still to come */
    gh_h1_chunked_t *dec; /* owned, for a chunked body */
    const char *why;      /* static: why the last feed failed */
} gh_resread_t;

/* Zeroes r; then set the limits. */
void gh_resread_init(gh_resread_t *r);
/* Frees what r owns; r may be fed again after gh_resread_init. */
void gh_resread_dispose(gh_resread_t *r);

/* Reads buf[0 .. *len): removes the bytes used from its front (memmove)
 * and updates *len. end says whether the peer closed (see above). Returns
 * GH_RESREAD_MORE, GH_RESREAD_DONE, or a negative GH_CALLOUT_E_*
 * (gatehouse/callout.h) with r->why set: MALFORMED, TOO_LARGE, NOMEM, or
 * RESET when the input ended before the response did. */
int gh_resread_feed(gh_resread_t *r, char *buf, size_t *len, int end);

/* Why the last feed failed (static). */
static inline const char *gh_resread_why(const gh_resread_t *r)
{
    return r->why != NULL ? r->why : "";
}

#endif
