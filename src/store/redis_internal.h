/* Shared by the Redis clients (src/store/redis.c async, redis_sync.c) and
 * the rate-limit script (redis_limit.c): options, the request encoder,
 * counters. Not a public interface. */
#ifndef GATEHOUSE_STORE_REDIS_INTERNAL_H
#define GATEHOUSE_STORE_REDIS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/redis.h>

#define REDIS_PREFIX_MAX 256
#define REDIS_POOL_MAX 64
#define REDIS_PENDING_MAX (1u << 20)
/* Unparsed reply bytes a connection may hold; past it the connection is
 * dropped. The server is trusted, but nothing grows without a cap. */
#define REDIS_READ_MAX ((size_t)64 << 20)

/* Options, validated and copied, defaults applied. */
typedef struct {
    char *host; /* NULL with unix_path */
    uint16_t port;
    char *unix_path;
    char *username;
    char *password;
    unsigned db;
    char *prefix;
    size_t prefix_len;
    unsigned pool_size;
    unsigned max_pending;
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
    uint64_t backoff_min_ms;
    uint64_t backoff_max_ms;
    char where[128]; /* host:port or unix:path, for logs */
} redis_conf_t;

int redis_conf_init(redis_conf_t *rc, const gh_redis_opts_t *o, char *err, size_t errcap);
void redis_conf_dispose(redis_conf_t *rc);

/* A request in RESP (arrays of bulk strings), built in a buffer that
 * starts inline and grows on the heap. It always ends with a NUL byte past
 * len: hiredis 0.14 peeks one byte past a command's first argument. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
    int oom;
    char inl[512];
} redis_buf_t;

void redis_buf_init(redis_buf_t *b);
void redis_buf_dispose(redis_buf_t *b);
void redis_buf_count(redis_buf_t *b, size_t n);
void redis_buf_arg(redis_buf_t *b, const char *pfx, size_t pfx_len, const char *a, size_t len);
void redis_buf_raw(redis_buf_t *b, const char *a, size_t len);

/* A command; argument i with bit i of keys set gets the prefix. 0 or
 * -EINVAL / -ENOMEM. */
int redis_format(redis_buf_t *b, const redis_conf_t *rc, int argc, const char *const *argv,
                 const size_t *lens, uint32_t keys);
/* The arguments of EVAL/EVALSHA after the script: numkeys, the keys
 * (prefixed), the other arguments. */
int redis_format_script_tail(redis_buf_t *b, const redis_conf_t *rc, int nkeys, int argc,
                             const char *const *argv, const size_t *lens);
/* EVALSHA sha (use_text 0) or EVAL text, then tail (tail_argc arguments). */
int redis_format_script(redis_buf_t *b, const gh_redis_script_t *s, int use_text, const char *tail,
                        size_t tail_len, int tail_argc);
/* The handshake of a new connection: [AUTH] [SELECT] PING; *n gets the
 * number of commands, ends[i] where command i ends in b. */
#define REDIS_HANDSHAKE_MAX 3
int redis_format_handshake(redis_buf_t *b, const redis_conf_t *rc, size_t *ends, int *n);

/* 1 when reply is a NOSCRIPT error. */
int redis_reply_is_noscript(const struct redisReply *r);

/* The limit script, its arguments and its reply. */
const gh_redis_script_t *redis_limit_script(void);
#define REDIS_LIMIT_ARGS_MAX (2 + 6 * GH_REDIS_LIMITS_MAX)
typedef struct {
    const char *argv[REDIS_LIMIT_ARGS_MAX]; /* the keys, then the script's arguments */
    size_t lens[REDIS_LIMIT_ARGS_MAX];
    char num[REDIS_LIMIT_ARGS_MAX][24];
    char kind[GH_REDIS_LIMITS_MAX][2];
    size_t n; /* limits: the number of keys */
    int argc;
} redis_limit_args_t;
int redis_limit_args(redis_limit_args_t *a, const gh_redis_limit_key_t *keys, size_t n,
                     uint64_t cost, uint64_t now_ms);
/* *allowed (all of them) and res[0..n). 0 or -EPROTO. */
int redis_limit_parse(const struct redisReply *r, int *allowed, gh_redis_limit_result_t *res,
                      size_t n);

/* Counters: one writer (the client's thread), readers anywhere. */
#define REDIS_STAT_ADD(st, field, n)                                                               \
    __atomic_store_n(&(st)->field, __atomic_load_n(&(st)->field, __ATOMIC_RELAXED) + (n),          \
                     __ATOMIC_RELAXED)
void redis_stats_read(const gh_redis_stats_t *st, gh_redis_stats_t *out);

#endif
