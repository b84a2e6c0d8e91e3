/*
 * The Redis backend of the store: keys, revocations and usage counts that
 * every gatehouse in front of one Redis shares (docs/internals/store.md#redis
 * has the data model).
 *
 * - Every write that SQLite does in one transaction is one Lua script here,
 *   which Redis runs atomically: insert (refused when the id is taken),
 *   revoke (once), rotate (the old key checked and marked, the new one
 *   inserted), import (every row checked, then all written or none), and
 *   each batch of usage counts. The async client refuses MULTI by design
 *   (pooled connections), and a script needs no WATCH retry loop.
 * - The synchronous hooks (CLI, admin API, the usage writes on the thread
 *   pool) use blocking clients, each behind a mutex; lookups from workers
 *   use an async client per worker loop (redis_lookup.c).
 * - Redis down or slow: every call returns within its timeouts, with -EIO
 *   and a sentence saying what happened; opening does not need Redis, so
 *   a server starts (and answers 503 on key routes) while Redis is down,
 *   and recovers when it is back.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include <gatehouse/log.h>

#include "store/redis_store.h"

#define SCHEMA_VERSION "1"
#define SYNC_TIMEOUT_MIN_MS 1000u /* the CLI's and the admin API's quick calls */
#define BULK_TIMEOUT_MS 10000u    /* list, import, usage: scripts over many keys */
#define CONNECT_TIMEOUT_MIN_MS 1000u
#define LIST_CHUNK 1000         /* records per call when listing every key */
#define IMPORT_MAX_ROWS 100000u /* rows in one import (one script) */
#define WRITER_TTL_S "86400"    /* how long a writer's last batch number is kept */
#define USAGE_MAX "9223372036854775807"

const char *const gh_rs_fields[RF_COUNT] = {
    "hash",   "consumer",   "plan",       "scopes",     "description", "enabled",
    "source", "created_at", "expires_at", "revoked_at", "grace_until", "replaced_by",
};

#define LUA_FIELDS                                                                                 \
    "'hash', 'consumer', 'plan', 'scopes', 'description', 'enabled', 'source', 'created_at', "     \
    "'expires_at', 'revoked_at', 'grace_until', 'replaced_by'"

/* ---- scripts ---- */

/* KEYS: key:ID, keys, consumer:C. ARGV: id, created_at, then the record's
 * field/value pairs. 0: the id is taken (nothing written); 1: inserted. */
static const char lua_insert[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                 "redis.call('HSET', KEYS[1], unpack(ARGV, 3))\n"
                                 "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
                                 "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
                                 "return 1\n";

/* KEYS: key:ID. ARGV: now. -1: no such key; 0: revoked before (the first
 * time stands); 1: revoked now. */
static const char lua_revoke[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
    "if redis.call('HSETNX', KEYS[1], 'revoked_at', ARGV[1]) == 0 then return 0 end\n"
    "return 1\n";

/* KEYS: key:OLD, key:NEW, keys, consumer:C. ARGV: grace_until, new id,
 * created_at, then the new record's field/value pairs. -1: the old key is
 * gone, revoked or rotated (nothing written); 0: the new id is taken
 * (nothing written); 1: done. */
static const char lua_rotate[] =
    "local old = redis.call('HMGET', KEYS[1], 'consumer', 'revoked_at', 'replaced_by')\n"
    "if not old[1] or old[2] or old[3] then return -1 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'replaced_by', ARGV[2], 'grace_until', ARGV[1])\n"
    "redis.call('HSET', KEYS[2], unpack(ARGV, 4))\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])\n"
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])\n"
    "return 1\n";

/* ARGV: prefix, now, dry run ('1'), then 6 per row: id, hash, consumer,
 * description, plan ('' for none), enabled. Every row is checked first
 * (against the store and the rows before it); only when none is refused
 * and it is not a dry run are they written. Returns {created, updated,
 * then a row index (from 0) and a code per refused row}: 1 the id is
 * another key's, 2 the key is revoked. */
static const char lua_import[] =
    "local P, now, dry = ARGV[1], ARGV[2], ARGV[3] == '1'\n"
    "local n = (#ARGV - 3) / 6\n"
    "local act, seen, res = {}, {}, {0, 0}\n"
    "for i = 0, n - 1 do\n"
    "  local b = 3 + i * 6\n"
    "  local id, h = ARGV[b + 1], ARGV[b + 2]\n"
    "  local have, code = seen[id], 0\n"
    "  if have == nil then\n"
    "    local k = P .. 'key:' .. id\n"
    "    if redis.call('EXISTS', k) == 1 then\n"
    "      local r = redis.call('HMGET', k, 'hash', 'revoked_at')\n"
    "      have = r[1] or ''\n"
    "      if have == h and r[2] then code = 2 end\n"
    "    end\n"
    "  end\n"
    "  if have ~= nil and have ~= h then code = 1 end\n"
    "  if code ~= 0 then\n"
    "    res[#res + 1] = i\n"
    "    res[#res + 1] = code\n"
    "  elseif have ~= nil then\n"
    "    act[i] = 'u'\n"
    "    res[2] = res[2] + 1\n"
    "  else\n"
    "    act[i] = 'c'\n"
    "    seen[id] = h\n"
    "    res[1] = res[1] + 1\n"
    "  end\n"
    "end\n"
    "if #res > 2 or dry then return res end\n"
    "for i = 0, n - 1 do\n"
    "  local b = 3 + i * 6\n"
    "  local id, h, c, d, p, e = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5],\n"
    "    ARGV[b + 6]\n"
    "  local k = P .. 'key:' .. id\n"
    "  if act[i] == 'c' then\n"
    "    redis.call('HSET', k, 'hash', h, 'consumer', c, 'scopes', '', 'description', d,\n"
    "      'enabled', e, 'source', 'aws-import', 'created_at', now)\n"
    "    if p ~= '' then redis.call('HSET', k, 'plan', p) end\n"
    "    redis.call('ZADD', P .. 'keys', now, id)\n"
    "    redis.call('ZADD', P .. 'consumer:' .. c, now, id)\n"
    "  else\n"
    "    local old = redis.call('HMGET', k, 'consumer', 'created_at')\n"
    "    if old[1] ~= c then\n"
    "      if old[1] then redis.call('ZREM', P .. 'consumer:' .. old[1], id) end\n"
    "      redis.call('ZADD', P .. 'consumer:' .. c, old[2] or now, id)\n"
    "    end\n"
    "    redis.call('HSET', k, 'consumer', c, 'description', d, 'enabled', e)\n"
    "    if p ~= '' then redis.call('HSET', k, 'plan', p) else redis.call('HDEL', k, 'plan') end\n"
    "  end\n"
    "end\n"
    "return res\n";

