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

/* Whether a trailer field may be forwarded (1) or is dropped (0); the name is
 * not NUL-terminated. Only asked about names gh_field_trailer_forbidden()
 * let through. */
typedef int (*gh_trailer_allow_cb)(const char *name, size_t len, void *arg);

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
    /* Trailers of a chunked source: forwarded only when on_trailer says so
     * (NULL: every one dropped), never a forbidden name. Borrowed. */
    gh_trailer_allow_cb on_trailer;
    void *trailer_arg;
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

/* The pump over a source read buffer buf[0 .. *len), which is what the
 * proxy's two directions call. Source framing spent without any output (the
 * CRLF after chunk data, part of a chunk-size line, a trailer line still
 * arriving) is dropped from the buffer at once and the pump goes on: left
 * there, it would be decoded a second time with the next read ("1" then
 * "1" read as 0x11) or hold the buffer forever. Returns the number of bufs
 * to write (0: wait for more bytes), or -1 with *err. *inflight is how many
 * bytes at the front of buf the bufs cover: drop them once the write
 * completed. *taken counts every source byte used (dropped + inflight). */
int gh_body_pump_take(gh_body_pump_t *bp, char *buf, size_t *len, uv_buf_t *bufs, size_t *inflight,
                      size_t *taken, uint64_t *payload, gh_h1_error_t *err);

/* For a close-delimited source that reached EOF: marks the pump done and
 * fills the final bufs (the last chunk when the sink is chunked). */
int gh_body_pump_finish(gh_body_pump_t *bp, uv_buf_t *bufs);

#endif
