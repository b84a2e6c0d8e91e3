/*
 * The filter interface (docs/filters.md is the guide, with the fault
 * filter as its worked example).
 *
 * A filter type is one static table, listed in the registry
 * (src/filters/registry.c). It holds the type's config hooks (its own
 * section of a route, parsed and checked at load), its per-snapshot
 * runtime (init/fini, readiness for /ready, a bind step that makes each
 * route's instance), an optional process-wide service on the main thread,
 * and the per-request callbacks.
 *
 * A route's chain runs the route's filters in phase order (authn, authz,
 * limits, transforms), then its terminal filter: the router (which talks
 * to the upstream) or a local responder such as direct_response.
 *
 * Request callbacks run in chain order, response callbacks in reverse. A
 * request callback returns:
 *   GH_FILTER_CONTINUE  go on with the next filter;
 *   GH_FILTER_PAUSE     the filter called gh_stream_pause() and started
 *                       async work; it later takes the handle back
 *                       (gh_stream_handle_take) and continues the chain
 *                       (gh_stream_continue) or replies (gh_stream_reply);
 *   GH_FILTER_REPLIED   the filter answered locally (gh_stream_reply*);
 *                       the rest of the chain is skipped;
 *   GH_FILTER_BUFFER    the filter called gh_stream_buffer_body(): the
 *                       request body is read whole (up to a bound, else
 *                       413) and handed to on_request_buffered, whose
 *                       status is then taken like this one's.
 *
 * The life of a stream as a filter sees it: request callbacks; on_cancel
 * if the stream ends (client gone, timeout, drain, reload close) while this
 * filter is paused; on_log once the exchange is over; on_destroy last. The
 * per-stream context (ctx_size bytes, zeroed) and everything from
 * gh_stream_alloc() are freed after on_destroy, at the end of the loop turn
 * (deferred deletion: a stream is never freed inside a call chain that
 * still holds it). Async work that can outlive the stream (a thread-pool
 * job, a call in flight on a connection shared with other streams) keeps
 * its state outside the stream and reaches the stream only through the
 * handle, which tells it whether the stream is still there.
 *
 * Every callback runs on the stream's worker thread.
 */
#ifndef GATEHOUSE_FILTER_H
#define GATEHOUSE_FILTER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <gatehouse/config.h>
#include <gatehouse/deadline.h>
#include <gatehouse/h1.h>
#include <gatehouse/metrics.h>
#include <gatehouse/yaml.h>

typedef struct gh_stream_s gh_stream_t;
typedef struct gh_stream_handle_s gh_stream_handle_t;

typedef enum {
    GH_FILTER_CONTINUE = 0,
    GH_FILTER_PAUSE,
    GH_FILTER_REPLIED,
    GH_FILTER_BUFFER,
} gh_filter_status_t;

/* Where a filter type sits in every chain; the registry lists types in
 * this order and a chain keeps it. */
typedef enum {
    GH_PHASE_AUTHN = 0, /* who is calling: jwt, apikey, authorizers */
    GH_PHASE_AUTHZ,     /* may they: policies */
    GH_PHASE_LIMITS,    /* how much: rate limits, quotas */
    GH_PHASE_TRANSFORM, /* change or delay the request: fault injection, header edits */
    GH_PHASE_TERMINAL,  /* answers the request: direct_response (the router when none) */
} gh_filter_phase_t;