/* KEYS: a sorted set of ids (keys, or consumer:C). ARGV: prefix, the last
 * id of the chunk before ('' for the first), how many (-1: all). Returns
 * per id the id and its RF_COUNT fields. The cursor is an id, not an
 * offset: a key made meanwhile with an earlier created_at moves every
 * offset, never the ids after the last one returned. */
static const char lua_list[] =
    "local start = 0\n"
    "if ARGV[2] ~= '' then\n"
    "  local r = redis.call('ZRANK', KEYS[1], ARGV[2])\n"
    "  if not r then return redis.error_reply('ERR the listing lost its place') end\n"
    "  start = r + 1\n"
    "end\n"
    "local stop = -1\n"
    "if ARGV[3] ~= '-1' then stop = start + tonumber(ARGV[3]) - 1 end\n"
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], start, stop)) do\n"
    "  out[#out + 1] = id\n"
    "  local f = redis.call('HMGET', ARGV[1] .. 'key:' .. id, " LUA_FIELDS ")\n"
    "  for j = 1, 12 do out[#out + 1] = f[j] end\n"
    "end\n"
    "return out\n";

/* KEYS: the writer's key, then usage:ID per count. ARGV: the batch's
 * number, then the days, then the counts. A batch numbered at most the
 * writer's last is one sent before whose reply was lost: applied already,
 * so skipped (0). Counts add up to at most 2^63 - 1. */
static const char lua_usage[] =
    "local last = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tonumber(ARGV[1]) <= last then return 0 end\n"
    "local n = #KEYS - 1\n"
    "for i = 1, n do\n"
    "  local r = redis.pcall('HINCRBY', KEYS[i + 1], ARGV[i + 1], ARGV[n + i + 1])\n"
    "  if type(r) == 'table' and r.err then\n"
    "    redis.call('HSET', KEYS[i + 1], ARGV[i + 1], '" USAGE_MAX "')\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', " WRITER_TTL_S ")\n"
    "return 1\n";

static gh_redis_script_t s_insert, s_revoke, s_rotate, s_import, s_list, s_usage;
static uv_once_t scripts_once = UV_ONCE_INIT;

static void scripts_init(void)
{
    gh_rs_clients_scripts_init();
    gh_redis_script_init(&s_insert, lua_insert);
    gh_redis_script_init(&s_revoke, lua_revoke);
    gh_redis_script_init(&s_rotate, lua_rotate);
    gh_redis_script_init(&s_import, lua_import);
    gh_redis_script_init(&s_list, lua_list);
    gh_redis_script_init(&s_usage, lua_usage);
}

/* ---- arguments ---- */

typedef gh_rs_args_t args_t;

static void args_dispose(args_t *a)
{
    for (size_t i = 0; i < a->num_own; i++)
        free(a->own[i]);
    free(a->own);
    free(a->v);
    free(a->lens);
    memset(a, 0, sizeof(*a));
}

static int args_grow(args_t *a)
{
    if (a->n < a->cap)
        return 0;
    size_t cap = a->cap ? a->cap * 2 : 32;
    const char **v = realloc(a->v, cap * sizeof(*v));
    if (v != NULL)
        a->v = v;
    size_t *l = realloc(a->lens, cap * sizeof(*l));
    if (l != NULL)
        a->lens = l;
    char **o = realloc(a->own, cap * sizeof(*o));
    if (o != NULL)
        a->own = o;
    if (v == NULL || l == NULL || o == NULL) {
        a->oom = 1;
        return -1;
    }
    a->cap = cap;
    return 0;
}

/* Borrowed: s must outlive the call. */
static void arg(args_t *a, const char *s, size_t len)
{
    if (a->oom || args_grow(a) != 0)
        return;
    a->v[a->n] = s;
    a->lens[a->n++] = len;
}

static void arg_str(args_t *a, const char *s)
{
    arg(a, s, strlen(s));
}

static void arg_fmt(args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void arg_fmt(args_t *a, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->oom = 1;
        return;
    }
    if (a->oom || args_grow(a) != 0) {
        free(s);
        return;
    }
    a->own[a->num_own++] = s;
    a->v[a->n] = s;
    a->lens[a->n++] = (size_t)n;
}

static void hex32(const uint8_t *h, char out[2 * GH_APIKEY_HASH_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < GH_APIKEY_HASH_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * GH_APIKEY_HASH_LEN] = '\0';
}

