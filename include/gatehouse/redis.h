/*
 * Redis client: an asynchronous client for one libuv loop (a worker's, or
 * the main thread's), a synchronous one for the main thread, the CLI and
 * the admin API, and the fleet rate-limit decision built on them.
 *
 * Built on hiredis (Debian's libhiredis 0.14). The async client keeps a
 * small pool of connections, each with a connect and handshake timeout
 * (AUTH, SELECT, PING), and reconnects with bounded, jittered backoff when
 * the server goes away. Commands never wait for a connection: when the
 * client is closing, every connection is down, or max_pending commands are
 * in flight already, the call fails at once with an error and its callback
 * never runs. Every accepted command gets its callback exactly once, on
 * the client's loop: the reply, a timeout, a lost connection or the
 * client's shutdown; or never, once cancelled. A command that times out
 * closes its connection (Redis answers in order: every command behind it
 * there is at least as late), which reconnects. docs/redis.md has the
 * whole behaviour.
 *
 * Status codes (the callbacks' status, the calls' returns) are 0 or a
 * negative errno:
 *   -ESHUTDOWN   the client is closing (gh_redis_close)
 *   -EAGAIN      max_pending commands are in flight already (refused)
 *   -ENOTCONN    no connection is up (refused)
 *   -ENOMEM      out of memory (refused)
 *   -EINVAL      bad arguments (refused)
 *   -ETIMEDOUT   no reply within command_timeout_ms
 *   -ECONNRESET  the connection closed before the reply (the server went
 *                away, or a command before this one on it timed out)
 *   -EPROTO      (limit decisions) an error reply or a reply of the wrong
 *                shape
 * A reply that is a Redis error (REDIS_REPLY_ERROR) comes with status 0:
 * the server answered.
 *
 * Not thread-safe: an async client belongs to its loop's thread, a sync
 * client to one thread at a time. gh_redis_stats may be read from any
 * thread.
 */
#ifndef GATEHOUSE_REDIS_H
#define GATEHOUSE_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisReply; /* <hiredis/hiredis.h>: include it to read a reply */

/* Zero fields take the defaults. Strings are copied. */
typedef struct {
    const char *host;            /* an IPv4 or IPv6 address, or "localhost" (127.0.0.1);
                                    never a name to look up: that would block the loop */
    uint16_t port;               /* 6379 */
    const char *unix_path;       /* a Unix socket instead of host and port */
    const char *username;        /* ACL user (Redis 6+), sent with password */
    const char *password;        /* AUTH on every connection; NULL: none */
    unsigned db;                 /* SELECT on every connection; 0: none */
    const char *prefix;          /* put before every key; NULL: none (at most 256 bytes) */
    unsigned pool_size;          /* connections: 2 (1 .. 64; the sync client has one) */
    unsigned max_pending;        /* commands in flight over the pool: 1024 */
    uint64_t connect_timeout_ms; /* TCP connect plus handshake: 1000 */
    uint64_t command_timeout_ms; /* 1000 */
    uint64_t backoff_min_ms;     /* first reconnect delay: 100 */
    uint64_t backoff_max_ms;     /* longest reconnect delay: 5000 */
} gh_redis_opts_t;

/* Counters for /metrics; connected is a gauge. */
typedef struct {
    uint64_t commands;   /* accepted */
    uint64_t refused;    /* failed fast: closing, queue full, no connection */
    uint64_t errors;     /* ended by a lost connection or an error reply */
    uint64_t timeouts;   /* ended by the command timeout */
    uint64_t reconnects; /* connection attempts after the first of each connection */
    uint64_t connected;  /* connections ready now */
} gh_redis_stats_t;

/* A Lua script, run with EVALSHA; when the server does not know it
 * (NOSCRIPT: restarted, SCRIPT FLUSH), the same call is sent again as EVAL,
 * which also loads it. NOSCRIPT means nothing ran, so one decision is
 * never made twice. text is borrowed: a string constant. */
typedef struct {
    const char *text;
    char sha1[41];
} gh_redis_script_t;

void gh_redis_script_init(gh_redis_script_t *s, const char *text);

/* ---- async client (one loop) ---- */

typedef struct gh_redis_s gh_redis_t;
typedef struct gh_redis_cmd_s gh_redis_cmd_t;