typedef struct gh_filter_type_s {
    const char *name; /* also the route key of its config section */
    gh_filter_phase_t phase;
    size_t ctx_size; /* per-stream context, zeroed, from the stream's arena */

    /* ---- config (main thread) ---- */
    /* Parses the route's section node into *conf (owned, freed by
     * free_conf). Errors go through gh_yaml_error (file:line:col). Returns
     * 0, -EINVAL or -ENOMEM. The route's name, match, to, max_body and
     * timeout are parsed already, and the sections of the types before
     * this one in the registry; forward_trailers comes after. */
    int (*parse)(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                 gh_route_t *route, void **conf);
    /* Checks conf against the whole config once every section is parsed
     * (names of providers, clusters, other routes). NULL: nothing to check. */
    int (*check)(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, const gh_config_t *cfg,
                 const gh_route_t *route, const void *conf);
    void (*free_conf)(void *conf);
    /* Whether a route without this type's section still gets the filter:
     * parse is then called with node NULL (and check with node NULL). Runs
     * while the route's sections are parsed, after those of the types
     * before this one (route->filters holds them) and after the top-level
     * sections. The rate_limits filter uses it to be on every route where
     * an identity may carry a usage plan. NULL: only with the section. */
    int (*implied)(const gh_config_t *cfg, const gh_route_t *route);
    /* Optional: a top-level section of the config under the key `name`
     * (the policies' library of named definitions). Parsed once per load,
     * after clusters and providers and before the listeners, with node
     * NULL when the key is absent; *section is owned by the config, freed
     * by free_section, and read back with gh_config_section(). Same error
     * convention as parse. */
    int (*parse_section)(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                         void **section);
    void (*free_section)(void *section);
    /* Optional: the type's section may also be written on a listener,
     * under the key `name`, for every route of that listener. Parsed into
     * *conf (owned by the config, freed by free_conf, read back with
     * gh_config_listener_conf()) before the listener's routes; then every
     * route of that listener gets the filter in its chain, and parse runs
     * for each with node NULL when the route has no section of its own
     * (and check likewise). */
    int (*parse_listener)(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg,
                          gh_listener_conf_t *listener, void **conf);

    /* ---- per snapshot ---- */
    /* Main thread: the runtime this type shares over a snapshot (key
     * rings, stores, clients), or *rt = NULL when it needs none. Called
     * for every snapshot, whether or not a route uses the type. Returns 0
     * or -1 (out of memory). */
    int (*init)(const gh_config_t *cfg, void **rt);
    /* Any thread (the last reference to a snapshot may go on a worker). */
    void (*fini)(void *rt);
    /* Main thread, for /ready: how many of the runtime's parts are not
     * ready (0: ready), each reason written into out[0..cap) as a line
     * (NUL-terminated, "\n" between lines, cut where out is full).
     * detailed: the caller may see names of files, URLs and peers' answers;
     * otherwise give a generic reason. NULL: always ready. */
    size_t (*ready)(const void *rt, int detailed, char *out, size_t cap);
    /* Main thread: the instance a route's chain runs with (what the
     * request callbacks get as conf). NULL from bind: out of memory.
     * Without bind, the instance is the parsed conf itself. */
    void *(*bind)(void *rt, const gh_config_t *cfg, const gh_route_t *route, const void *conf,
                  const char *listener);
    void (*unbind)(void *instance);

    /* ---- process-wide service (main thread) ---- */
    /* Started once before the first snapshot; stopped once at exit after
     * the workers stopped (close handles: the main loop runs after it);
     * freed once the last snapshot is gone. The main loop runs JWKS
     * fetches today, stores, token caches and refreshes next. NULL: none. */
    int (*service_start)(uv_loop_t *main_loop);
    void (*service_stop)(void);
    void (*service_free)(void);
    /* Lines for /metrics (gatehouse/metrics.h gh_metrics_extra_fn), or NULL. */
    size_t (*metrics)(char *buf, size_t cap, void *arg);

    /* ---- per request (worker thread) ---- */
    gh_filter_status_t (*on_request_headers)(gh_stream_t *s, const void *conf, void *ctx);
    /* The whole body, after the filter returned GH_FILTER_BUFFER. */
    gh_filter_status_t (*on_request_buffered)(gh_stream_t *s, const void *conf, void *ctx,
                                              const char *body, size_t len);
    /* Body bytes as they stream past (decoded from chunked); observe only. */
    void (*on_request_body)(gh_stream_t *s, const void *conf, void *ctx, const char *data,
                            size_t len, int end);
    gh_filter_status_t (*on_response_headers)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_response_body)(gh_stream_t *s, const void *conf, void *ctx, const char *data,
                             size_t len, int end);
    /* The stream ended while this filter was paused: stop timers, drop the
     * pending call. The handle is still the filter's to take (it returns
     * NULL now) here or from the pending work's completion. */
    void (*on_cancel)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_log)(gh_stream_t *s, const void *conf, void *ctx);
    void (*on_destroy)(gh_stream_t *s, const void *conf, void *ctx);
} gh_filter_type_t;