/* The field/value pairs of a new record (hash_hex and k borrowed). */
static void args_record(args_t *a, const gh_apikey_t *k, const char *hash_hex)
{
    arg_str(a, "hash");
    arg_str(a, hash_hex);
    arg_str(a, "consumer");
    arg_str(a, k->consumer);
    if (k->plan != NULL) {
        arg_str(a, "plan");
        arg_str(a, k->plan);
    }
    arg_str(a, "scopes");
    arg_str(a, k->scopes ? k->scopes : "");
    arg_str(a, "description");
    arg_str(a, k->description ? k->description : "");
    arg_str(a, "enabled");
    arg_str(a, k->enabled ? "1" : "0");
    arg_str(a, "source");
    arg_str(a, k->source == GH_APIKEY_IMPORTED ? "aws-import" : "generated");
    arg_str(a, "created_at");
    arg_fmt(a, "%lld", (long long)k->created_at);
    const struct {
        const char *name;
        int64_t v;
    } opt[] = {{"expires_at", k->expires_at},
               {"revoked_at", k->revoked_at},
               {"grace_until", k->grace_until}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        if (opt[i].v != 0) {
            arg_str(a, opt[i].name);
            arg_fmt(a, "%lld", (long long)opt[i].v);
        }
    if (k->replaced_by[0] != '\0') {
        arg_str(a, "replaced_by");
        arg_str(a, k->replaced_by);
    }
}

/* ---- records ---- */

static int parse_i64(const struct redisReply *r, int64_t *out)
{
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > 20)
        return -1;
    char buf[24];
    memcpy(buf, r->str, r->len);
    buf[r->len] = '\0';
    const char *p = buf;
    int neg = *p == '-';
    if (neg)
        p++;
    if (*p == '\0' || (*p == '0' && p[1] != '\0'))
        return -1;
    uint64_t v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int is_nil(const struct redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_NIL;
}

/* A string field as a new NUL-terminated string; NULL when nil (*bad
 * set if it is not a string, or holds a NUL byte). */
static char *field_dup(const struct redisReply *r, int *bad, int *oom)
{
    if (is_nil(r))
        return NULL;
    if (r->type != REDIS_REPLY_STRING || memchr(r->str, '\0', r->len) != NULL) {
        *bad = 1;
        return NULL;
    }
    char *s = malloc(r->len + 1);
    if (s == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
    return s;
}

/* An optional time: 0 when absent. */
static int field_time(const struct redisReply *r, int64_t *out)
{
    *out = 0;
    if (is_nil(r))
        return 0;
    return parse_i64(r, out) == 0 && *out != 0 ? 0 : -1;
}

int gh_rs_record(struct redisReply *const *el, const char *id, gh_apikey_t *out, uint8_t *hash,
                 const char **why)
{
    int bad = 0, oom = 0;
    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (is_nil(el[RF_CONSUMER]))
        return -ENOENT;
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->consumer = field_dup(el[RF_CONSUMER], &bad, &oom);
    out->plan = field_dup(el[RF_PLAN], &bad, &oom);
    out->scopes = field_dup(el[RF_SCOPES], &bad, &oom);
    out->description = field_dup(el[RF_DESCRIPTION], &bad, &oom);
    if (oom) {
        gh_apikey_dispose(out);
        return -ENOMEM;
    }
    /* Absent text fields read as empty, as SQLite's defaults. */
    if (!bad && out->scopes == NULL && (out->scopes = strdup("")) == NULL)
        oom = 1;
    if (!bad && !oom && out->description == NULL && (out->description = strdup("")) == NULL)
        oom = 1;
    if (oom) {
        gh_apikey_dispose(out);
        return -ENOMEM;
    }
    /* Every field that decides whether a key is accepted is read strictly:
     * a revoked_at that does not parse must not read as "not revoked". */
    const struct redisReply *en = el[RF_ENABLED], *src = el[RF_SOURCE], *rb = el[RF_REPLACED_BY];
    if (bad)
        *why = "a text field is not a string";
    else if (is_nil(en) || en->type != REDIS_REPLY_STRING || en->len != 1 ||
             (en->str[0] != '0' && en->str[0] != '1'))
        *why = "enabled is not 0 or 1";
    else if (is_nil(src) || src->type != REDIS_REPLY_STRING)
        *why = "source is missing";
    else if (is_nil(el[RF_CREATED_AT]) || parse_i64(el[RF_CREATED_AT], &out->created_at) != 0)
        *why = "created_at is not a number";
    else if (field_time(el[RF_EXPIRES_AT], &out->expires_at) != 0)
        *why = "expires_at is not a number";
    else if (field_time(el[RF_REVOKED_AT], &out->revoked_at) != 0)
        *why = "revoked_at is not a number";
    else if (field_time(el[RF_GRACE_UNTIL], &out->grace_until) != 0)
        *why = "grace_until is not a number";
    else if (!is_nil(rb) && (rb->type != REDIS_REPLY_STRING || rb->len != GH_APIKEY_ID_LEN))
        *why = "replaced_by is not a key id";
    if (*why != NULL) {
        gh_apikey_dispose(out);
        return -EIO;
    }
    out->enabled = en->str[0] == '1';
    out->source = src->len == 10 && memcmp(src->str, "aws-import", 10) == 0 ? GH_APIKEY_IMPORTED
                                                                            : GH_APIKEY_GENERATED;
    if (!is_nil(rb)) {
        memcpy(out->replaced_by, rb->str, GH_APIKEY_ID_LEN);
        out->replaced_by[GH_APIKEY_ID_LEN] = '\0';
    }
    if (hash != NULL) {
        const struct redisReply *h = el[RF_HASH];
        memset(hash, 0, GH_APIKEY_HASH_LEN);
        if (!is_nil(h) && h->type == REDIS_REPLY_STRING && h->len == 2 * GH_APIKEY_HASH_LEN) {
            uint8_t tmp[GH_APIKEY_HASH_LEN];
            int ok = 1;
            for (size_t i = 0; i < GH_APIKEY_HASH_LEN && ok; i++) {
                int hi = unhex(h->str[2 * i]), lo = unhex(h->str[2 * i + 1]);
                ok = hi >= 0 && lo >= 0;
                tmp[i] = (uint8_t)(hi << 4 | (lo & 15));
            }
            if (ok)
                memcpy(hash, tmp, sizeof(tmp)); /* otherwise zeros: no key matches */
        }
    }
    return 0;
}

/* ---- calls ---- */

static gh_rs_t *impl(gh_store_t *st)
{
    return st->impl;
}

/* The sentence for a failed call (rc from the client, or an answer that
 * is an error or of the wrong shape). Returns -EIO, or -ENOMEM. */
static int io_fail(gh_store_t *st, gh_store_error_t *err, const char *what, int rc,
                   const struct redisReply *r, uint64_t timeout_ms)
{
    const char *d = gh_store_describe(st);
    switch (rc) {
    case 0:
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            return gh_store_fail(err, -EIO, "%s: %s: Redis answered: %.*s", d, what,
                                 (int)(r->len < 160 ? r->len : 160), r->str ? r->str : "");
        return gh_store_fail(err, -EIO, "%s: %s: unexpected answer from Redis", d, what);
    case -ENOMEM:
        return gh_store_fail(err, -ENOMEM, "out of memory");
    case -ENOTCONN:
        return gh_store_fail(err, -EIO,
                             "%s: %s: cannot connect to Redis (down, refused or not answering; "
                             "the log says more)",
                             d, what);
    case -ETIMEDOUT:
        return gh_store_fail(err, -EIO, "%s: %s: no answer from Redis within %llu ms", d, what,
                             (unsigned long long)timeout_ms);
    case -ECONNRESET:
        return gh_store_fail(err, -EIO, "%s: %s: the connection to Redis broke before its answer",
                             d, what);
    default:
        return gh_store_fail(err, -EIO, "%s: %s: Redis call failed: %s", d, what, strerror(-rc));
    }
}

/* 1 when a failed call may have run on the server anyway (sent, then no
 * answer), so that sending it again could apply it twice. */
static int ambiguous(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECONNRESET;
}

static uint64_t sync_timeout(const gh_rs_t *q)
{
    return q->opts.command_timeout_ms > SYNC_TIMEOUT_MIN_MS ? q->opts.command_timeout_ms
                                                            : SYNC_TIMEOUT_MIN_MS;
}

static uint64_t bulk_timeout(const gh_rs_t *q)
{
    return q->opts.command_timeout_ms > BULK_TIMEOUT_MS ? q->opts.command_timeout_ms
                                                        : BULK_TIMEOUT_MS;
}

/* A command with its key at argument 1, on the quick client. */
static int quick_cmd(gh_store_t *st, const char *what, args_t *a, redisReply **r,
                     gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    *r = NULL;
    if (a->oom)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    uv_mutex_lock(&q->slock);
    int rc = gh_redis_sync_command(q->sync, (int)a->n, a->v, a->lens, 1u << 1, r);
    uv_mutex_unlock(&q->slock);
    if (rc == 0 && (*r)->type != REDIS_REPLY_ERROR)
        return 0;
    rc = io_fail(st, err, what, rc, *r, sync_timeout(q));
    gh_redis_reply_free(*r);
    *r = NULL;
    return rc;
}

/* A script on client c (locked by the caller); 0 and *r (not an error
 * answer), or the failure (its errno in *raw when raw is not NULL). */
static int script_on(gh_store_t *st, gh_redis_sync_t *c, uint64_t timeout_ms,
                     const gh_redis_script_t *s, const char *what, int nkeys, args_t *a,
                     redisReply **r, int *raw, gh_store_error_t *err)
{
    *r = NULL;
    if (raw != NULL)
        *raw = 0;
    if (a->oom)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    int rc = gh_redis_sync_eval(c, s, nkeys, (int)a->n, a->v, a->lens, r);
    if (raw != NULL)
        *raw = rc;
    if (rc == 0 && (*r)->type != REDIS_REPLY_ERROR)
        return 0;
    rc = io_fail(st, err, what, rc, *r, timeout_ms);
    gh_redis_reply_free(*r);
    *r = NULL;
    return rc;
}

static int quick_script(gh_store_t *st, const gh_redis_script_t *s, const char *what, int nkeys,
                        args_t *a, redisReply **r, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    uv_mutex_lock(&q->slock);
    int rc = script_on(st, q->sync, sync_timeout(q), s, what, nkeys, a, r, NULL, err);
    uv_mutex_unlock(&q->slock);
    return rc;
}

static int want_int(gh_store_t *st, const char *what, redisReply *r, long long *v,
                    gh_store_error_t *err)
{
    if (r->type != REDIS_REPLY_INTEGER)
        return io_fail(st, err, what, 0, r, 0);
    *v = r->integer;
    return 0;
}

/* ---- opening ---- */

static void rs_free(gh_rs_t *q)
{
    gh_redis_sync_free(q->sync);
    gh_redis_sync_free(q->bulk);
    uv_mutex_destroy(&q->slock);
    uv_mutex_destroy(&q->block);
    free(q->prefix);
    free(q->doubt);
    free(q);
}

/* The prefix's schema marker: set when missing (with GH_STORE_CREATE),
 * checked when there. Redis unreachable: nothing to check now (a server
 * starts without its Redis and recovers when it is back). */
static int schema_check(gh_store_t *st, int create, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    const char *argv[] = {"GET", "schema"};
    size_t lens[] = {3, 6};
    redisReply *r = NULL;
    uv_mutex_lock(&q->slock);
    int rc = gh_redis_sync_command(q->sync, 2, argv, lens, 1u << 1, &r);
    if (rc != 0) {
        uv_mutex_unlock(&q->slock);
        GH_LOG(GH_LOG_WARN, "store", "%s: Redis is not reachable now (%s); using it when it is",
               gh_store_describe(st),
               rc == -ENOTCONN    ? "cannot connect"
               : rc == -ETIMEDOUT ? "no answer in time"
                                  : strerror(-rc));
        return 0;
    }
    if (r->type == REDIS_REPLY_NIL && create) {
        const char *set[] = {"SET", "schema", SCHEMA_VERSION, "NX"};
        size_t slens[] = {3, 6, 1, 2};
        redisReply *w = NULL;
        if (gh_redis_sync_command(q->sync, 4, set, slens, 1u << 1, &w) == 0)
            gh_redis_reply_free(w);
    }
    uv_mutex_unlock(&q->slock);
    rc = 0;
    if (r->type == REDIS_REPLY_STRING &&
        !(r->len == strlen(SCHEMA_VERSION) && memcmp(r->str, SCHEMA_VERSION, r->len) == 0)) {
        int64_t v;
        if (parse_i64(r, &v) == 0 && v > 1)
            rc = gh_store_fail(err, -EINVAL,
                               "%s: the store under this prefix has schema version %lld, newer "
                               "than this gatehouse's (" SCHEMA_VERSION ")",
                               gh_store_describe(st), (long long)v);
        else
            rc = gh_store_fail(err, -EINVAL,
                               "%s: the keys under this prefix are not a gatehouse store "
                               "(%sschema holds something else)",
                               gh_store_describe(st), q->prefix);
    } else if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) {
        rc = gh_store_fail(err, -EINVAL,
                           "%s: the keys under this prefix are not a gatehouse store (%sschema "
                           "is not a string)",
                           gh_store_describe(st), q->prefix);
    }
    gh_redis_reply_free(r);
    return rc;
}

static int rs_open(gh_store_t *st, int flags, gh_store_error_t *err)
{
    const gh_store_conf_t *c = &st->conf;
    char why[256] = "";
    uv_once(&scripts_once, scripts_init);
    gh_rs_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    if (uv_mutex_init(&q->slock) != 0) {
        free(q);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    if (uv_mutex_init(&q->block) != 0) {
        uv_mutex_destroy(&q->slock);
        free(q);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    char bad[256];
    int rc =
        gh_redis_resolve(c->address, q->host, sizeof(q->host), &q->opts.port, bad, sizeof(bad));
    if (rc != 0) {
        rc = gh_store_fail(err, rc, "%s", bad);
        goto fail;
    }
    if ((q->prefix = strdup(c->prefix ? c->prefix : "")) == NULL) {
        rc = gh_store_fail(err, -ENOMEM, "out of memory");
        goto fail;
    }
    q->connect_ms = c->timeout_ms > CONNECT_TIMEOUT_MIN_MS ? c->timeout_ms : CONNECT_TIMEOUT_MIN_MS;
    q->opts.host = q->host;
    q->opts.prefix = q->prefix;
    q->opts.pool_size = c->pool;
    q->opts.max_pending = c->max_pending;
    q->opts.connect_timeout_ms = q->connect_ms;
    q->opts.command_timeout_ms = c->timeout_ms;
    gh_redis_opts_t so = q->opts;
    so.command_timeout_ms = sync_timeout(q);
    gh_redis_opts_t bo = q->opts;
    bo.command_timeout_ms = bulk_timeout(q);
    if ((q->sync = gh_redis_sync_new(&so, why, sizeof(why))) == NULL ||
        (q->bulk = gh_redis_sync_new(&bo, why, sizeof(why))) == NULL) {
        rc = gh_store_fail(err, -EINVAL, "%s: %s", st->describe, why[0] ? why : "out of memory");
        goto fail;
    }
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        rc = gh_store_fail(err, -EIO, "the random generator failed");
        goto fail;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(q->writer + 2 * i, 3, "%02x", rnd[i]);
    st->impl = q;
    if ((rc = schema_check(st, flags & GH_STORE_CREATE, err)) != 0) {
        st->impl = NULL;
        goto fail;
    }
    return 0;
fail:
    rs_free(q);
    return rc;
}

static int usage_send(gh_store_t *st, const gh_store_usage_entry_t *e, size_t n, uint64_t seq,
                      int *raw, gh_store_error_t *err);

static void rs_close(gh_store_t *st)
{
    gh_rs_t *q = impl(st);
    gh_rs_forget_store(st);
    if (q->doubt != NULL) {
        gh_store_error_t err;
        int raw;
        if (usage_send(st, q->doubt, q->num_doubt, q->doubt_seq, &raw, &err) != 0)
            GH_LOG(GH_LOG_WARN, "store",
                   "%s: %zu usage counts whose write got no answer may be lost: %s",
                   gh_store_describe(st), q->num_doubt, err.msg);
    }
    rs_free(q);
    st->impl = NULL;
}

/* ---- keys ---- */

static int rs_key_insert(gh_store_t *st, const gh_apikey_t *k, const uint8_t *hash,
                         gh_store_error_t *err)
{
    char hex[2 * GH_APIKEY_HASH_LEN + 1];
    args_t a = {0};
    redisReply *r;
    long long v = 0;
    hex32(hash, hex);
    arg_fmt(&a, "key:%s", k->id);
    arg_str(&a, "keys");
    arg_fmt(&a, "consumer:%s", k->consumer);
    arg_str(&a, k->id);
    arg_fmt(&a, "%lld", (long long)k->created_at);
    args_record(&a, k, hex);
    int rc = quick_script(st, &s_insert, "insert", 3, &a, &r, err);
    args_dispose(&a);
    OPENSSL_cleanse(hex, sizeof(hex));
    if (rc == 0)
        rc = want_int(st, "insert", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EEXIST, "key %s exists", k->id);
    return rc;
}

static void hmget_args(args_t *a, const char *id)
{
    arg_str(a, "HMGET");
    arg_fmt(a, "key:%s", id);
    for (int i = 0; i < RF_COUNT; i++)
        arg_str(a, gh_rs_fields[i]);
}

static int record_fail(gh_store_t *st, gh_store_error_t *err, const char *id, int rc,
                       const char *why)
{
    if (rc == -ENOENT)
        return gh_store_fail(err, -ENOENT, "no key %s", id);
    if (rc == -ENOMEM)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    GH_LOG(GH_LOG_ERROR, "store", "%s: key %s: malformed record: %s", gh_store_describe(st), id,
           why);
    return gh_store_fail(err, -EIO, "%s: key %s: malformed record in Redis: %s",
                         gh_store_describe(st), id, why);
}

static int rs_key_get(gh_store_t *st, const char *id, gh_apikey_t *out, uint8_t *hash,
                      gh_store_error_t *err)
{
    args_t a = {0};
    redisReply *r;
    memset(out, 0, sizeof(*out));
    hmget_args(&a, id);
    int rc = quick_cmd(st, "get", &a, &r, err);
    args_dispose(&a);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != RF_COUNT) {
        rc = io_fail(st, err, "get", 0, r, 0);
    } else {
        const char *why;
        rc = gh_rs_record(r->element, id, out, hash, &why);
        if (rc != 0)
            rc = record_fail(st, err, id, rc, why);
    }
    gh_redis_reply_free(r);
    return rc;
}

/* Appends the records of a list script's answer to *all; *last gets the
 * last id. -EIO, -ENOMEM. */
static int list_take(gh_store_t *st, redisReply *r, const char *consumer, gh_apikey_t **all,
                     size_t *count, size_t *cap, char last[GH_APIKEY_ID_LEN + 1], size_t *got,
                     gh_store_error_t *err)
{
    const size_t per = 1 + RF_COUNT;
    *got = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % per != 0)
        return io_fail(st, err, "list", 0, r, 0);
    for (size_t i = 0; i < r->elements; i += per) {
        const redisReply *idr = r->element[i];
        char id[GH_APIKEY_ID_LEN + 1];
        if (idr->type != REDIS_REPLY_STRING || idr->len != GH_APIKEY_ID_LEN)
            return io_fail(st, err, "list", 0, r, 0);
        memcpy(id, idr->str, GH_APIKEY_ID_LEN);
        id[GH_APIKEY_ID_LEN] = '\0';
        memcpy(last, id, sizeof(id));
        (*got)++;
        if (*count == *cap) {
            size_t ncap = *cap ? *cap * 2 : 16;
            gh_apikey_t *nk = realloc(*all, ncap * sizeof(*nk));
            if (nk == NULL)
                return gh_store_fail(err, -ENOMEM, "out of memory");
            *all = nk;
            *cap = ncap;
        }
        const char *why;
        int rc = gh_rs_record(&r->element[i + 1], id, &(*all)[*count], NULL, &why);
        if (rc == -ENOENT)
            continue; /* listed, with no record: nothing to show */
        if (rc != 0)
            return record_fail(st, err, id, rc, why);
        /* The consumer's set is kept with its records by the scripts;
         * the record has the last word. */
        if (consumer != NULL && strcmp((*all)[*count].consumer, consumer) != 0) {
            gh_apikey_dispose(&(*all)[*count]);
            continue;
        }
        (*count)++;
    }
    return 0;
}

static int rs_key_list(gh_store_t *st, const char *consumer, gh_apikey_t **keys, size_t *n,
                       gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    gh_apikey_t *all = NULL;
    size_t count = 0, cap = 0, got;
    char last[GH_APIKEY_ID_LEN + 1] = "";
    int rc = 0;
    /* Every key: in chunks, so no answer grows with the store. A
     * consumer's keys: in one answer, since an import that moves a key to
     * another consumer takes it out of the set a cursor would rely on. */
    uv_mutex_lock(&q->block);
    do {
        args_t a = {0};
        redisReply *r;
        if (consumer != NULL)
            arg_fmt(&a, "consumer:%s", consumer);
        else
            arg_str(&a, "keys");
        arg_str(&a, q->prefix);
        arg_str(&a, consumer != NULL ? "" : last);
        if (consumer != NULL)
            arg_str(&a, "-1");
        else
            arg_fmt(&a, "%d", LIST_CHUNK);
        rc = script_on(st, q->bulk, bulk_timeout(q), &s_list, "list", 1, &a, &r, NULL, err);
        args_dispose(&a);
        if (rc == 0)
            rc = list_take(st, r, consumer, &all, &count, &cap, last, &got, err);
        gh_redis_reply_free(r);
    } while (rc == 0 && consumer == NULL && got == LIST_CHUNK);
    uv_mutex_unlock(&q->block);
    if (rc != 0) {
        gh_apikey_list_free(all, count);
        return rc;
    }
    *keys = all;
    *n = count;
    return 0;
}

static int rs_key_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    args_t a = {0};
    redisReply *r;
    long long v = 0;
    arg_fmt(&a, "key:%s", id);
    arg_fmt(&a, "%lld", (long long)now);
    int rc = quick_script(st, &s_revoke, "revoke", 1, &a, &r, err);
    args_dispose(&a);
    if (rc == 0)
        rc = want_int(st, "revoke", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v < 0)
        rc = gh_store_fail(err, -ENOENT, "no key %s", id);
    else if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EALREADY, "key %s was revoked before", id);
    return rc;
}

