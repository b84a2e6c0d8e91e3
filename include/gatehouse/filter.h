/*
 * The filter interface. A route's chain is a list of filter instances; the
 * router (which talks to the upstream) or a direct response is always last.
 *
 * Request callbacks run in chain order, response callbacks in reverse. A
 * callback returns:
 *   GH_FILTER_CONTINUE  go on with the next filter;
 *   GH_FILTER_PAUSE     the filter started async work; it calls
 *                       gh_stream_resume() exactly once when done (on a
 *                       later loop turn), or gh_stream_reply() instead;
 *   GH_FILTER_REPLIED   the filter answered locally with gh_stream_reply();
 *                       the rest of the chain is skipped.
 * on_log runs exactly once per stream that reached the chain, after the
 * response ended (or the stream was aborted); on_destroy runs after it.
 *
 * Body callbacks see the bytes as they stream past (decoded from chunked);
 * they may observe but not change or hold them.
 */
#ifndef GATEHOUSE_FILTER_H
#define GATEHOUSE_FILTER_H

#include <stddef.h>

typedef struct gh_stream_s gh_stream_t;

typedef enum {
    GH_FILTER_CONTINUE = 0,
    GH_FILTER_PAUSE,
    GH_FILTER_REPLIED,
} gh_filter_status_t;

typedef struct gh_filter_type_s {
    const char *name;
    size_t ctx_size; /* per-stream context, zeroed, from the stream's arena */

    gh_filter_status_t (*on_request_headers)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_request_body)(gh_stream_t *s, const void *conf, void *ctx, const char *data,
                            size_t len, int end);
    gh_filter_status_t (*on_response_headers)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_response_body)(gh_stream_t *s, const void *conf, void *ctx, const char *data,
                             size_t len, int end);
    void (*on_log)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_destroy)(gh_stream_t *s, const void *conf, void *ctx);
} gh_filter_type_t;

typedef struct {
    const gh_filter_type_t *type;
    const void *conf; /* owned by the snapshot */
} gh_filter_t;

/* Answers the request locally with a JSON error body
 * {"error": code, "detail": detail}. code and detail are copied. */
void gh_stream_reply_error(gh_stream_t *s, int status, const char *code, const char *detail);

/* Resumes the request chain after a filter returned GH_FILTER_PAUSE. */
void gh_stream_resume(gh_stream_t *s);

#endif
