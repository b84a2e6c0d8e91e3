/*
 * Internal types of the proxy: workers, downstream connections, streams,
 * upstream connections and pools. Not a public header: filters see only
 * gatehouse/filter.h and the stream accessors.
 *
 * Ownership in one place:
 *   - gh_worker_t owns its loop, listeners, pools and every connection on it.
 *   - gh_conn_t (downstream) is heap-allocated at accept and freed in the
 *     close callback of its tcp handle; it owns its read buffer and at most
 *     one stream at a time (pipelined requests wait in the read buffer).
 *   - gh_stream_t lives in its own arena, created when a request head is
 *     complete and disposed of when the exchange ends; it borrows the conn
 *     and holds a snapshot reference.
 *   - gh_upconn_t (upstream) is heap-allocated and freed in its close
 *     callback; while a stream uses it, stream->up and up->stream point at
 *     each other; while a callout (callout.c) uses it, call->up and
 *     up->call do (and up->stream is NULL); idle, it sits in its pool's
 *     list.
 */
#ifndef GATEHOUSE_PROXY_INTERNAL_H
#define GATEHOUSE_PROXY_INTERNAL_H

#include <stdint.h>
#include <uv.h>

#include <gatehouse/arena.h>
#include <gatehouse/config.h>
#include <gatehouse/deadline.h>
#include <gatehouse/filter.h>
#include <gatehouse/h1.h>
#include <gatehouse/metrics.h>
#include <gatehouse/accesslog.h>
#include <gatehouse/trace.h>

#include "proxy/body.h"
#include "proxy/snapshot.h"

typedef struct gh_worker_s gh_worker_t;
typedef struct gh_conn_s gh_conn_t;
typedef struct gh_upconn_s gh_upconn_t;
typedef struct gh_pool_s gh_pool_t;

typedef struct gh_wsnap_s gh_wsnap_t;
typedef struct gh_sockwrite_done_s gh_sockwrite_done_t;

/* A listening socket of one worker. Keyed by address across reloads: a
 * listener whose address stays in the new config keeps its socket, so no
 * connection is refused during a reload. */
typedef struct gh_listener_s {
    uv_tcp_t tcp;
    gh_worker_t *worker;
    struct gh_listener_s *next;
    char *address; /* owned copy of the config's address text */
    size_t li;     /* index in the worker's current snapshot */
    /* Admission (conn.c): open connections accepted here, and per client
     * address when that is limited; paused: not accepting (libuv holds one
     * connection, the kernel's backlog the rest). */
    uint32_t num_conns;
    unsigned paused : 1;
    struct gh_addr_count_s **by_addr;
    uint32_t addr_seed; /* of by_addr's hash, random: clients choose their addresses */
    /* Out of descriptors (worker.c): libuv's accept loop only ends when the
     * handle closes, so the handle is closed (down) and reopened later on a
     * dup of spare_fd, which keeps the socket and its backlog meanwhile. */
    int spare_fd;      /* dup of the listening socket, or -1 */
    unsigned down : 2; /* 0 up, 1 handle closing, 2 handle closed */
    unsigned gone : 1; /* removed while down: freed when its handle closes */
} gh_listener_t;

/* A worker's view of one snapshot: the snapshot reference plus the state
 * derived from it that only this worker touches (pools, round robin
 * cursors). Refcounted by the connections and streams that use it, so a
 * reload leaves in-flight work on its old view while new work takes the
 * new one; the old view (and its idle pooled connections) goes when its
 * last user does. */
struct gh_wsnap_s {
    gh_worker_t *worker;
    gh_snapshot_t *snap; /* reference */
    gh_pool_t **pools;   /* [cluster index][endpoint index] */
    uint32_t *rr_next;   /* per cluster: round robin cursor */
    unsigned refs;
};