static int rs_key_rotate(gh_store_t *st, const char *old_id, int64_t grace_until,
                         const gh_apikey_t *nk, const uint8_t *hash, gh_store_error_t *err)
{
    char hex[2 * GH_APIKEY_HASH_LEN + 1];
    args_t a = {0};
    redisReply *r;
    long long v = 0;
    hex32(hash, hex);
    arg_fmt(&a, "key:%s", old_id);
    arg_fmt(&a, "key:%s", nk->id);
    arg_str(&a, "keys");
    arg_fmt(&a, "consumer:%s", nk->consumer);
    arg_fmt(&a, "%lld", (long long)grace_until);
    arg_str(&a, nk->id);
    arg_fmt(&a, "%lld", (long long)nk->created_at);
    args_record(&a, nk, hex);
    int rc = quick_script(st, &s_rotate, "rotate", 4, &a, &r, err);
    args_dispose(&a);
    OPENSSL_cleanse(hex, sizeof(hex));
    if (rc == 0)
        rc = want_int(st, "rotate", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v < 0)
        rc = -ESTALE;
    else if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EEXIST, "key %s exists", nk->id);
    return rc;
}

static int rs_key_import(gh_store_t *st, const gh_store_import_row_t *rows, size_t n, int64_t now,
                         int dry_run, gh_store_import_result_t *res, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    if (n > IMPORT_MAX_ROWS)
        return gh_store_fail(err, -EINVAL,
                             "a Redis store imports at most %u keys at once (one atomic "
                             "script); split the file",
                             IMPORT_MAX_ROWS);
    args_t a = {0};
    char *hexes = malloc(n * (2 * GH_APIKEY_HASH_LEN + 1));
    if (hexes == NULL)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    arg_str(&a, q->prefix);
    arg_fmt(&a, "%lld", (long long)now);
    arg_str(&a, dry_run ? "1" : "0");
    for (size_t i = 0; i < n; i++) {
        char *hex = hexes + i * (2 * GH_APIKEY_HASH_LEN + 1);
        hex32(rows[i].hash, hex);
        arg_str(&a, rows[i].id);
        arg(&a, hex, 2 * GH_APIKEY_HASH_LEN);
        arg_str(&a, rows[i].consumer);
        arg_str(&a, rows[i].description ? rows[i].description : "");
        arg_str(&a, rows[i].plan ? rows[i].plan : "");
        arg_str(&a, rows[i].enabled ? "1" : "0");
    }
    redisReply *r;
    uv_mutex_lock(&q->block);
    int rc = script_on(st, q->bulk, bulk_timeout(q), &s_import, "import", 0, &a, &r, NULL, err);
    uv_mutex_unlock(&q->block);
    args_dispose(&a);
    OPENSSL_cleanse(hexes, n * (2 * GH_APIKEY_HASH_LEN + 1));
    free(hexes);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->elements % 2 != 0 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        rc = io_fail(st, err, "import", 0, r, 0);
        goto out;
    }
    res->created = (size_t)r->element[0]->integer;
    res->updated = (size_t)r->element[1]->integer;
    for (size_t i = 2; i + 1 < r->elements && rc == 0; i += 2) {
        const redisReply *ix = r->element[i], *code = r->element[i + 1];
        if (ix->type != REDIS_REPLY_INTEGER || code->type != REDIS_REPLY_INTEGER ||
            ix->integer < 0 || (size_t)ix->integer >= n) {
            rc = io_fail(st, err, "import", 0, r, 0);
            break;
        }
        const gh_store_import_row_t *row = &rows[ix->integer];
        if (code->integer == 2)
            rc = gh_store_import_error(res, row->line,
                                       "this key (id %s) is in the store and revoked: it cannot be "
                                       "imported again",
                                       row->id);
        else
            rc = gh_store_import_error(
                res, row->line, "the key's id %s is taken by another key already in the store",
                row->id);
    }
    if (rc == 0 && res->total_errors != 0)
        rc = gh_store_fail(err, -EINVAL, "%zu rows refused by the store; nothing was imported",
                           res->total_errors);
    else if (rc == -ENOMEM)
        rc = gh_store_fail(err, -ENOMEM, "out of memory");