/* status 0: reply (borrowed, valid during the call) is the server's answer,
 * maybe an error reply; otherwise reply is NULL. */
typedef void (*gh_redis_cb)(int status, const struct redisReply *reply, void *arg);

/* On the loop's thread. Starts connecting at once. NULL on bad options (a
 * reason in err) or out of memory. */
gh_redis_t *gh_redis_new(uv_loop_t *loop, const gh_redis_opts_t *opts, char *err, size_t errcap);

/* Closes the client, once: every pending command's callback runs now with
 * -ESHUTDOWN, connections are closed, and the memory is freed in the close
 * callbacks of its handles, so run the loop after it (as for a uv handle).
 * Also safe after the loop's owner closed every handle of the loop with a
 * uv_walk and ran it to the end (a worker's teardown, where per-worker
 * state is destroyed on the main thread): then it frees at once, and the
 * pending callbacks run in this call, on the calling thread. May be called
 * from one of the client's callbacks. */
void gh_redis_close(gh_redis_t *c);

/* Sends argv[0..argc) (binary-safe, lens[i] bytes each). Argument i
 * (i < 32) with bit i of keys set is a key: the prefix goes before it.
 * Returns 0 (cb runs later, exactly once, unless cancelled) or a negative
 * errno (cb never runs). *cmd (may be NULL) gets a handle for
 * gh_redis_cancel, valid until cb runs. */
int gh_redis_command(gh_redis_t *c, int argc, const char *const *argv, const size_t *lens,
                     uint32_t keys, gh_redis_cb cb, void *arg, gh_redis_cmd_t **cmd);

/* Runs a script: argv holds its nkeys keys (prefixed) then its arguments. */
int gh_redis_eval(gh_redis_t *c, const gh_redis_script_t *s, int nkeys, int argc,
                  const char *const *argv, const size_t *lens, gh_redis_cb cb, void *arg,
                  gh_redis_cmd_t **cmd);

/* The callback will not run (a stream whose filter waited ended). The
 * command stays in flight until its reply, which is dropped, or its
 * deadline: it still counts against max_pending. Only before cb ran. */
void gh_redis_cancel(gh_redis_cmd_t *cmd);

/* Any thread. */
void gh_redis_stats(const gh_redis_t *c, gh_redis_stats_t *out);

/* ---- sync client (one thread at a time; blocks for at most the timeouts) ---- */

typedef struct gh_redis_sync_s gh_redis_sync_t;

/* Does not connect: the first command does. NULL on bad options (err). */
gh_redis_sync_t *gh_redis_sync_new(const gh_redis_opts_t *opts, char *err, size_t errcap);
void gh_redis_sync_free(gh_redis_sync_t *s);

/* Connects first when needed; after a failed connect, calls within the
 * backoff delay fail at once with -ENOTCONN. 0 and *reply (free it with
 * gh_redis_reply_free), or a negative errno. */
int gh_redis_sync_command(gh_redis_sync_t *s, int argc, const char *const *argv, const size_t *lens,
                          uint32_t keys, struct redisReply **reply);
int gh_redis_sync_eval(gh_redis_sync_t *s, const gh_redis_script_t *script, int nkeys, int argc,
                       const char *const *argv, const size_t *lens, struct redisReply **reply);
void gh_redis_sync_stats(const gh_redis_sync_t *s, gh_redis_stats_t *out);
void gh_redis_reply_free(struct redisReply *reply);

/* ---- fleet rate limits: one atomic script per decision ---- */

typedef enum {
    GH_REDIS_LIMIT_BUCKET = 0, /* token bucket: burst limit, refilled rate per period_ms */
    GH_REDIS_LIMIT_WINDOW,     /* limit per fixed window of period_ms, starting at offset_ms */
    GH_REDIS_LIMIT_MONTH,      /* limit per calendar month (UTC), starting offset_ms late */
} gh_redis_limit_kind_t;

typedef struct {
    gh_redis_limit_kind_t kind;
    uint64_t limit;     /* bucket: capacity (burst); windows: units per window */
    uint64_t rate;      /* bucket: units added per period_ms */
    uint64_t period_ms; /* bucket: refill period; window: its length */
    int64_t offset_ms;  /* windows: boundaries at k * period_ms + offset_ms (month: month
                           starts + offset_ms), e.g. a day starting at 06:00 UTC */
} gh_redis_limit_t;

