/*
 * Callouts: HTTP/1.1 calls a filter makes from its worker's loop to a
 * cluster of the config (an authorizer, an ext_authz service, the Lambda
 * Invoke API), over the same per-worker pools as the router: the cluster's
 * max_connections, max_idle, idle_timeout, connect_timeout and endpoint
 * choice apply to routes and callouts together (docs/internals/callout.md).
 *
 * The life of a call, as its filter sees it:
 *   bind (main thread): gh_callout_cluster() resolves the cluster's name
 *       in the snapshot's config (check: gh_callout_cluster_check());
 *   a request callback: gh_stream_pause(), then gh_callout_start();
 *   later, on the worker: the callback runs exactly once with a response
 *       or an error, unless the call was cancelled;
 *   on_cancel (the stream ended first): gh_callout_cancel(). From then on
 *       the callback never runs, and the connection the call was on is
 *       closed (never put back in the pool half-used).
 *
 * Every function runs on the stream's worker thread.
 */
#ifndef GATEHOUSE_CALLOUT_H
#define GATEHOUSE_CALLOUT_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/config.h>
#include <gatehouse/h1.h>

struct gh_stream_s;
struct gh_yaml_doc_s;
struct gh_yaml_node_s;

typedef struct gh_callout_s gh_callout_t;

/* Outcomes: 0, or one of these (negative, as libuv's codes are). The
 * order is that of gatehouse_callouts_total's outcome label. */
typedef enum {
    GH_CALLOUT_OK = 0,
    GH_CALLOUT_E_CONNECT = -1,   /* connect refused, failed or timed out */
    GH_CALLOUT_E_POOL_FULL = -2, /* every endpoint's connections busy (max_connections) */
    GH_CALLOUT_E_TIMEOUT = -3,   /* no whole response within the call's timeout */
    GH_CALLOUT_E_RESET = -4,     /* the connection broke or closed before the response ended */
    GH_CALLOUT_E_MALFORMED = -5, /* the response is not HTTP/1.1 as gatehouse reads it */
    GH_CALLOUT_E_TOO_LARGE = -6, /* the response body is longer than max_body */
    GH_CALLOUT_E_NOMEM = -7,
    GH_CALLOUT_E_INVALID = -8,   /* a request gatehouse will not send (see gh_callout_req_t) */
    GH_CALLOUT_E_CANCELLED = -9, /* metrics only: the callback never gets it */
} gh_callout_error_t;

#define GH_CALLOUT_OUTCOMES 10

/* The outcome's short name (metrics label, log): "ok", "connect_failed",
 * "pool_full", "timeout", "reset", "malformed", "too_large", "no_memory",
 * "invalid", "cancelled". */
static inline const char *gh_callout_error_name(int code)
{
    static const char *const names[GH_CALLOUT_OUTCOMES] = {
        "ok",        "connect_failed", "pool_full", "timeout", "reset",
        "malformed", "too_large",      "no_memory", "invalid", "cancelled",
    };
    return code <= 0 && code > -GH_CALLOUT_OUTCOMES ? names[-code] : "unknown";
}

/* What to send. Every pointer is borrowed for the gh_callout_start call
 * only (the head is copied), except body, which is borrowed until the
 * callback has run or gh_callout_cancel returned: the caller keeps it
 * alive that long (the stream's arena does, for a call its filter cancels
 * in on_cancel). */
typedef struct {
    const char
        *method; /* NUL-terminated token; not HEAD, CONNECT (their responses frame otherwise) */
    const char *target; /* origin-form: "/path?query", no space or control byte */
    size_t target_len;
    /* Host to send; NULL: the cluster's default_host, or else the chosen
     * endpoint's address as written in the config. A valid authority. */
    const char *host;
    size_t host_len;
    /* Extra fields, sent in this order after Host. Names are tokens, and
     * never ones that frame or route the message (content-length,
     * transfer-encoding, host, connection, keep-alive, te, trailer, upgrade,
     * expect, proxy-connection): gatehouse writes those. Values: no control
     * byte but HTAB. */
    const gh_h1_header_t *headers;
    size_t num_headers;
    /* The body, framed with Content-Length (sent also as 0 when body is
     * NULL and the method is POST, PUT or PATCH). */
    const char *body;
    size_t body_len;
    /* The whole call, start to last response byte; > 0. From the config:
     * the worker's deadline wheel keeps one list per distinct duration. */
    uint64_t timeout_ms;
    size_t max_body; /* response body bytes accepted (0: none) */
} gh_callout_req_t;

/* What came back; valid during the callback only (copy what is kept). */
typedef struct {
    int error;          /* GH_CALLOUT_OK or a GH_CALLOUT_E_* */
    const char *reason; /* error: a short sentence naming the endpoint; NUL-terminated */
    /* error == 0: the final response (interim 1xx responses are skipped). */
    int status;
    const gh_h1_header_t *headers; /* as received, in order */
    size_t num_headers;
    const char *body; /* decoded (no chunk framing); NULL when empty */
    size_t body_len;
} gh_callout_result_t;

/* Runs once per call that was not cancelled, on the worker's loop, never
 * from inside gh_callout_start. The call is over when it runs: its memory
 * goes once cb returns (a gh_callout_cancel from inside cb does nothing). */
typedef void (*gh_callout_cb)(void *arg, const gh_callout_result_t *res);

/* ---- config time (main thread) ---- */

/* The cluster called name in cfg (borrowed from cfg, which the snapshot
 * owns: keep it in the bound instance), or NULL. */
const gh_cluster_t *gh_callout_cluster(const gh_config_t *cfg, const char *name);

/* For a filter type's check hook: 0 when cfg has a cluster called name,
 * else -EINVAL with a gh_yaml_error at node: "<what> names unknown
 * cluster 'name'". */
int gh_callout_cluster_check(const struct gh_yaml_doc_s *doc, const struct gh_yaml_node_s *node,
                             const gh_config_t *cfg, const char *what, const char *name);

/* ---- per request (worker thread) ---- */

/* Starts a call to cluster (from gh_callout_cluster on the config of the
 * snapshot s runs with) on s's worker. s is borrowed for this call only:
 * the call does not hold the stream and outlives it only until cancelled.
 * Returns 0 and *out (owned by the call until its callback has run or it
 * is cancelled), or a GH_CALLOUT_E_* code (pool full, invalid, out of
 * memory, a connect that cannot start) and then cb never runs. */
int gh_callout_start(struct gh_stream_s *s, const gh_cluster_t *cluster,
                     const gh_callout_req_t *req, gh_callout_cb cb, void *arg, gh_callout_t **out);

/* Ends a call whose callback has not run: the callback never runs, the
 * connection (connecting, writing or reading) is closed, and the call's
 * memory is freed. NULL, or a call inside its own callback: nothing. */
void gh_callout_cancel(gh_callout_t *c);

/* The value of the first field of res named lower (lower-case), or NULL. */
const char *gh_callout_result_header(const gh_callout_result_t *res, const char *lower,
                                     size_t *len);

#endif