/* Idle keep-alive connections to one endpoint, per worker. */
struct gh_pool_s {
    gh_worker_t *worker;
    gh_wsnap_t *ws;
    const gh_cluster_t *cluster;
    const gh_endpoint_conf_t *ep;
    gh_upconn_t *idle; /* singly linked through up->next_idle */
    uint32_t num_idle;
    uint32_t active;               /* streams using this endpoint now (least_request) */
    gh_cluster_stats_t *stats;     /* the worker's shard entry for the cluster; NULL if none */
    gh_endpoint_stats_t *ep_stats; /* same for the endpoint */
    /* Open connections (connecting, busy or idle), capped by the cluster's
     * max_connections; requests waiting for one (FIFO, at most
     * max_pending); kick serves them on the next loop turn. */
    uint32_t num_conns;
    uint32_t num_waiting;
    gh_stream_t *wait_head, *wait_tail;
    gh_deadline_t kick;
    /* TLS clusters (uptls.c): the endpoint's last resumable session, so
     * that a new connection resumes instead of a full handshake. */
    struct ssl_session_st *tls_session; /* reference, or NULL */
};

struct gh_worker_s {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wakeup; /* main thread -> worker: stop or drain */
    unsigned id;
    gh_wsnap_t *cur;          /* the current view; holds one reference */
    gh_listener_t *listeners; /* list */
    uv_mutex_t mbox_lock;     /* main thread -> worker: a new snapshot */
    gh_snapshot_t *mbox_snap; /* reference, or NULL */
    int *mbox_fds;            /* sockets for its new listeners, -1 where kept */
    pcre2_match_data *md;
    gh_metrics_shard_t *metrics;
    struct {
        const gh_filter_type_t *type;
        void *state;
        void (*destroy)(void *);
    } fstate[8]; /* per-worker filter state (gh_stream_worker_state) */
    gh_access_log_buf_t alog;
    uv_timer_t alog_timer; /* flushes alog every second */
    gh_h1_header_t *hdrs;  /* parser scratch, max_headers of the largest listener */
    size_t max_hdrs;
    uint64_t rng;
    uint64_t next_conn_id;
    uint32_t num_conns;
    gh_conn_t *conns;
    /* Read buffers of idle connections come back here: an idle keep-alive
     * connection holds no buffer, so 10,000 of them cost their structs. */
    char *rbuf_free[64];
    unsigned num_rbuf_free;
    /* Streams (with their arena's first block) of finished exchanges, for
     * the next ones: a typical request then makes no malloc. */
    gh_stream_t *stream_free[16];
    unsigned num_stream_free;
    /* Write requests of downstream writes, likewise lent per write. */
    uv_write_t *wreq_free[64];
    unsigned num_wreq_free;
    /* Completions of writes the socket took at once, run on the next loop
     * turn by wdone_idle (sockwrite.c). */
    gh_sockwrite_done_t *wdone; /* owned array of cap_wdone */
    size_t num_wdone, cap_wdone;
    uv_idle_t wdone_idle;
    uv_timer_t drain_timer;
    gh_deadlines_t deadlines; /* every connection's timeout, and filters' */
    /* Deferred deletion: streams that ended this loop turn, freed by the
     * reaper (a check handle run every turn) once every call chain that
     * held them has returned; what is left at exit, by gh_worker_dispose. */
    uv_check_t reaper;
    gh_stream_t *dead;
    int stopping;
    int force;    /* drain deadline passed: close everything */
    int stop_req; /* set by the main thread, atomically: 1 drain, 2 force */
    int loop_ok;
    uv_async_t *on_exit; /* main thread's, signalled when the loop ends */
    unsigned *num_exited;
    /* Admission (conn.c): a connection that cannot be kept is accepted into
     * the sink and closed at once. */
    uv_tcp_t sink;
    unsigned sink_busy : 1;
    unsigned num_paused; /* listeners not accepting */
    /* Out of descriptors (worker.c): a descriptor held back to refuse one
     * pending connection, the timer that reopens listeners closed for lack
     * of descriptors, and the accept error log's rate limit. */
    int reserve_fd; /* /dev/null, or -1 */
    uv_timer_t fd_timer;
    uint64_t aerr_logged_ns; /* uv_hrtime() of the last accept error line */
    uint64_t aerr_unlogged;  /* accept errors since then */
};

enum {
    GH_CONN_HEAD = 0, /* waiting for (more of) a request head */
    GH_CONN_STREAM,   /* a stream owns the connection */
    GH_CONN_CLOSING,
};