out:
    if (rc != 0)
        res->created = res->updated = 0;
    gh_redis_reply_free(r);
    return rc;
}

/* ---- usage ---- */

/* One batch, numbered seq, on the bulk client (locked by the caller). */
static int usage_send(gh_store_t *st, const gh_store_usage_entry_t *e, size_t n, uint64_t seq,
                      int *raw, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    args_t a = {0};
    redisReply *r;
    arg_fmt(&a, "usage-writer:%s", q->writer);
    for (size_t i = 0; i < n; i++)
        arg_fmt(&a, "usage:%s", e[i].id);
    arg_fmt(&a, "%llu", (unsigned long long)seq);
    for (size_t i = 0; i < n; i++)
        arg_fmt(&a, "%lld", (long long)e[i].day);
    for (size_t i = 0; i < n; i++)
        arg_fmt(&a, "%llu",
                (unsigned long long)(e[i].count > INT64_MAX ? (uint64_t)INT64_MAX : e[i].count));
    int rc =
        script_on(st, q->bulk, bulk_timeout(q), &s_usage, "usage", (int)n + 1, &a, &r, raw, err);
    args_dispose(&a);
    gh_redis_reply_free(r);
    return rc;
}

/* The batch whose write got no answer, sent again with its number (the
 * script skips it if it was applied): 0 when it is settled. */