typedef struct {
    const gh_filter_type_t *type;
    const void *conf; /* the instance: owned by the snapshot */
} gh_filter_t;

/* ---- the registry (src/filters/registry.c) ---- */

/* Every filter type, NULL-terminated, in phase order. */
const gh_filter_type_t *const *gh_filter_types(void);
/* The type whose section is named key, or NULL. */
const gh_filter_type_t *gh_filter_type_find(const char *key);
/* Tests only: replaces the list (NULL restores the product's). */
void gh_filter_types_set(const gh_filter_type_t *const *types);
/* Main thread: every type's service_start, service_stop, service_free in
 * turn; start returns -1 when one failed (those started are stopped);
 * stop runs once however often it is called after a start. */
int gh_filter_services_start(uv_loop_t *main_loop);
void gh_filter_services_stop(void);
void gh_filter_services_free(void);
/* Main thread: adds (arg non-NULL) or removes every type's /metrics lines. */
void gh_filter_metrics_attach(void *arg);

/* ---- async: pause, resume, cancel, deadlines ---- */

/* From a request callback that will return GH_FILTER_PAUSE: a handle to
 * the stream, owned by the filter until it takes it back. NULL when out of
 * memory (reply 503 instead of pausing). One pause at a time per stream. */
gh_stream_handle_t *gh_stream_pause(gh_stream_t *s);
/* Consumes h. Returns the stream, still paused, when it can go on (the
 * caller then continues or replies); NULL when it ended meanwhile (client
 * gone, timeout, drain): then there is nothing to do. Never touches freed
 * memory: h outlives the stream until taken. */
gh_stream_t *gh_stream_handle_take(gh_stream_handle_t *h);
/* Runs the rest of the chain of a stream that was paused. */
void gh_stream_continue(gh_stream_t *s);
/* gh_stream_handle_take then gh_stream_continue: the one-liner for a
 * filter whose async work simply ends. */
void gh_stream_resume(gh_stream_handle_t *h);

/* Starts d (in the filter's ctx) on the worker's deadline wheel: cb(d) in
 * ms. Stop it with gh_deadline_stop() in on_cancel and before taking the
 * handle. Returns 0 or -ENOMEM. */
int gh_stream_deadline_start(gh_stream_t *s, gh_deadline_t *d, uint64_t ms, gh_deadline_cb cb);
/* The worker's loop (for handles the filter owns) and its cached time in
 * ms (uv_now). */
uv_loop_t *gh_stream_loop(gh_stream_t *s);
uint64_t gh_stream_now_ms(gh_stream_t *s);
/* The worker's index (0 ..), for per-worker shards (gatehouse/counter.h). */
unsigned gh_stream_worker_id(const gh_stream_t *s);
/* 64 random bits from the worker's generator (not for secrets). */
uint64_t gh_stream_random(gh_stream_t *s);

/* ---- request bodies ---- */

/* From on_request_headers, before returning GH_FILTER_BUFFER: read the
 * body whole, at most limit bytes after decoding (more: 413). The body
 * then goes upstream unchanged, framed with Content-Length (a chunked
 * body's trailers are dropped); a request without a body stays without. */
void gh_stream_buffer_body(gh_stream_t *s, size_t limit);
/* The request body a filter of the chain buffered (borrowed: the stream's
 * arena; "" with *len 0 for a request without one), or NULL when no
 * filter had it read whole (yet). */
const char *gh_stream_buffered_body(const gh_stream_t *s, size_t *len);

/* ---- what filters may read and change ---- */

/* The caller's verified identity, filled by the authentication filters for
 * the filters after them (policies, rate limits) and the access log. All
 * strings live in the stream's arena. */