struct gh_conn_s {
    uv_tcp_t tcp;
    gh_conn_t *prev, *next; /* the worker's list of connections */
    gh_deadline_t dl;
    gh_worker_t *worker;
    gh_wsnap_t *ws;              /* reference: the view the next request uses */
    size_t li;                   /* its listener's index in ws->snap */
    gh_listener_stats_t *lstats; /* NULL if none */
    uint64_t id;
    char *rbuf; /* unconsumed bytes are rbuf[0 .. rlen); NULL while idle */
    size_t rlen, rcap;
    gh_stream_t *stream;
    char *wbuf; /* heap buffer of a local reply being written, freed on write completion */
    int state;
    unsigned reading : 1;
    unsigned wpending : 1;
    unsigned keep_alive : 1;
    unsigned peer_eof : 1;
    unsigned head_timer : 1;   /* the header timeout is running */
    unsigned retiring : 1;     /* its listener left the config: close after this request */
    unsigned handles_open : 2; /* tcp still to close */
    char peer[48];             /* client address text, no port (INET6_ADDRSTRLEN) */
    size_t head_scanned;       /* rbuf bytes known to hold no complete head (headscan.h) */
    unsigned served : 1;       /* a request has begun here: waits between requests are idle */
    /* Counted in lst (NULL once the listener closed) and in its entry of
     * lst->by_addr (or NULL). */
    gh_listener_t *lst;
    struct gh_addr_count_s *addr;
};

struct gh_upconn_s {
    uv_tcp_t tcp;
    uv_connect_t creq;
    gh_deadline_t dl;
    uv_write_t wreq;
    gh_pool_t *pool;
    gh_cluster_stats_t *stats;
    /* The owner of its events: the router's stream, or else (stream NULL)
     * a callout; both NULL while idle or closing. The router's path tests
     * stream only, as it always did: a callout's events branch off where
     * an idle connection's did (upstream.c), so routing pays nothing for
     * them. */
    gh_stream_t *stream;
    struct gh_callout_s *call;
    gh_upconn_t *next_idle;
    char *rbuf;
    size_t rlen, rcap;
    unsigned counted : 1; /* in stats->conns_active */
    unsigned connected : 1;
    unsigned reused : 1;
    unsigned wpending : 1;
    /* TLS (uptls.c): bytes nobody asked for wait in the TLS layer, or it
     * ended; never back to the pool. Beside wpending, so that release
     * tests both at once. */
    unsigned tls_dirty : 1;
    unsigned reading : 1;
    unsigned closing : 1;
    unsigned handles_open : 2;
    /* Per exchange, for the retry rule (router.c): */
    unsigned wrote : 1;  /* a byte of the request may have reached the upstream */
    unsigned heard : 1;  /* the upstream sent a byte (an interim response counts) */
    unsigned probe : 1;  /* find out exactly whether the first write sent anything */
    unsigned is_tls : 1; /* of a cluster with tls: tls is set once TCP connected */
    struct gh_uptls_s *tls;
};

struct gh_stream_s {
    gh_arena_t arena;
    gh_conn_t *conn;
    gh_wsnap_t *ws;      /* reference */
    gh_snapshot_t *snap; /* ws->snap, borrowed */
    uint64_t id;
    char request_id[64];

    /* The request head: the connection's read buffer when it held this
     * head and nothing more (head_buf, owned, head_cap bytes, recycled with
     * the stream), otherwise a copy in the arena (head_buf NULL). */
    char *head;
    char *head_buf;
    size_t head_cap;
    gh_h1_request_t req;
    const char *host; /* lower-cased, without port */
    size_t host_len;
    const char *path; /* up to '?' */
    size_t path_len;
    const char *query; /* after '?', or NULL */
    size_t query_len;
    const char *authority; /* absolute-form request-target only */
    size_t authority_len;
    char *fwd_head; /* the request head as sent upstream */
    size_t fwd_head_len;
    size_t req_inflight; /* client read-buffer bytes in the upstream write under way */
    size_t res_inflight; /* upstream read-buffer bytes in the client write under way */