static int usage_settle(gh_store_t *st, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    int raw;
    if (q->doubt == NULL)
        return 0;
    int rc = usage_send(st, q->doubt, q->num_doubt, q->doubt_seq, &raw, err);
    if (rc == 0) {
        free(q->doubt);
        q->doubt = NULL;
        q->num_doubt = 0;
    }
    return rc;
}

static int rs_usage_write(gh_store_t *st, const gh_store_usage_entry_t *e, size_t n,
                          gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    int raw = 0;
    uv_mutex_lock(&q->block);
    /* Numbers go up: a batch in doubt is settled before a later one, or
     * the later one's number would make the script skip it. */
    int rc = usage_settle(st, err);
    if (rc == 0) {
        uint64_t seq = ++q->seq;
        rc = usage_send(st, e, n, seq, &raw, err);
        if (rc != 0 && ambiguous(raw)) {
            /* It may have been applied: sending the counts in a new batch
             * could count them twice. Kept as they are, to be sent again
             * with this number. */
            gh_store_usage_entry_t *copy = malloc(n * sizeof(*copy));
            if (copy != NULL) {
                memcpy(copy, e, n * sizeof(*copy));
                q->doubt = copy;
                q->num_doubt = n;
                q->doubt_seq = seq;
                GH_LOG(GH_LOG_WARN, "store", "%s; these usage counts will be sent again",
                       err != NULL ? err->msg : "a usage write got no answer");
                rc = 0;
            }
        }
    }
    uv_mutex_unlock(&q->block);
    return rc;
}