#define GH_REDIS_NEVER UINT64_MAX

typedef struct {
    int allowed;             /* 1: cost was taken */
    uint64_t remaining;      /* units left after this decision */
    uint64_t reset_ms;       /* bucket: until full again; windows: until the window ends */
    uint64_t retry_after_ms; /* 0 when allowed; GH_REDIS_NEVER when cost > limit */
    uint64_t next_ms;        /* bucket: until the next whole unit is back (0: full);
                                windows: as reset_ms */
    uint64_t now_ms;         /* the time the decision used (unix ms) */
} gh_redis_limit_result_t;

/* 0, or -EINVAL when the numbers do not fit the script's exact integer
 * arithmetic (limit * period_ms, rate and limit at most 2^52; non-zero
 * limit, rate, period). */
int gh_redis_limit_check(const gh_redis_limit_t *lim);

/* A store address, "host:port" or "[v6]:port", into what the clients take:
 * *port, and host as an IP address or "localhost" (a name is looked up
 * here, on the main thread or in the CLI: a worker loop never waits on
 * DNS; with GH_CONFIG_NO_DNS set, a name is refused). Returns 0, -EINVAL
 * (malformed, or a name under GH_CONFIG_NO_DNS) or -EIO (the lookup
 * failed), with a sentence in err. */
int gh_redis_resolve(const char *address, char *host, size_t host_cap, uint16_t *port, char *err,
                     size_t err_cap);

/* status 0: res is the decision; otherwise res is NULL. */
typedef void (*gh_redis_limit_cb)(int status, const gh_redis_limit_result_t *res, void *arg);

/* Takes cost units from the limit named key (prefixed; windows add the
 * window's start). now_ms 0: the Redis server's clock (TIME), the fleet's
 * one clock; otherwise the caller's clock (tests, or a fleet with
 * synchronised clocks). Returns as gh_redis_command. */
int gh_redis_limit_take(gh_redis_t *c, const char *key, size_t key_len, const gh_redis_limit_t *lim,
                        uint64_t cost, uint64_t now_ms, gh_redis_limit_cb cb, void *arg,
                        gh_redis_cmd_t **cmd);
int gh_redis_sync_limit_take(gh_redis_sync_t *s, const char *key, size_t key_len,
                             const gh_redis_limit_t *lim, uint64_t cost, uint64_t now_ms,
                             gh_redis_limit_result_t *res);

/* Several limits in one decision (a plan's throttle and quota; a route's
 * per-second and per-hour limits): cost is taken from every one when all
 * allow it, from none otherwise. Keys must differ. */
#define GH_REDIS_LIMITS_MAX 8

typedef struct {
    const char *key; /* borrowed for the call */
    size_t key_len;
    gh_redis_limit_t lim;
} gh_redis_limit_key_t;

/* status 0: allowed (1: taken from all), and res[0..n) each limit's own
 * view: res[i].allowed whether it alone would allow, remaining after the
 * decision, retry_after_ms when it refuses (the request may go once the
 * largest has passed). Otherwise allowed 0 and res NULL. */
typedef void (*gh_redis_limits_cb)(int status, int allowed, const gh_redis_limit_result_t *res,
                                   size_t n, void *arg);

int gh_redis_limits_take(gh_redis_t *c, const gh_redis_limit_key_t *keys, size_t n, uint64_t cost,
                         uint64_t now_ms, gh_redis_limits_cb cb, void *arg, gh_redis_cmd_t **cmd);
int gh_redis_sync_limits_take(gh_redis_sync_t *s, const gh_redis_limit_key_t *keys, size_t n,
                              uint64_t cost, uint64_t now_ms, int *allowed,
                              gh_redis_limit_result_t *res);

/* ---- metrics ---- */

void gh_redis_stats_add(gh_redis_stats_t *sum, const gh_redis_stats_t *s);
/* Prometheus lines for n clients (names[i]: the client label, a config
 * name) into buf[0..cap); returns the length it needs (as snprintf). */
size_t gh_redis_metrics_format(char *buf, size_t cap, const char *const *names,
                               const gh_redis_stats_t *stats, size_t n);

#endif