    const gh_listener_conf_t *lconf;
    const gh_route_t *route;
    const gh_filter_t *filters;
    size_t num_filters;
    unsigned hooks;     /* the chain's GH_HOOK_* (snapshot.h) */
    size_t next_filter; /* next request-direction filter to run */
    void **ctx;         /* per filter */

    /* Request body: client -> upstream. */
    gh_body_pump_t req_pump;
    uint64_t req_body_bytes;
    unsigned req_body_done : 1; /* every body byte read from the client */
    unsigned req_sent : 1;      /* head and body written upstream */
    unsigned head_sent : 1;     /* request head written upstream */
    unsigned continue_sent : 1; /* 100 Continue written to the client */

    /* Upstream. */
    gh_upconn_t *up;
    const gh_cluster_t *cluster;
    size_t target; /* index in route->targets */
    size_t endpoint;
    /* What the access log and traces call the upstream when a terminal
     * filter other than the router reached it (gh_stream_upstream_begin);
     * NULL: the endpoint's address. */
    const char *upstream_name;
    uint64_t start_ns;    /* head complete */
    uint64_t up_start_ns; /* request head handed to the upstream */
    uint64_t bytes_in, bytes_out;
    const char *error;    /* why a local reply or abort happened; static or arena */
    gh_trace_ctx_t *span; /* in the arena, when traced */
    unsigned traced : 1;

    gh_identity_t identity;
    const char *fwd_target; /* request-target to send instead of the client's, or NULL */
    size_t fwd_target_len;
    char *hdr_add; /* lines "name: value\r\n" to add upstream, in the arena */
    size_t hdr_add_len, hdr_add_cap;
    struct gh_hdr_drop_s {
        const char *name;
        size_t len;
        unsigned char c0; /* gh_field_name_fold(name[0]); 0 for an empty name */
    } * hdr_drop;         /* in the arena, hdr_drop_cap entries, grown by doubling */
    unsigned num_hdr_drop;
    /* Bit (len % 64) set for each dropped name's length: a field whose
     * length has no bit is no drop's, and forward.c passes it on without
     * comparing names. */
    uint64_t hdr_drop_lens;
    unsigned tries;

    /* Response: upstream -> client. */
    gh_h1_response_t res;
    char *res_head;
    gh_body_pump_t res_pump;
    unsigned res_started : 1; /* response head written (or being written) to the client */
    unsigned res_done : 1;    /* whole response handed to the client socket */
    unsigned res_up_done : 1; /* whole response read from the upstream */
    unsigned replied : 1;     /* local reply */
    unsigned aborted : 1;
    unsigned up_eof : 1;
    unsigned res_head_parsed : 1;
    unsigned res_head_pending : 1; /* response head built, not yet handed to the client */
    char *res_out_head;
    size_t res_out_head_len;
    unsigned logged : 1;
    int status;

    /* Path normalization (gatehouse/path.h), done in gh_stream_new and
     * answered, when it is not GH_PATH_OK, in gh_stream_run_request. */
    int path_result;
    const char *path_reason; /* static: why the path is refused */
    char *path_location;     /* arena: "location: path[?query]\r\n" of the redirect */

    unsigned up_err : 1;     /* the upstream read ended in an error, not a clean EOF */
    size_t res_head_scanned; /* up->rbuf bytes known to hold no complete head (reset per up) */
    /* Request checks made before routing (stream.c): a non-zero status is
     * answered instead of routing, and the connection closes. */
    int refuse_status;
    int auth_index;               /* the Authorization field's index in req.headers, -1 if none */
    const char *refuse_detail;    /* static */
    unsigned peer_trusted : 1;    /* the peer is in the listener's trusted_proxies */
    unsigned hdr_edit_failed : 1; /* a filter's header add or drop failed: never forwarded */
    unsigned hdr_drop_cap;
    char client[48]; /* client address after trusted proxies (docs/http.md) */
    /* Waiting for a connection of wait_pool (upstream.c), until wait_dl. */
    gh_pool_t *wait_pool;
    gh_stream_t *wait_next, *wait_prev;
    gh_deadline_t wait_dl;
    unsigned wait_fresh : 1; /* a retry: needs a new connection */