static int rs_usage_get(gh_store_t *st, const char *id, int64_t from_day, int64_t to_day,
                        uint64_t *counts, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    args_t a = {0};
    redisReply *r = NULL;
    arg_str(&a, "HMGET");
    arg_fmt(&a, "usage:%s", id);
    for (int64_t d = from_day; d <= to_day; d++)
        arg_fmt(&a, "%lld", (long long)d);
    if (a.oom) {
        args_dispose(&a);
        return gh_store_fail(err, -ENOMEM, "out of memory");
    }
    uv_mutex_lock(&q->block);
    gh_store_error_t ignored;
    usage_settle(st, &ignored); /* counts in doubt are counted once settled */
    int rc = gh_redis_sync_command(q->bulk, (int)a.n, a.v, a.lens, 1u << 1, &r);
    uv_mutex_unlock(&q->block);
    args_dispose(&a);
    if (rc != 0 || r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)(to_day - from_day + 1)) {
        rc = io_fail(st, err, "usage", rc, r, bulk_timeout(q));
        gh_redis_reply_free(r);
        return rc;
    }
    for (size_t i = 0; i < r->elements; i++) {
        int64_t v;
        if (is_nil(r->element[i]))
            continue;
        if (parse_i64(r->element[i], &v) != 0) {
            gh_redis_reply_free(r);
            return gh_store_fail(err, -EIO, "%s: usage of key %s: a count is not a number",
                                 gh_store_describe(st), id);
        }
        if (v > 0)
            counts[i] += (uint64_t)v;
    }
    gh_redis_reply_free(r);
    return 0;
}