typedef struct {
    const char *provider; /* the provider that verified it */
    const char *issuer;
    const char *subject;  /* "sub"; the access log's principal */
    const char *consumer; /* API-key consumer */
    const char *key_id;   /* the API key's public id, or NULL */
    const char *plan;     /* the API key's usage plan, or NULL */
    const char *scopes;   /* space-separated */
    /* The verified JWT (compact JWS, borrowed from the request), or NULL. */
    const char *token;
    size_t token_len;
    /* Its payload as JSON text (the stream's arena), decoded on first use
     * by gh_stream_claims; read it there, not here. */
    const char *claims;
    size_t claims_len;
} gh_identity_t;

gh_identity_t *gh_stream_identity(gh_stream_t *s);
/* For a filter with ctx_size 0 that needs a context only sometimes (a
 * lookup in flight): from its request callback, makes ctx (from
 * gh_stream_alloc) what its later callbacks (on_cancel, on_log, ...) get. */
void gh_stream_set_ctx(gh_stream_t *s, void *ctx);
/* The verified JWT's claims: its payload as JSON text (not NUL-terminated;
 * valid for the stream's life), decoded once per stream, on first use, so
 * a route whose filters never read claims never pays for it. NULL when no
 * JWT was verified, or out of memory. */
const char *gh_stream_claims(gh_stream_t *s, size_t *len);
/* The client's address as text ("192.0.2.7", "2001:db8::1"), after the
 * listener's trusted_proxies (docs/http.md); the access log's client. */
const char *gh_stream_client_address(const gh_stream_t *s);
/* The direct peer's address as text (the TCP connection's, before any
 * trusted_proxies), "" when it has none (not an IP socket). */
const char *gh_stream_peer_address(const gh_stream_t *s);
/* The request's host as the routing saw it: from the authority or Host,
 * port and a trailing dot removed, lower-cased (len 0: none). */
const char *gh_stream_host(const gh_stream_t *s, size_t *len);
/* An absolute-form target's authority ("api.example:8443"), which
 * replaces the Host field for routing and upstream (RFC 9112 section
 * 3.2.2), as sent; NULL when the target is not absolute-form. A filter
 * that tells another service about the request tells it this host. */
const char *gh_stream_authority(const gh_stream_t *s, size_t *len);

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
/* The value of the first field named lower (lower-case), or NULL. */
const char *gh_stream_header_get(const gh_stream_t *s, const char *lower, size_t *len);
/* The Authorization field (borrowed), or NULL. A request never reaches the
 * filters with two (RFC 9110 section 11.6.2; refused with 400 before), so
 * this is the only one; found while the request was checked, so a filter
 * looking for it does not scan the fields again. */
const gh_h1_header_t *gh_stream_authorization(const gh_stream_t *s);
/* The route the chain runs for (its name is in ->name). */
const gh_route_t *gh_stream_route(const gh_stream_t *s);
/* The request id (the access log's and the upstream's X-Request-Id). */
const char *gh_stream_request_id(const gh_stream_t *s);

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
/* A route's fixed drops, made once when its chain is bound (names
 * lower-case, borrowed: they must outlive the list) and given to each
 * stream in one step; the stream borrows the list, which must outlive it
 * (a bound instance outlives its streams). NULL when out of memory. */
typedef struct gh_drop_list_s gh_drop_list_t;
gh_drop_list_t *gh_drop_list_new(const char *const *names, size_t n);
void gh_drop_list_free(gh_drop_list_t *l);
int gh_stream_drop_list(gh_stream_t *s, const gh_drop_list_t *l);
/* Adds whole header lines ("name: value\r\n"..., already validated). */
int gh_stream_add_header_lines(gh_stream_t *s, const char *lines, size_t len);
/* gh_stream_drop_list(s, l) then gh_stream_add_header_lines(s, lines,
 * len) in one call (l may be NULL, len 0): a decision from a cache that
 * replaces the client's copies of the fields it sets. */
int gh_stream_replace_headers(gh_stream_t *s, const gh_drop_list_t *l, const char *lines,
                              size_t len);

/* A field added to the response the client gets, whether it comes from
 * the upstream or is a local reply (RateLimit, Retry-After). The name must
 * be a token and not one gatehouse frames itself (content-length,
 * transfer-encoding, connection and the other hop-by-hop names); the
 * value must hold no control character but HTAB. Returns 0, or -1 (refused, or out of
 * memory). */
