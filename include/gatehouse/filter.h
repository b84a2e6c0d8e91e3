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

#include <gatehouse/config.h>
#include <gatehouse/h1.h>
#include <gatehouse/metrics.h>

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

/* ---- what filters may read and change ---- */

/* The caller's verified identity, filled by the authentication filters for
 * the filters after them (policies, rate limits) and the access log. All
 * strings live in the stream's arena. */
typedef struct {
    const char *provider; /* the provider that verified it */
    const char *issuer;
    const char *subject;  /* "sub"; the access log's principal */
    const char *consumer; /* API-key consumer (later) */
    const char *scopes;   /* space-separated */
} gh_identity_t;

gh_identity_t *gh_stream_identity(gh_stream_t *s);

/* The request as received: method, path (without query), query (NULL if
 * none), and the header fields (pointers valid for the stream's life). */
void gh_stream_request_line(const gh_stream_t *s, const char **method, size_t *method_len,
                            const char **path, size_t *path_len, const char **query,
                            size_t *query_len);
/* All header fields at once (borrowed, valid for the stream's life). */
const gh_h1_header_t *gh_stream_headers(const gh_stream_t *s, size_t *n);
size_t gh_stream_header_count(const gh_stream_t *s);
void gh_stream_header_at(const gh_stream_t *s, size_t i, const char **name, size_t *name_len,
                         const char **value, size_t *value_len);

/* Edits of the request forwarded upstream: a header field to add (copied),
 * and a field name (lower-case, copied) whose incoming fields are removed.
 * Names a filter sets are always dropped first, so a client can never
 * forge them. Return 0, or -1 when out of memory; there is no limit on the
 * number of drops. A failed edit also marks the stream, and a marked
 * request is answered 503 instead of being forwarded, so a caller that
 * misses the -1 cannot forward a request it meant to sanitize. */
int gh_stream_add_header(gh_stream_t *s, const char *name, size_t name_len, const char *value,
                         size_t value_len);
int gh_stream_drop_header(gh_stream_t *s, const char *lower, size_t len);
/* The same, borrowing lower: it must outlive the stream (config strings). */
int gh_stream_drop_header_static(gh_stream_t *s, const char *lower, size_t len);
/* Adds whole header lines ("name: value\r\n"..., already validated). */
int gh_stream_add_header_lines(gh_stream_t *s, const char *lines, size_t len);

/* Per-worker state of a filter type, created on first use by create() on
 * the worker's thread and freed by destroy() when the worker ends. NULL
 * when create() fails. */
void *gh_stream_worker_state(gh_stream_t *s, const gh_filter_type_t *type, void *(*create)(void),
                             void (*destroy)(void *));

/* Sends target (borrowed: from gh_stream_alloc) upstream instead of the
 * client's request-target (origin-form: path and query). */
void gh_stream_set_target(gh_stream_t *s, const char *target, size_t len);

/* Matches v[0..n) with m (exact, prefix or regex, on the worker's own
 * PCRE2 match data). 1 on a match. */
int gh_stream_match(gh_stream_t *s, const gh_strmatch_t *m, const char *v, size_t n);

/* The worker's metrics shard, for filters that count. */
gh_metrics_shard_t *gh_stream_metrics(gh_stream_t *s);

/* The stream's arena, for allocations that live as long as the request.
 * NULL when out of memory; the request is then answered 503 rather than
 * forwarded, like a failed header edit (a filter may have meant to build
 * an edit in this memory). */
void *gh_stream_alloc(gh_stream_t *s, size_t size);

/* Answers locally with extra response header lines ("name: value\r\n"...,
 * may be NULL) and a JSON body {"error": code, "detail": detail}. */
void gh_stream_reply_error_with(gh_stream_t *s, int status, const char *code, const char *detail,
                                const char *extra_headers);

/* Answers the request locally with a JSON error body
 * {"error": code, "detail": detail}. code and detail are copied. */
void gh_stream_reply_error(gh_stream_t *s, int status, const char *code, const char *detail);

/* Resumes the request chain after a filter returned GH_FILTER_PAUSE. */
void gh_stream_resume(gh_stream_t *s);

#endif