    /* The async filter machinery (gatehouse/filter.h). */
    unsigned ended : 1;                /* gh_stream_end ran: freed at the end of the loop turn */
    unsigned buffering : 1;            /* reading the body whole for buffer_filter */
    unsigned body_buffered : 1;        /* the body is body_buf, forwarded with Content-Length */
    unsigned body_read : 1;            /* a filter's buffering completed (the body may be none) */
    struct gh_stream_handle_s *handle; /* the paused filter's handle, until taken */
    size_t paused_filter;              /* index + 1 of the filter holding handle */
    size_t buffer_filter;              /* index of the filter that asked for the body */
    size_t body_limit;
    char *body_buf; /* arena, body_len bytes of body_cap */
    size_t body_len, body_cap;
    char *res_add; /* arena: response fields from filters, "name: value\r\n"... */
    size_t res_add_len, res_add_cap;
    const char *log_note;     /* for the access log's filter field; static or arena */
    size_t alloc_inline_used; /* bytes of alloc_inline given out */
    gh_stream_t *dead_next;   /* the worker's dead list */

    /* Room for the usual few header edits without an arena allocation.
     * Last in the struct and not zeroed when a stream is taken (stream.c
     * zeroes up to here): only num_hdr_drop, hdr_add_len and res_add_len
     * entries and bytes of them are ever read. */
    struct gh_hdr_drop_s drop_inline[4];
    char add_inline[192];
    char res_inline[256]; /* the same for response fields (RateLimit) */
    /* gh_stream_alloc's first bytes (alloc_inline_used of them, zeroed
     * with the rest): a filter's small copy (an identity) costs no arena
     * call. */
    _Alignas(16) char alloc_inline[128];
};

static inline const gh_listener_conf_t *gh_conn_lconf(const gh_conn_t *c)
{
    return &c->ws->snap->cfg->listeners[c->li];
}

/* Pool counters, mirrored into the endpoint's stats for /clusters. */
static inline void gh_pool_active_inc(gh_pool_t *p)
{
    p->active++;
    if (p->ep_stats != NULL)
        GH_STAT_INC(p->ep_stats->active_requests);
}

static inline void gh_pool_active_dec(gh_pool_t *p)
{
    if (p->active == 0)
        return;
    p->active--;
    if (p->ep_stats != NULL)
        GH_STAT_DEC(p->ep_stats->active_requests);
}

static inline void gh_pool_idle_add(gh_pool_t *p, int d)
{
    p->num_idle = (uint32_t)((int)p->num_idle + d);
    if (p->ep_stats != NULL)
        __atomic_store_n(&p->ep_stats->idle_conns, p->ep_stats->idle_conns + (uint64_t)(int64_t)d,
                         __ATOMIC_RELAXED);
}

/* sockwrite.c */
void gh_sockwrite_init(gh_worker_t *w);
/* After the loop has closed every handle: frees the queue. */
void gh_sockwrite_dispose(gh_worker_t *w);
/* h must be a socket on a worker's loop. uv_write()'s contract (0 and exactly one cb(req, status)
 * on a later loop turn, never from inside the call; or < 0 and no cb; req and the bytes borrowed
 * until then), without libuv's epoll_ctl when the socket takes the whole write at once. bufs is
 * scratch: its entries may be changed. With nbufs 0 the bytes were all written already
 * (uv_try_write) and only the completion is wanted. */
int gh_sockwrite(uv_write_t *req, uv_stream_t *h, uv_buf_t *bufs, unsigned nbufs, uv_write_cb cb);
/* From h's close callback, before its owner is freed: runs the completions
 * of h's writes still waiting for their loop turn. */
void gh_sockwrite_flush(uv_stream_t *h);
/* Drops the first n bytes of bufs; returns how many bufs are left. */
unsigned gh_sockwrite_advance(uv_buf_t **bufs, unsigned nbufs, size_t n);

/* worker.c */
gh_wsnap_t *gh_wsnap_ref(gh_wsnap_t *ws);
void gh_wsnap_unref(gh_wsnap_t *ws);