int gh_stream_add_response_header(gh_stream_t *s, const char *name, size_t name_len,
                                  const char *value, size_t value_len);
/* The same for whole lines written in place, for a filter that adds
 * fields to every response (the rate_limits filter's RateLimit fields:
 * the per-byte checks and a copy cost more than the rest of that filter).
 * reserve returns room for up to max bytes after the fields added so far
 * (NULL when out of memory); the caller writes whole lines there
 * ("name: value\r\n"..., from names and values that pass the rules
 * above) and commits the bytes it wrote, before any other call that adds
 * a field. */
char *gh_stream_response_lines_reserve(gh_stream_t *s, size_t max);
void gh_stream_response_lines_commit(gh_stream_t *s, size_t used);

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
/* Adds one to a filter event counter (gh_metrics_filter_id, made in bind). */
void gh_stream_count(gh_stream_t *s, uint32_t filter_event_id);

/* A short note for the access log's "filter" field (static or arena
 * string, e.g. "fault=delay"); the last one set wins. */
void gh_stream_log_note(gh_stream_t *s, const char *note);

/* The request as the router would send it upstream, for a terminal
 * filter that forwards it another way (a lambda cluster's event): the
 * target after filters' rewrites (gh_stream_set_target) split into path
 * (normalized) and query (NULL: none), and the header fields after
 * hop-by-hop removal, the client's forwarding fields replaced by
 * gatehouse's, filters' drops and adds, Via, X-Request-Id, trace context,
 * and Content-Length of a buffered body. Everything is in the stream's
 * arena. 0, or -1 when out of memory or a header edit failed (answer 503:
 * the request cannot go on as the filters meant it). */
typedef struct {
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    gh_h1_header_t *headers;
    size_t num_headers;
} gh_stream_forwarded_t;
int gh_stream_forwarded(gh_stream_t *s, gh_stream_forwarded_t *out);

/* For a terminal filter that reaches an upstream itself, not through the
 * router (a lambda cluster): the route target it chose (an index in
 * route->targets: the metrics series {listener, route, cluster} and the
 * cluster's duration histogram count the request), and what the access
 * log and traces name as the upstream (borrowed: a string that outlives
 * the stream, such as a config string). begin starts the upstream clock
 * when the call goes out; end stops it when the whole answer came. */
void gh_stream_upstream_begin(gh_stream_t *s, size_t target, const char *name);
void gh_stream_upstream_end(gh_stream_t *s);

/* The stream's arena, for allocations that live as long as the request.
 * NULL when out of memory; the request is then answered 503 rather than
 * forwarded, like a failed header edit (a filter may have meant to build
 * an edit in this memory). */
void *gh_stream_alloc(gh_stream_t *s, size_t size);

/* ---- local replies ---- */

/* Answers locally: status (200..599), header fields (copied; same rules
 * as gh_stream_add_response_header, and content-length is gatehouse's),
 * and a body (copied; not sent for HEAD, 204, 304). Fields added with
 * gh_stream_add_response_header come too. On a refused field the reply is
 * a 500 instead. */
void gh_stream_reply(gh_stream_t *s, int status, const gh_h1_header_t *headers, size_t num_headers,
                     const char *body, size_t body_len);

/* Answers locally with extra response header lines ("name: value\r\n"...,
 * may be NULL) and a JSON body {"error": code, "detail": detail}. */
void gh_stream_reply_error_with(gh_stream_t *s, int status, const char *code, const char *detail,
                                const char *extra_headers);

/* gh_stream_reply_error_with, with more string members in the JSON body
 * after "detail": members[0..2n) as name, value pairs (copied, escaped
 * here), e.g. {"error":"forbidden","detail":"...","policy":"block-admin"}. */
void gh_stream_reply_error_members(gh_stream_t *s, int status, const char *code, const char *detail,
                                   const char *const *members, size_t n, const char *extra_headers);

/* Answers the request locally with a JSON error body
 * {"error": code, "detail": detail}. code and detail are copied. */
void gh_stream_reply_error(gh_stream_t *s, int status, const char *code, const char *detail);

#endif