/* ---- for redis_clients.c (redis_store.h) ---- */

void gh_rs_args_dispose(gh_rs_args_t *a)
{
    args_dispose(a);
}

void gh_rs_arg(gh_rs_args_t *a, const char *s, size_t len)
{
    arg(a, s, len);
}

void gh_rs_arg_str(gh_rs_args_t *a, const char *s)
{
    arg_str(a, s);
}

void gh_rs_arg_i64(gh_rs_args_t *a, int64_t v)
{
    arg_fmt(a, "%lld", (long long)v);
}

void gh_rs_arg_key(gh_rs_args_t *a, const char *kind, const char *id)
{
    arg_fmt(a, "%s:%s", kind, id);
}

void gh_rs_hex32(const uint8_t *h, char out[65])
{
    hex32(h, out);
}

int gh_rs_parse_i64(const struct redisReply *r, int64_t *out)
{
    return parse_i64(r, out);
}

int gh_rs_io_fail(gh_store_t *st, gh_store_error_t *err, const char *what, int rc,
                  const struct redisReply *r, uint64_t timeout_ms)
{
    return io_fail(st, err, what, rc, r, timeout_ms);
}

int gh_rs_quick_cmd(gh_store_t *st, const char *what, gh_rs_args_t *a, struct redisReply **r,
                    gh_store_error_t *err)
{
    return quick_cmd(st, what, a, r, err);
}

int gh_rs_quick_script(gh_store_t *st, const gh_redis_script_t *s, const char *what, int nkeys,
                       gh_rs_args_t *a, struct redisReply **r, gh_store_error_t *err)
{
    return quick_script(st, s, what, nkeys, a, r, err);
}

int gh_rs_bulk_script(gh_store_t *st, const gh_redis_script_t *s, const char *what, int nkeys,
                      gh_rs_args_t *a, struct redisReply **r, gh_store_error_t *err)
{
    gh_rs_t *q = impl(st);
    uv_mutex_lock(&q->block);
    int rc = script_on(st, q->bulk, bulk_timeout(q), s, what, nkeys, a, r, NULL, err);
    uv_mutex_unlock(&q->block);
    return rc;
}

int gh_rs_want_int(gh_store_t *st, const char *what, struct redisReply *r, long long *v,
                   gh_store_error_t *err)
{
    return want_int(st, what, r, v, err);
}

const gh_redis_script_t *gh_rs_revoke_script(void)
{
    return &s_revoke;
}

const gh_store_backend_t gh_store_redis_backend = {
    .kind = GH_STORE_REDIS,
    .name = "redis",
    .req_size = sizeof(gh_rs_req_t),
    .open = rs_open,
    .close = rs_close,
    .key_insert = rs_key_insert,
    .key_get = rs_key_get,
    .key_list = rs_key_list,
    .key_revoke = rs_key_revoke,
    .key_rotate = rs_key_rotate,
    .key_import = rs_key_import,
    .usage_write = rs_usage_write,
    .usage_get = rs_usage_get,
    .client_insert = gh_rs_client_insert,
    .client_get = gh_rs_client_get,
    .client_list = gh_rs_client_list,
    .client_revoke = gh_rs_client_revoke,
    .client_rotate = gh_rs_client_rotate,
    .revocation_add = gh_rs_revocation_add,
    .revocations_since = gh_rs_revocations_since,
    .revocations_purge = gh_rs_revocations_purge,
    .jti_claim = gh_rs_jti_claim,
    .jti_claim_start = gh_rs_key_lookup,
    .key_lookup = gh_rs_key_lookup,
    .key_lookup_cancel = gh_rs_key_lookup_cancel,
    .loop_end = gh_rs_loop_end,
};