/* conn.c */
void gh_conn_accept(gh_listener_t *l);
/* Listeners paused at a limit accept again if now below it. */
void gh_conn_resume_accepting(gh_worker_t *w);
/* l is closing: its connections stop being counted there. */
void gh_conn_listener_gone(gh_listener_t *l);
int gh_conn_take_current(gh_conn_t *c);
void gh_conn_update_reading(gh_conn_t *c);
void gh_conn_process(gh_conn_t *c);
void gh_conn_write(gh_conn_t *c, uv_buf_t *bufs, unsigned nbufs);
/* A write that is not part of the response (100 Continue): static bufs. */
int gh_conn_write_aside(gh_conn_t *c, uv_buf_t *bufs, unsigned nbufs);
void gh_conn_close(gh_conn_t *c);
void gh_conn_finish(gh_conn_t *c);
void gh_conn_arm_timer(gh_conn_t *c);
/* Takes buf, a read buffer of cap bytes whose connection gave it up (to a
 * stream, gh_stream_new): back on w's free list, or freed. */
void gh_conn_rbuf_recycle(gh_worker_t *w, char *buf, size_t cap);

/* stream.c */
gh_stream_t *gh_stream_new(gh_conn_t *c, const gh_h1_request_t *req, size_t head_len);
void gh_stream_cache_free(gh_worker_t *w);
/* Frees the streams that ended (the reaper's work; also at worker exit). */
void gh_stream_reap(gh_worker_t *w);
void gh_stream_client_timeout(gh_stream_t *s);
void gh_stream_client_eof(gh_stream_t *s, int err);
void gh_stream_run_request(gh_stream_t *s);
void gh_stream_response_head(gh_stream_t *s);
void gh_stream_end(gh_stream_t *s);
void gh_stream_abort(gh_stream_t *s, const char *why);
void gh_stream_fail(gh_stream_t *s, int status, const char *code, const char *detail);
void gh_stream_client_wrote(gh_stream_t *s);
int gh_stream_pump_request(gh_stream_t *s);
void gh_stream_request_written(gh_stream_t *s);
int gh_stream_response_filters(gh_stream_t *s);

/* route.c */
int gh_strmatch_match(gh_worker_t *w, const gh_strmatch_t *m, const char *v, size_t n);
const gh_route_t *gh_route_match(gh_worker_t *w, const gh_listener_conf_t *l, const gh_stream_t *s,
                                 size_t *index);

/* lb.c */
size_t gh_lb_pick_target(gh_worker_t *w, const gh_route_t *r);
size_t gh_lb_pick_endpoint(gh_wsnap_t *ws, const gh_cluster_t *c);
uint64_t gh_rand(gh_worker_t *w);

/* upstream.c */
/* An idle pooled connection, or (GH_UPCONN_FRESH, or none idle) a new one
 * whose connect is under way; NULL when the connect cannot even start.
 * GH_UPCONN_CHECK asks the kernel whether an idle one is still open before
 * handing it out, for a request that could not be sent again. */
#define GH_UPCONN_FRESH 1u
#define GH_UPCONN_CHECK 2u
gh_upconn_t *gh_upconn_get(gh_pool_t *p, unsigned flags, int *err);
void gh_upconn_release(gh_upconn_t *u, int reusable);
void gh_upconn_close(gh_upconn_t *u);
void gh_upconn_write(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs);
/* A callout's write: bufs as gh_sockwrite takes them, completion through
 * gh_callout_on_write. Returns 0, or < 0 (no completion). */
int gh_upconn_send(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs);
void gh_upconn_update_reading(gh_upconn_t *u);
void gh_upconn_arm_timer(gh_upconn_t *u, uint64_t ms);
void gh_upconn_stop_timer(gh_upconn_t *u);
void gh_pool_dispose(gh_pool_t *p);
/* Queues s for the next connection of p that is free, until the cluster's
 * connect_timeout; -1 when max_pending are waiting already. */
int gh_pool_wait(gh_pool_t *p, gh_stream_t *s, int fresh);
void gh_pool_unwait(gh_stream_t *s);
/* Room for a request now: nobody waiting ahead, and an idle connection or
 * room for a new one. */
int gh_pool_has_room(const gh_pool_t *p);

