/*
 * The Redis backend's OAuth clients and revoked access tokens
 * (docs/internals/store.md#redis has the data model). Under the store's
 * prefix:
 *
 *   client:ID        a hash, the client's record (RC_* fields)
 *   clients          a sorted set of client ids by created_at (listing)
 *   revoked-seq      the last revocation number made (INCR)
 *   revoked          a sorted set of revoked jtis by their number
 *   revoked-exp      the same jtis by their exp (purging)
 *   jti:CID:JTI      a claimed client-assertion jti of client CID: a
 *                    string (the claim's until), expiring with the claim
 *
 * As for keys, every write that checks something first is one Lua script.
 * The two revocation sets are written together by one script, so a reader
 * never sees a jti in one and not in the other. The numbers come from one
 * INCR inside the script that adds the jti: they increase in the order
 * revocations were made, across every gatehouse writing to this Redis.
 * A claim is one SET NX PX, atomic by itself: of two gatehouses claiming
 * one jti at once, one gets OK, the other nil.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>

#include <gatehouse/log.h>

#include "store/redis_store.h"

#define LIST_CHUNK 1000

const char *const gh_rs_client_fields[RC_COUNT] = {
    "name",        "scopes",           "audiences",        "auth_methods",
    "jwks",        "token_ttl",        "created_at",       "revoked_at",
    "secret_hash", "prev_secret_hash", "prev_valid_until", "secret_rotated_at",
};

#define LUA_CLIENT_FIELDS                                                                          \
    "'name', 'scopes', 'audiences', 'auth_methods', 'jwks', 'token_ttl', 'created_at', "           \
    "'revoked_at', 'secret_hash', 'prev_secret_hash', 'prev_valid_until', 'secret_rotated_at'"

/* KEYS: client:ID, clients. ARGV: id, created_at, the record's field/value
 * pairs. 0: the id is taken (nothing written); 1: inserted. */
