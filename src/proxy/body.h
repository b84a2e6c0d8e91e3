/*
 * Body framing between two HTTP/1.1 peers. A pump reads the source's framing
 * (Content-Length, chunked, or until close) and produces iovecs for the sink
 * with the sink's framing, pointing into the source's read buffer (no copy):
 * only chunk-size lines and the final chunk come from the pump itself.
 *
 * Re-framing chunked bodies (rather than relaying the client's bytes) means
 * the upstream only ever sees chunk boundaries that gatehouse produced
 * itself, so a chunk-size ambiguity can never pass through.
 */
#ifndef GATEHOUSE_PROXY_BODY_H
#define GATEHOUSE_PROXY_BODY_H

#include <stdint.h>
#include <uv.h>

#include <gatehouse/arena.h>
#include <gatehouse/h1.h>

#define GH_PUMP_MAX_SPANS 16
#define GH_PUMP_MAX_BUFS (GH_PUMP_MAX_SPANS * 3 + 4)

typedef enum {
    GH_PUMP_OUT_RAW = 0, /* bytes as they are (Content-Length, or close-delimited) */
    GH_PUMP_OUT_CHUNKED, /* chunked framing */
} gh_pump_out_t;

typedef struct {
    gh_h1_body_t in;
    gh_pump_out_t out;
    uint64_t remaining;   /* GH_H1_BODY_LENGTH: bytes still to come */
    gh_h1_chunked_t *dec; /* GH_H1_BODY_CHUNKED: decoder, from the stream's arena */
    unsigned done : 1;
    char sizes[GH_PUMP_MAX_SPANS][20];
    /* Payload spans of the last fill, for filters that observe bodies. */
    uv_buf_t data[GH_PUMP_MAX_SPANS];
    unsigned num_data;
} gh_body_pump_t;

/* Sets up a pump. Returns 0, or -1 when the decoder cannot be allocated. */
int gh_body_pump_init(gh_body_pump_t *bp, gh_arena_t *a, gh_h1_body_t in, uint64_t length,
                      gh_pump_out_t out);

/* Frames the source bytes p[0 .. len). Fills at most GH_PUMP_MAX_BUFS bufs
 * and returns how many; *consumed says how many source bytes they cover
 * (bytes after the end of the body are left alone); bp->done is set when the
 * body ended. *payload gets the number of body bytes. Returns -1 with *err
 * on malformed chunked framing. */
int gh_body_pump_fill(gh_body_pump_t *bp, char *p, size_t len, uv_buf_t *bufs, size_t *consumed,
                      uint64_t *payload, gh_h1_error_t *err);

/* For a close-delimited source that reached EOF: marks the pump done and
 * fills the final bufs (the last chunk when the sink is chunked). */
int gh_body_pump_finish(gh_body_pump_t *bp, uv_buf_t *bufs);

#endif