/* Owner events for a transport under the connection (uptls.c): what
 * upstream.c's libuv callbacks do once bytes are plaintext. connected: the
 * connection is usable (status 0) or failed; deliver: nread plaintext
 * bytes were put at rbuf + rlen (or the end, < 0), u has an owner; wrote:
 * the owner's write completed. */
void gh_upconn_connected(gh_upconn_t *u, int status);
void gh_upconn_deliver(gh_upconn_t *u, ssize_t nread);
void gh_upconn_wrote(gh_upconn_t *u, int status);
/* Why status ended a connect or an exchange: the transport's reason (a
 * TLS handshake's) when it has one, else uv_strerror(status). Static or
 * u's; valid until u is closed. */
const char *gh_upconn_why(const gh_upconn_t *u, int status);

/* uptls.c: TLS to upstreams, under gh_upconn_t (docs/internals/callout.md).
 * start: the TCP connect of a TLS cluster's connection completed; the
 * handshake runs, under the connect deadline still, and ends in
 * gh_upconn_connected. */
void gh_uptls_start(gh_upconn_t *u);
/* The owner wants reads again (rbuf has room): reading restarts, and
 * plaintext that the TLS layer holds is delivered on the next loop turn. */
void gh_uptls_resume(gh_upconn_t *u);
/* The owner's write: encrypted now, completion through gh_upconn_wrote.
 * Returns 0, or < 0 and no completion. */
int gh_uptls_write(gh_upconn_t *u, uv_buf_t *bufs, unsigned nbufs);
/* From gh_upconn_close, before uv_close: close_notify, best effort. */
void gh_uptls_close(gh_upconn_t *u);
/* From the close callback: frees u->tls. */
void gh_uptls_free(gh_upconn_t *u);
/* The reason a handshake or the record layer failed, or NULL. */
const char *gh_uptls_why(const gh_upconn_t *u);
/* From gh_pool_dispose: the cached session. */
void gh_uptls_pool_dispose(gh_pool_t *p);

/* router.c */
extern const gh_filter_type_t gh_router_filter;
void gh_router_connected(gh_stream_t *s, int status);
void gh_router_on_read(gh_stream_t *s, ssize_t nread);
void gh_router_wrote(gh_stream_t *s, int status);
void gh_router_timeout(gh_stream_t *s);
void gh_router_client_drained(gh_stream_t *s);
void gh_router_request_sent(gh_stream_t *s);
/* A waiting stream's turn (its pool has room now), or its wait expired. */
void gh_router_dispatch(gh_stream_t *s);
void gh_router_wait_expired(gh_stream_t *s);

/* callout.c: the events of a connection a callout owns (upstream.c). */
void gh_callout_on_connect(struct gh_callout_s *c, int status);
void gh_callout_on_read(struct gh_callout_s *c, ssize_t nread);
void gh_callout_on_write(struct gh_callout_s *c, int status);
/* The connection's own deadline fired: its connect_timeout. */
void gh_callout_on_timer(struct gh_callout_s *c);

/* observe.c */
void gh_observe_set_tracer(gh_trace_exporter_t *e);
gh_trace_exporter_t *gh_observe_tracer(void);
void gh_observe_start(gh_stream_t *s);
void gh_observe_end(gh_stream_t *s);
/* A request answered while its head was read (refused, or timed out): one
 * access-log line with what is known (conn.c). */
void gh_observe_refused(gh_conn_t *c, int status, const char *error);
int gh_listener_port(const gh_listener_conf_t *l);

/* reply.c */
/* Returns a heap buffer (caller frees) holding a whole response. */
char *gh_reply_error_build(int status, const char *code, const char *detail, int close,
                           int head_only, size_t *len);
char *gh_reply_error_build_with(int status, const char *code, const char *detail, const char *extra,
                                int close, int head_only, size_t *len);
/* The same with more string members in the JSON body after "detail":
 * members[0..2n) as name, value pairs, escaped here. */
char *gh_reply_error_build_members(int status, const char *code, const char *detail,
                                   const char *const *members, size_t n, const char *extra,
                                   int close, int head_only, size_t *len);
const char *gh_status_reason(int status);

#endif