static const char lua_insert[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                 "redis.call('HSET', KEYS[1], unpack(ARGV, 3))\n"
                                 "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
                                 "return 1\n";

/* KEYS: client:ID. ARGV: the secret hash read, the new one, the previous
 * one ('' for none), its end, rotated_at. -1: gone, revoked or rotated
 * meanwhile (nothing written); 1: done. */
static const char lua_rotate[] =
    "local r = redis.call('HMGET', KEYS[1], 'name', 'revoked_at', 'secret_hash')\n"
    "if not r[1] or r[2] or r[3] ~= ARGV[1] then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'secret_hash', ARGV[2], 'secret_rotated_at', ARGV[5])\n"
    "if ARGV[3] ~= '' then\n"
    "  redis.call('HSET', KEYS[1], 'prev_secret_hash', ARGV[3], 'prev_valid_until', ARGV[4])\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], 'prev_secret_hash', 'prev_valid_until')\n"
    "end\n"
    "return 1\n";

/* KEYS: clients. ARGV: prefix, the last id of the chunk before ('' for the
 * first), how many. Per id: the id and its RC_COUNT fields (a cursor by
 * id, as the key listing). */
static const char lua_list[] =
    "local start = 0\n"
    "if ARGV[2] ~= '' then\n"
    "  local r = redis.call('ZRANK', KEYS[1], ARGV[2])\n"
    "  if not r then return redis.error_reply('ERR the listing lost its place') end\n"
    "  start = r + 1\n"
    "end\n"
    "local out = {}\n"
    "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1)) do\n"
    "  out[#out + 1] = id\n"
    "  local f = redis.call('HMGET', ARGV[1] .. 'client:' .. id, " LUA_CLIENT_FIELDS ")\n"
    "  for j = 1, 12 do out[#out + 1] = f[j] end\n"
    "end\n"
    "return out\n";

/* KEYS: revoked-seq, revoked, revoked-exp. ARGV: jti, exp, now, purge
 * batch. Forgets up to batch jtis expired at now, then: 0 when jti is
 * there already, else its new number. */
static const char lua_revoke_token[] =
    "local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, "
    "tonumber(ARGV[4]))\n"
    "for _, j in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[2], j)\n"
    "  redis.call('ZREM', KEYS[3], j)\n"
    "end\n"
    "if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "redis.call('ZADD', KEYS[2], seq, ARGV[1])\n"
    "redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])\n"
    "return seq\n";

/* KEYS: revoked-seq, revoked, revoked-exp. ARGV: after, max. Returns the
 * last number made, then per entry numbered after `after` (at most max,
 * by number): jti, number, exp. */
static const char lua_since[] =
    "local out = {tonumber(redis.call('GET', KEYS[1]) or '0')}\n"
    "local r = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES', "
    "'LIMIT', 0, tonumber(ARGV[2]))\n"
    "for i = 1, #r, 2 do\n"
    "  out[#out + 1] = r[i]\n"
    "  out[#out + 1] = r[i + 1]\n"
    "  out[#out + 1] = redis.call('ZSCORE', KEYS[3], r[i]) or '0'\n"
    "end\n"
    "return out\n";

/* KEYS: revoked, revoked-exp. ARGV: now, batch. The number forgotten. */
static const char lua_purge[] =
    "local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, "
    "tonumber(ARGV[2]))\n"
    "for _, j in ipairs(old) do\n"
    "  redis.call('ZREM', KEYS[1], j)\n"
    "  redis.call('ZREM', KEYS[2], j)\n"
    "end\n"
    "return #old\n";

static gh_redis_script_t s_insert, s_rotate, s_list, s_revoke_token, s_since, s_purge;

void gh_rs_clients_scripts_init(void)
{
    gh_redis_script_init(&s_insert, lua_insert);
    gh_redis_script_init(&s_rotate, lua_rotate);
    gh_redis_script_init(&s_list, lua_list);
    gh_redis_script_init(&s_revoke_token, lua_revoke_token);
    gh_redis_script_init(&s_since, lua_since);
    gh_redis_script_init(&s_purge, lua_purge);
}

/* ---- records ---- */

static int is_nil(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_NIL;
}

static char *field_dup(const redisReply *r, int *bad, int *oom)
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

static int field_time(const redisReply *r, int64_t *out)
{
    *out = 0;
    if (is_nil(r))
        return 0;
    return gh_rs_parse_i64(r, out) == 0 && *out > 0 ? 0 : -1;
}

static int unhex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A hash field: 1 and out when 64 hex digits, 0 when absent, -1 when
 * anything else. */
static int field_hash(const redisReply *r, uint8_t *out)
{
    memset(out, 0, GH_CLIENT_HASH_LEN);
    if (is_nil(r))
        return 0;
    if (r->type != REDIS_REPLY_STRING || r->len != 2 * GH_CLIENT_HASH_LEN)
        return -1;
    for (size_t i = 0; i < GH_CLIENT_HASH_LEN; i++) {
        int hi = unhex(r->str[2 * i]), lo = unhex(r->str[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            memset(out, 0, GH_CLIENT_HASH_LEN);
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

int gh_rs_client_record(struct redisReply *const *el, const char *id, gh_client_t *out,
                        const char **why)
{
    int bad = 0, oom = 0;
    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (is_nil(el[RC_NAME]))
        return -ENOENT;
    snprintf(out->id, sizeof(out->id), "%s", id);
    out->name = field_dup(el[RC_NAME], &bad, &oom);
    out->scopes = field_dup(el[RC_SCOPES], &bad, &oom);
    out->audiences = field_dup(el[RC_AUDIENCES], &bad, &oom);
    out->jwks = field_dup(el[RC_JWKS], &bad, &oom);
    char *methods = field_dup(el[RC_AUTH_METHODS], &bad, &oom);
    if (!bad && !oom && out->scopes == NULL && (out->scopes = strdup("")) == NULL)
        oom = 1;
    if (oom) {
        free(methods);
        gh_client_dispose(out);
        return -ENOMEM;
    }
    /* Every field that decides whether a client authenticates is read
     * strictly: a revoked_at or a hash that does not parse must not read
     * as "active" or "no previous secret". */
    const char *m;
    int cur = field_hash(el[RC_SECRET_HASH], out->secret_hash);
    int prev = field_hash(el[RC_PREV_SECRET_HASH], out->prev_secret_hash);
    if (bad)
        *why = "a text field is not a string";
    else if (out->audiences == NULL)
        *why = "audiences is missing";
    else if (methods == NULL || gh_client_auth_parse(methods, &out->auth_methods, &m) != 0 ||
             out->auth_methods == 0)
        *why = "auth_methods does not read";
    else if (is_nil(el[RC_CREATED_AT]) || gh_rs_parse_i64(el[RC_CREATED_AT], &out->created_at) != 0)
        *why = "created_at is not a number";
    else if (field_time(el[RC_REVOKED_AT], &out->revoked_at) != 0)
        *why = "revoked_at is not a number";
    else if (field_time(el[RC_TOKEN_TTL], &out->token_ttl) != 0)
        *why = "token_ttl is not a number";
    else if (field_time(el[RC_PREV_VALID_UNTIL], &out->prev_valid_until) != 0)
        *why = "prev_valid_until is not a number";
    else if (field_time(el[RC_SECRET_ROTATED_AT], &out->secret_rotated_at) != 0)
        *why = "secret_rotated_at is not a number";
    else if (cur < 0 || prev < 0)
        *why = "a secret hash is not 64 hex digits";
    else if (cur != ((out->auth_methods & GH_CLIENT_AUTH_SECRET) != 0))
        *why = "its secret and its methods disagree";
    else if (prev == 0 && out->prev_valid_until != 0)
        *why = "prev_valid_until without a previous secret";
    free(methods);
    if (*why != NULL) {
        gh_client_dispose(out);
        return -EIO;
    }
    out->has_secret = cur;
    return 0;
}

static int record_fail(gh_store_t *st, gh_store_error_t *err, const char *id, int rc,
                       const char *why)
{
    if (rc == -ENOENT)
        return gh_store_fail(err, -ENOENT, "no client with id %s", id);
    if (rc == -ENOMEM)
        return gh_store_fail(err, -ENOMEM, "out of memory");
    GH_LOG(GH_LOG_ERROR, "store", "%s: client %s: malformed record: %s", gh_store_describe(st), id,
           why);
    return gh_store_fail(err, -EIO, "%s: client %s: malformed record in Redis: %s",
                         gh_store_describe(st), id, why);
}

/* ---- clients ---- */

int gh_rs_client_insert(gh_store_t *st, const gh_client_t *c, gh_store_error_t *err)
{
    char hex[2 * GH_CLIENT_HASH_LEN + 1], methods[64];
    gh_rs_args_t a = {0};
    redisReply *r;
    long long v = 0;
    gh_rs_arg_key(&a, "client", c->id);
    gh_rs_arg_str(&a, "clients");
    gh_rs_arg_str(&a, c->id);
    gh_rs_arg_i64(&a, c->created_at);
    gh_rs_arg_str(&a, "name");
    gh_rs_arg_str(&a, c->name);
    gh_rs_arg_str(&a, "scopes");
    gh_rs_arg_str(&a, c->scopes ? c->scopes : "");
    gh_rs_arg_str(&a, "audiences");
    gh_rs_arg_str(&a, c->audiences);
    gh_rs_arg_str(&a, "auth_methods");
    gh_rs_arg_str(&a, gh_client_auth_format(c->auth_methods, methods, sizeof(methods)));
    gh_rs_arg_str(&a, "created_at");
    gh_rs_arg_i64(&a, c->created_at);
    if (c->jwks != NULL) {
        gh_rs_arg_str(&a, "jwks");
        gh_rs_arg_str(&a, c->jwks);
    }
    if (c->token_ttl != 0) {
        gh_rs_arg_str(&a, "token_ttl");
        gh_rs_arg_i64(&a, c->token_ttl);
    }
    if (c->has_secret) {
        gh_rs_hex32(c->secret_hash, hex);
        gh_rs_arg_str(&a, "secret_hash");
        gh_rs_arg_str(&a, hex);
    }
    int rc = gh_rs_quick_script(st, &s_insert, "insert client", 2, &a, &r, err);
    gh_rs_args_dispose(&a);
    OPENSSL_cleanse(hex, sizeof(hex));
    if (rc == 0)
        rc = gh_rs_want_int(st, "insert client", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EEXIST, "client %s exists", c->id);
    return rc;
}

int gh_rs_client_get(gh_store_t *st, const char *id, gh_client_t *out, gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    redisReply *r;
    memset(out, 0, sizeof(*out));
    gh_rs_arg_str(&a, "HMGET");
    gh_rs_arg_key(&a, "client", id);
    for (int i = 0; i < RC_COUNT; i++)
        gh_rs_arg_str(&a, gh_rs_client_fields[i]);
    int rc = gh_rs_quick_cmd(st, "get client", &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != RC_COUNT) {
        rc = gh_rs_io_fail(st, err, "get client", 0, r, 0);
    } else {
        const char *why;
        rc = gh_rs_client_record(r->element, id, out, &why);
        if (rc != 0)
            rc = record_fail(st, err, id, rc, why);
    }
    gh_redis_reply_free(r);
    return rc;
}

int gh_rs_client_list(gh_store_t *st, gh_client_t **out, size_t *n, gh_store_error_t *err)
{
    gh_rs_t *q = st->impl;
    gh_client_t *all = NULL;
    size_t count = 0, cap = 0, got;
    char last[GH_CLIENT_ID_LEN + 1] = "";
    const size_t per = 1 + RC_COUNT;
    int rc = 0;
    do {
        gh_rs_args_t a = {0};
        redisReply *r;
        gh_rs_arg_str(&a, "clients");
        gh_rs_arg_str(&a, q->prefix);
        gh_rs_arg_str(&a, last);
        gh_rs_arg_i64(&a, LIST_CHUNK);
        rc = gh_rs_bulk_script(st, &s_list, "list clients", 1, &a, &r, err);
        gh_rs_args_dispose(&a);
        got = 0;
        if (rc != 0)
            break;
        if (r->type != REDIS_REPLY_ARRAY || r->elements % per != 0)
            rc = gh_rs_io_fail(st, err, "list clients", 0, r, 0);
        for (size_t i = 0; rc == 0 && i < r->elements; i += per) {
            const redisReply *idr = r->element[i];
            if (idr->type != REDIS_REPLY_STRING || idr->len != GH_CLIENT_ID_LEN ||
                !gh_client_id_valid_n(idr->str, idr->len)) {
                rc = gh_rs_io_fail(st, err, "list clients", 0, r, 0);
                break;
            }
            memcpy(last, idr->str, GH_CLIENT_ID_LEN);
            last[GH_CLIENT_ID_LEN] = '\0';
            got++;
            if (count == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                gh_client_t *nc = realloc(all, ncap * sizeof(*nc));
                if (nc == NULL) {
                    rc = gh_store_fail(err, -ENOMEM, "out of memory");
                    break;
                }
                all = nc;
                cap = ncap;
            }
            const char *why;
            int e = gh_rs_client_record(&r->element[i + 1], last, &all[count], &why);
            if (e == -ENOENT)
                continue; /* listed, with no record: nothing to show */
            if (e != 0)
                rc = record_fail(st, err, last, e, why);
            else
                count++;
        }
        gh_redis_reply_free(r);
    } while (rc == 0 && got == LIST_CHUNK);
    if (rc != 0) {
        gh_client_list_free(all, count);
        return rc;
    }
    *out = all;
    *n = count;
    return 0;
}

int gh_rs_client_revoke(gh_store_t *st, const char *id, int64_t now, gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    redisReply *r;
    long long v = 0;
    gh_rs_arg_key(&a, "client", id);
    gh_rs_arg_i64(&a, now);
    int rc = gh_rs_quick_script(st, gh_rs_revoke_script(), "revoke client", 1, &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc == 0)
        rc = gh_rs_want_int(st, "revoke client", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v < 0)
        rc = gh_store_fail(err, -ENOENT, "no client with id %s", id);
    else if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EALREADY, "client %s was revoked before", id);
    return rc;
}

int gh_rs_client_rotate(gh_store_t *st, const gh_client_t *c, const uint8_t *old_hash,
                        gh_store_error_t *err)
{
    char old[2 * GH_CLIENT_HASH_LEN + 1], cur[2 * GH_CLIENT_HASH_LEN + 1],
        prev[2 * GH_CLIENT_HASH_LEN + 1] = "";
    gh_rs_args_t a = {0};
    redisReply *r;
    long long v = 0;
    gh_rs_hex32(old_hash, old);
    gh_rs_hex32(c->secret_hash, cur);
    if (c->prev_valid_until != 0)
        gh_rs_hex32(c->prev_secret_hash, prev);
    gh_rs_arg_key(&a, "client", c->id);
    gh_rs_arg_str(&a, old);
    gh_rs_arg_str(&a, cur);
    gh_rs_arg_str(&a, prev);
    gh_rs_arg_i64(&a, c->prev_valid_until);
    gh_rs_arg_i64(&a, c->secret_rotated_at);
    int rc = gh_rs_quick_script(st, &s_rotate, "rotate client secret", 1, &a, &r, err);
    gh_rs_args_dispose(&a);
    OPENSSL_cleanse(old, sizeof(old));
    OPENSSL_cleanse(cur, sizeof(cur));
    OPENSSL_cleanse(prev, sizeof(prev));
    if (rc == 0)
        rc = gh_rs_want_int(st, "rotate client secret", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v < 0)
        rc = -ESTALE;
    return rc;
}

/* ---- revocations ---- */

static void revocation_keys(gh_rs_args_t *a)
{
    gh_rs_arg_str(a, "revoked-seq");
    gh_rs_arg_str(a, "revoked");
    gh_rs_arg_str(a, "revoked-exp");
}

int gh_rs_revocation_add(gh_store_t *st, const char *jti, int64_t exp, int64_t now,
                         gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    redisReply *r;
    long long v = 0;
    revocation_keys(&a);
    gh_rs_arg_str(&a, jti);
    gh_rs_arg_i64(&a, exp);
    gh_rs_arg_i64(&a, now);
    gh_rs_arg_i64(&a, GH_STORE_PURGE_BATCH);
    int rc = gh_rs_quick_script(st, &s_revoke_token, "revoke token", 3, &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc == 0)
        rc = gh_rs_want_int(st, "revoke token", r, &v, err);
    gh_redis_reply_free(r);
    if (rc == 0 && v == 0)
        rc = gh_store_fail(err, -EALREADY, "this token was revoked before");
    return rc;
}

/* A score or exp as Redis returns it: an integer in decimal (scores are
 * doubles, written without a fraction while they hold integers). */
static int reply_u64(const redisReply *r, uint64_t *out)
{
    int64_t v;
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer < 0)
            return -1;
        *out = (uint64_t)r->integer;
        return 0;
    }
    if (gh_rs_parse_i64(r, &v) != 0 || v < 0)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int gh_rs_revocations_since(gh_store_t *st, uint64_t after, int64_t now, size_t max,
                            gh_revocation_t *out, size_t *n, uint64_t *next, size_t *looked,
                            uint64_t *last_made, gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    redisReply *r;
    char num[24];
    *n = *looked = 0;
    *next = after;
    revocation_keys(&a);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)after);
    gh_rs_arg_str(&a, num);
    gh_rs_arg_i64(&a, (int64_t)max);
    int rc = gh_rs_bulk_script(st, &s_since, "read revocations", 3, &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc != 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0 ||
        (r->elements - 1) / 3 > max || reply_u64(r->element[0], last_made) != 0) {
        rc = gh_rs_io_fail(st, err, "read revocations", 0, r, 0);
        goto out;
    }
    for (size_t i = 1; i < r->elements; i += 3) {
        const redisReply *jti = r->element[i];
        uint64_t seq, exp;
        if (jti->type != REDIS_REPLY_STRING || reply_u64(r->element[i + 1], &seq) != 0 ||
            reply_u64(r->element[i + 2], &exp) != 0 || seq <= after) {
            rc = gh_rs_io_fail(st, err, "read revocations", 0, r, 0);
            goto out;
        }
        (*looked)++;
        *next = seq;
        if ((int64_t)exp <= now || jti->len == 0 || jti->len > GH_REVOCATION_JTI_MAX)
            continue;
        gh_revocation_t *e = &out[*n];
        memcpy(e->jti, jti->str, jti->len);
        e->jti[jti->len] = '\0';
        if (!gh_revocation_jti_valid(e->jti))
            continue;
        e->seq = seq;
        e->exp = (int64_t)exp;
        (*n)++;
    }
out:
    gh_redis_reply_free(r);
    return rc;
}

int gh_rs_revocations_purge(gh_store_t *st, int64_t now, gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    redisReply *r;
    long long v = 0;
    gh_rs_arg_str(&a, "revoked");
    gh_rs_arg_str(&a, "revoked-exp");
    gh_rs_arg_i64(&a, now);
    gh_rs_arg_i64(&a, GH_STORE_PURGE_BATCH);
    int rc = gh_rs_bulk_script(st, &s_purge, "purge revocations", 2, &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc == 0)
        rc = gh_rs_want_int(st, "purge revocations", r, &v, err);
    gh_redis_reply_free(r);
    return rc == 0 ? (int)v : rc;
}

/* ---- client-assertion claims ---- */

size_t gh_rs_claim_key(char out[GH_RS_CLAIM_KEY_MAX], const char *client_id, const char *jti)
{
    /* A client id is of fixed length without ':', so the key reads one
     * way only, whatever bytes the jti holds. */
    int n = snprintf(out, GH_RS_CLAIM_KEY_MAX, "jti:%s:%s", client_id, jti);
    return n > 0 && n < GH_RS_CLAIM_KEY_MAX ? (size_t)n : 0;
}

int gh_rs_claim_status(const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return -EEXIST;
    if (r->type == REDIS_REPLY_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0)
        return 0;
    return -EIO;
}

int gh_rs_jti_claim(gh_store_t *st, const char *client_id, const char *jti, int64_t until,
                    int64_t now, gh_store_error_t *err)
{
    gh_rs_args_t a = {0};
    char key[GH_RS_CLAIM_KEY_MAX];
    redisReply *r;
    size_t kl = gh_rs_claim_key(key, client_id, jti);
    if (kl == 0)
        return gh_store_fail(err, -EINVAL, "a claimed jti is too long");
    gh_rs_arg_str(&a, "SET");
    gh_rs_arg(&a, key, kl);
    gh_rs_arg_i64(&a, until);
    gh_rs_arg_str(&a, "NX");
    gh_rs_arg_str(&a, "PX");
    gh_rs_arg_i64(&a, (until - now) * 1000);
    int rc = gh_rs_quick_cmd(st, "claim jti", &a, &r, err);
    gh_rs_args_dispose(&a);
    if (rc != 0)
        return rc;
    rc = gh_rs_claim_status(r);
    if (rc == -EEXIST)
        gh_store_fail(err, rc, "this client assertion was used before");
    else if (rc != 0)
        rc = gh_rs_io_fail(st, err, "claim jti", 0, r, 0);
    gh_redis_reply_free(r);
    return rc;
}
