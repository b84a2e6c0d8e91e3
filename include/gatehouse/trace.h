/*
 * Distributed tracing: W3C Trace Context (and B3) propagation, spans, and an
 * OTLP/HTTP JSON exporter that runs off the request path.
 *
 * Workers call gh_trace_extract() on the request headers, gh_trace_start()
 * to make gatehouse's own span, gh_trace_format_headers() to forward the
 * context upstream, and gh_trace_exporter_submit() when the exchange ends.
 * Submitting never blocks and never allocates on the caller's thread beyond
 * a copy into a bounded queue: when the queue is full the span is dropped
 * and counted.
 */
#ifndef GATEHOUSE_TRACE_H
#define GATEHOUSE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/config.h>
#include <gatehouse/h1.h>

#define GH_TRACESTATE_MAX 512

typedef struct {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8]; /* all zero when this span is a root */
    unsigned sampled : 1;
    unsigned has_parent : 1;
    /* Set by gh_trace_extract for B3 without a sampling decision (the
     * sender deferred it): gh_trace_start then samples by its ratio. */
    unsigned sample_deferred : 1;
    /* Passed on as received (W3C only), NUL-terminated: up to
     * GH_TRACESTATE_MAX bytes, the length the spec says must be propagated. */
    char tracestate[GH_TRACESTATE_MAX + 1];
} gh_trace_ctx_t;

/* Finds an incoming context: `traceparent` (version 00 and, per the spec's
 * forward compatibility rule, higher versions read as 00) with `tracestate`;
 * else B3 single (`b3: {trace}-{span}[-{sampled}[-{parent}]]`), else B3 multi
 * (`x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`, `x-b3-flags`). Invalid
 * values (wrong length, non-lower-hex in traceparent, all-zero ids) are
 * ignored as if absent. Returns 1 and fills *in when found, else 0. */
int gh_trace_extract(const gh_h1_header_t *headers, size_t n, gh_trace_ctx_t *in);

/* Makes gatehouse's span. With a parent (in != NULL): same trace id, the
 * parent's span id as parent, the parent's sampled flag and tracestate.
 * Without: a new trace id, sampled with probability `ratio`. rnd supplies
 * random 64-bit values (the worker's generator). */
void gh_trace_start(gh_trace_ctx_t *span, const gh_trace_ctx_t *in, double ratio,
                    uint64_t (*rnd)(void *), void *rnd_arg);

/* Writes the headers to forward upstream, each "name: value\r\n":
 * traceparent (always), tracestate (when non-empty). Returns the number of
 * bytes written, or 0 if cap is too small (cap >= 128 + GH_TRACESTATE_MAX
 * is always enough). B3 headers are not re-emitted: gatehouse speaks W3C
 * upstream. */
size_t gh_trace_format_headers(const gh_trace_ctx_t *span, char *buf, size_t cap);

/* Lower-case hex of the trace id into out[33]. */
void gh_trace_id_hex(const gh_trace_ctx_t *span, char out[33]);

/* A finished server span, with the attributes of OpenTelemetry's HTTP
 * semantic conventions. Strings are copied by submit; they may be NULL. */
typedef struct {
    gh_trace_ctx_t ctx;
    uint64_t start_unix_ns;
    uint64_t end_unix_ns;
    const char *method;         /* http.request.method */
    const char *path;           /* url.path */
    const char *query;          /* url.query (already redacted by the caller) */
    const char *scheme;         /* url.scheme */
    const char *route;          /* http.route: the route's name */
    int status;                 /* http.response.status_code */
    const char *server_address; /* server.address (Host without port) */
    int server_port;            /* server.port */
    const char *client_address; /* client.address */
    const char *user_agent;     /* user_agent.original */
    const char *upstream;       /* gatehouse.upstream: endpoint "host:port" */
    const char *request_id;     /* gatehouse.request_id */
    const char *error;          /* error.type when the exchange failed, else NULL */
    int protocol_minor;         /* network.protocol.version "1.<minor>" */
} gh_span_t;

typedef struct gh_trace_exporter_s gh_trace_exporter_t;

/* Starts the export thread. conf is copied. Returns NULL (with a logged
 * reason) on failure. */
gh_trace_exporter_t *gh_trace_exporter_new(const gh_tracing_conf_t *conf);
/* Thread-safe, non-blocking. Returns 0, or -1 when the span was dropped. */
int gh_trace_exporter_submit(gh_trace_exporter_t *e, const gh_span_t *span);
/* Counters for /metrics (thread-safe reads). */
typedef struct {
    uint64_t exported; /* spans accepted by the collector (2xx) */
    uint64_t dropped_queue_full;
    uint64_t dropped_export_failed; /* batches the collector refused or that timed out, in spans */
    uint64_t export_requests;
} gh_trace_stats_t;
void gh_trace_exporter_stats(gh_trace_exporter_t *e, gh_trace_stats_t *out);
/* Tells the export thread to flush what is queued (bounded by the export
 * timeout) and end, without waiting for it; the exporter stays valid: later
 * submits are dropped and counted. For a reload that replaces the exporter
 * while workers may still hold it. NULL is a no-op. */
void gh_trace_exporter_stop(gh_trace_exporter_t *e);
/* Joins the export thread if it has ended (never waits). Returns 1 when it
 * has (or e is NULL), else 0. */
int gh_trace_exporter_reap(gh_trace_exporter_t *e);
/* Stops (if not yet), waits for the export thread (at most the export
 * timeout) and frees. NULL is a no-op. */
void gh_trace_exporter_free(gh_trace_exporter_t *e);

#endif
