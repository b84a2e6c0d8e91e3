/*
 * src/store/store.c with the Redis backend (src/store/redis_store.c,
 * redis_lookup.c) against a real redis-server (redis_server.h), each case
 * under its own key prefix: the cases every backend passes
 * (store_cases.h), and Redis's own: the data model as Redis holds it,
 * prefixes kept apart, malformed records read as failures (never as a
 * valid key), the schema marker, Redis down, killed, restarted and
 * stopped (SIGSTOP) for the synchronous API and for lookups, a usage
 * write whose answer was lost counted once, lookups in flight at a
 * worker's teardown, a store released while worker threads look keys up,
 * and a client closed by its own loop once its store went.
 *
 * Error kinds and counts are asserted, never durations: waits are bounded
 * by a guard far beyond every timeout used.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include <gatehouse/redis.h>
#include <gatehouse/store.h>

#include "redis_server.h"
#include "store/backend.h"
#include "store/redis_store.h"
#include "store_cases.h"

#include "client_cases.h"

static rs_t srv;
static char prefix[32];
static redisContext *raw; /* the test's own view of Redis */

static gh_store_conf_t conf_at(int port, const char *pfx, uint64_t timeout_ms)
{
    gh_store_conf_t c;
    char addr[64];
    assert_int_equal(gh_store_conf_default(&c, NULL), 0);
    c.kind = GH_STORE_REDIS;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    free(c.address);
    c.address = strdup(addr);
    free(c.prefix);
    c.prefix = strdup(pfx);
    c.timeout_ms = timeout_ms;
    return c;
}

/* A lookup timeout far above what a loaded machine needs: only the cases
 * about timeouts use short ones. */
static gh_store_conf_t conf_here(void)
{
    return conf_at(srv.port, prefix, 5000);
}

static gh_store_t *open_conf(gh_store_conf_t *c, int flags, int expect, gh_store_error_t *err)
{
    gh_store_t *s = NULL;
    gh_store_error_t e = {""};
    int rc = gh_store_open(c, flags, &s, err ? err : &e);
    gh_store_conf_dispose(c);
    if (rc != expect)
        fail_msg("open: %d (%s), expected %d", rc, err ? err->msg : e.msg, expect);
    return s;
}

static gh_store_t *open_again(void)
{
    gh_store_conf_t c = conf_here();
    return open_conf(&c, 0, 0, NULL);
}

static redisReply *rq(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    if (r == NULL)
        fail_msg("raw redis command failed: %s", raw->errstr);
    return r;
}

static void rdo(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        fail_msg("raw redis command failed: %s", r ? r->str : raw->errstr);
    freeReplyObject(r);
}

static int has(const redisReply *r, const char *needle, size_t n)
{
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (has(r->element[i], needle, n))
                return 1;
        return 0;
    }
    return r->str != NULL && r->len >= n && memmem(r->str, r->len, needle, n) != NULL;
}

/* Every key under the prefix, its name and everything it holds. */
static void raw_lacks(const char *needle, size_t n)
{
    redisReply *keys = rq("KEYS %s*", prefix);
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    assert_true(keys->elements > 0); /* the check looked at something */
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        assert_null(memmem(k, keys->element[i]->len, needle, n));
        redisReply *t = rq("TYPE %s", k), *v;
        if (strcmp(t->str, "hash") == 0)
            v = rq("HGETALL %s", k);
        else if (strcmp(t->str, "zset") == 0)
            v = rq("ZRANGE %s 0 -1", k);
        else
            v = rq("GET %s", k);
        assert_false(has(v, needle, n));
        freeReplyObject(v);
        freeReplyObject(t);
    }
    freeReplyObject(keys);
}

/* Redis forgets a claim by its TTL, on its own clock: under the injected
 * clock, the claims whose until has come are dropped here as their
 * expiry would (test_jti_claim_data_model checks the TTL, and
 * test_jti_claim_expires_in_redis a real expiry). */
static void claims_pass(int64_t t)
{
    redisReply *keys = rq("KEYS %sjti:*", prefix);
    assert_int_equal(keys->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *v = rq("GET %b", keys->element[i]->str, keys->element[i]->len);
        assert_int_equal(v->type, REDIS_REPLY_STRING);
        if (strtoll(v->str, NULL, 10) <= t)
            rdo("DEL %b", keys->element[i]->str, keys->element[i]->len);
        freeReplyObject(v);
    }
    freeReplyObject(keys);
}

static int group_setup(void **state)
{
    (void)state;
    if (rs_start(&srv, NULL) != 0)
        return -1;
    raw = redisConnect("127.0.0.1", srv.port);
    return raw == NULL || raw->err ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (raw != NULL)
        redisFree(raw);
    rs_stop(&srv);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    static int n;
    snprintf(prefix, sizeof(prefix), "t%d:", n++);
    gh_store_conf_t c = conf_here();
    st = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    return st == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    rs_resume(&srv); /* a failed case may leave it stopped */
    gh_store_unref(st);
    st = NULL;
    return 0;
}

/* A loopback port that refuses connections: bound, not listening, held
 * until closed so that no other test takes it. */
static int closed_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* ---- the data model ---- */

static void test_data_model(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", "gold", "a,b", 30 * DAY, T0, key, &rec);
    redisReply *r = rq("GET %sschema", prefix);
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    /* one hash per key, its hash in hex */
    r = rq("HGETALL %skey:%s", prefix, rec.id);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    gh_apikey_presented_t p;
    assert_int_equal(gh_apikey_present(key, strlen(key), &p, NULL), 0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", p.hash[i]);
    const char *want[][2] = {
        {"hash", hex},           {"consumer", "alice"},        {"plan", "gold"},
        {"scopes", "a b"},       {"description", "a key"},     {"enabled", "1"},
        {"source", "generated"}, {"created_at", "1700000000"}, {"expires_at", "1702592000"}};
    assert_int_equal(r->elements, 2 * (sizeof(want) / sizeof(want[0])));
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        int found = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (strcmp(r->element[i]->str, want[w][0]) == 0) {
                assert_string_equal(r->element[i + 1]->str, want[w][1]);
                found = 1;
            }
        if (!found)
            fail_msg("field %s missing", want[w][0]);
    }
    freeReplyObject(r);
    /* listed by creation time, and by consumer */
    r = rq("ZSCORE %skeys %s", prefix, rec.id);
    assert_string_equal(r->str, "1700000000");
    freeReplyObject(r);
    r = rq("ZSCORE %sconsumer:alice %s", prefix, rec.id);
    assert_string_equal(r->str, "1700000000");
    freeReplyObject(r);
    /* revocation and rotation are fields of the hash */
    char nk[GH_APIKEY_LEN + 1];
    gh_apikey_t nrec;
    gh_apikey_rotate_t ro = {60, 0};
    assert_int_equal(gh_store_key_rotate(st, rec.id, &ro, T0 + 5, nk, &nrec, &err), 0);
    assert_int_equal(gh_store_key_revoke(st, rec.id, T0 + 6, &err), 0);
    r = rq("HMGET %skey:%s replaced_by grace_until revoked_at", prefix, rec.id);
    assert_string_equal(r->element[0]->str, nrec.id);
    assert_string_equal(r->element[1]->str, "1700000065");
    assert_string_equal(r->element[2]->str, "1700000006");
    freeReplyObject(r);
    r = rq("ZCARD %sconsumer:alice", prefix);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    /* usage: one hash per key, a field per UTC day, added to by HINCRBY */
    gh_store_usage_add(st, NULL, 0, rec.id, T0, 3);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    rdo("HINCRBY %susage:%s %d 4", prefix, rec.id, T0 / DAY); /* another gatehouse */
    uint64_t c[1];
    assert_int_equal(gh_store_usage_get(st, rec.id, T0 / DAY, T0 / DAY, c, &err), 0);
    assert_int_equal(c[0], 7);
    raw_lacks(key + 16, 16);
    raw_lacks(nk + 16, 16);
    gh_apikey_dispose(&rec);
    gh_apikey_dispose(&nrec);
}

static void test_prefixes_are_apart(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, NULL);
    char other_prefix[40];
    snprintf(other_prefix, sizeof(other_prefix), "%sother:", prefix);
    gh_store_conf_t c = conf_at(srv.port, other_prefix, 5000);
    gh_store_t *other = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    gh_apikey_t *keys;
    size_t n;
    assert_int_equal(gh_store_key_list(other, NULL, &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    gh_apikey_list_free(keys, n);
    assert_int_equal(find(other, key, T0, NULL), -ENOENT);
    gh_store_unref(other);
    /* a host name that is "localhost" reaches the same server */
    char addr[64];
    snprintf(addr, sizeof(addr), "localhost:%d", srv.port);
    c = conf_here();
    free(c.address);
    c.address = strdup(addr);
    gh_store_t *named = open_conf(&c, 0, 0, NULL);
    assert_int_equal(find(named, key, T0, NULL), 0);
    gh_store_unref(named);
}

/* ---- what Redis holds is checked ---- */

static void test_malformed_records(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec, got;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    /* A revocation that does not parse must not read as "not revoked":
     * the key is a failure, for the CLI and for lookups. */
    rdo("HSET %skey:%s revoked_at 12abc", prefix, rec.id);
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), -EIO);
    assert_non_null(strstr(err.msg, "revoked_at"));
    assert_int_equal(find(st, key, T0, NULL), -EIO);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    answer_t a = {0};
    gh_store_req_t *r;
    answer_t *one[] = {&a, NULL};
    assert_int_equal(lookup(&loop, key, &a, &r), 0);
    run_until(&loop, answered, one);
    assert_int_equal(a.status, -EIO);
    const char *bad[][2] = {
        {"revoked_at", ""},       {"revoked_at", "0"},
        {"revoked_at", "-"},      {"revoked_at", "00"},
        {"enabled", "2"},         {"enabled", "yes"},
        {"expires_at", "1e9"},    {"created_at", "99999999999999999999"},
        {"replaced_by", "short"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rdo("HSET %skey:%s %s %s", prefix, rec.id, bad[i][0], bad[i][1]);
        if (gh_store_key_get(st, rec.id, &got, &err) != -EIO)
            fail_msg("case %zu: %s=%s read as a record", i, bad[i][0], bad[i][1]);
        rdo("HDEL %skey:%s %s", prefix, rec.id, bad[i][0]);
        if (strcmp(bad[i][0], "enabled") == 0 || strcmp(bad[i][0], "created_at") == 0)
            rdo("HSET %skey:%s %s %s", prefix, rec.id, bad[i][0],
                strcmp(bad[i][0], "enabled") == 0 ? "1" : "1700000000");
    }
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), 0);
    gh_apikey_dispose(&got);
    /* a hash that is not 64 hex digits matches no key */
    rdo("HSET %skey:%s hash nothex", prefix, rec.id);
    assert_int_equal(find(st, key, T0, NULL), -ENOENT);
    memset(&a, 0, sizeof(a));
    assert_int_equal(lookup(&loop, key, &a, &r), 0);
    run_until(&loop, answered, one);
    assert_int_equal(a.status, -ENOENT);
    /* a key of another type where a record belongs: a failure, said */
    rdo("DEL %skey:%s", prefix, rec.id);
    rdo("SET %skey:%s x", prefix, rec.id);
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), -EIO);
    assert_non_null(strstr(err.msg, "WRONGTYPE"));
    assert_int_equal(gh_store_key_revoke(st, rec.id, T0, &err), -EIO);
    memset(&a, 0, sizeof(a));
    assert_int_equal(lookup(&loop, key, &a, &r), 0);
    run_until(&loop, answered, one);
    assert_int_equal(a.status, -EIO);
    /* gone: no such key, as for an unknown id */
    rdo("DEL %skey:%s", prefix, rec.id);
    assert_int_equal(gh_store_key_get(st, rec.id, &got, &err), -ENOENT);
    assert_int_equal(gh_store_key_revoke(st, rec.id, T0, &err), -ENOENT);
    loop_done(&loop);
    gh_apikey_dispose(&rec);
}

static void test_schema_marker(void **state)
{
    (void)state;
    gh_store_error_t err;
    gh_store_conf_t c;
    rdo("SET %sschema 2", prefix);
    c = conf_here();
    assert_null(open_conf(&c, GH_STORE_CREATE, -EINVAL, &err));
    assert_non_null(strstr(err.msg, "newer"));
    rdo("SET %sschema sessions", prefix);
    c = conf_here();
    assert_null(open_conf(&c, 0, -EINVAL, &err));
    assert_non_null(strstr(err.msg, "not a gatehouse store"));
    rdo("DEL %sschema", prefix);
    rdo("HSET %sschema a b", prefix);
    c = conf_here();
    assert_null(open_conf(&c, 0, -EINVAL, &err));
    assert_non_null(strstr(err.msg, "not a gatehouse store"));
    /* without GH_STORE_CREATE a missing marker is not set */
    rdo("DEL %sschema", prefix);
    c = conf_here();
    gh_store_unref(open_conf(&c, 0, 0, NULL));
    redisReply *r = rq("EXISTS %sschema", prefix);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    c = conf_here();
    gh_store_unref(open_conf(&c, GH_STORE_CREATE, 0, NULL));
    r = rq("GET %sschema", prefix);
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
}

/* ---- Redis down, killed, stopped ---- */

static void test_down_sync_api(void **state)
{
    (void)state;
    int fd;
    int port = closed_port(&fd);
    gh_store_conf_t c = conf_at(port, prefix, 200);
    gh_store_error_t err;
    /* Opening needs no Redis: a server starts without it. */
    gh_store_t *down = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_spec_t spec = {"alice", NULL, NULL, NULL, 0};
    assert_int_equal(gh_store_key_create(down, &spec, T0, key, NULL, &err), -EIO);
    assert_non_null(strstr(err.msg, "cannot connect to Redis"));
    for (size_t i = 0; i < GH_APIKEY_LEN; i++)
        assert_int_equal(key[i], 0); /* no key shown for a key not made */
    gh_apikey_t k;
    assert_int_equal(gh_store_key_get(down, "aaaaaaaaaaaa", &k, &err), -EIO);
    assert_int_equal(gh_store_key_revoke(down, "aaaaaaaaaaaa", T0, &err), -EIO);
    gh_apikey_t *keys;
    size_t n;
    assert_int_equal(gh_store_key_list(down, NULL, &keys, &n, &err), -EIO);
    assert_null(keys);
    /* usage counts wait for the next write */
    gh_store_usage_add(down, NULL, 0, "aaaaaaaaaaaa", T0, 2);
    assert_int_equal(gh_store_usage_flush(down, &err), -EIO);
    uint64_t cnt[1];
    assert_int_equal(gh_store_usage_get(down, "aaaaaaaaaaaa", T0 / DAY, T0 / DAY, cnt, &err), -EIO);
    gh_store_unref(down); /* its last write fails too: logged, not hung */
    close(fd);
}

typedef struct {
    uv_loop_t *loop;
    gh_store_t *store;
    const char *key;
    answer_t a;
} probe_t;

/* One lookup, run to its answer; the answer never comes inside the call. */
static int probe(probe_t *p)
{
    gh_apikey_presented_t pk;
    gh_store_req_t *r;
    memset(&p->a, 0, sizeof(p->a));
    assert_int_equal(gh_apikey_present(p->key, strlen(p->key), &pk, NULL), 0);
    assert_int_equal(gh_store_key_lookup(p->store, p->loop, &pk, on_answer, &p->a, &r), 0);
    assert_int_equal(p->a.calls, 0);
    answer_t *one[] = {&p->a, NULL};
    run_until(p->loop, answered, one);
    assert_int_equal(p->a.calls, 1);
    return p->a.status;
}

static void test_down_lookups(void **state)
{
    (void)state;
    int fd;
    int port = closed_port(&fd);
    gh_store_conf_t c = conf_at(port, prefix, 200);
    gh_store_t *down = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char key[GH_APIKEY_LEN + 1];
    assert_int_equal(gh_apikey_generate(key), 0);
    probe_t p = {&loop, down, key, {0}};
    /* the first lookup waits for the new client's connection, which never
     * comes; the ones after fail at once, answered on the next turn */
    assert_int_equal(probe(&p), -ENOTCONN);
    for (int i = 0; i < 3; i++)
        assert_int_equal(probe(&p), -ENOTCONN);
    gh_store_unref(down);
    loop_done(&loop);
    close(fd);
}

static void test_killed_and_restarted(void **state)
{
    (void)state;
    rs_t own;
    assert_int_equal(rs_start(&own, NULL), 0);
    gh_store_conf_t c = conf_at(own.port, prefix, 2000);
    gh_store_t *s = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    gh_store_error_t err;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_spec_t spec = {"alice", NULL, NULL, NULL, 0};
    assert_int_equal(gh_store_key_create(s, &spec, T0, key, NULL, &err), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    probe_t p = {&loop, s, key, {0}};
    assert_int_equal(probe(&p), 0);
    rs_kill(&own);
    /* A lookup sent before the client saw the connection go breaks with
     * it (-ECONNRESET); once it knows, every lookup fails at once. */
    int rc, tries = 0;
    while ((rc = probe(&p)) == -ECONNRESET)
        assert_true(++tries < 100);
    assert_int_equal(rc, -ENOTCONN);
    assert_int_equal(probe(&p), -ENOTCONN);
    assert_int_equal(gh_store_key_create(s, &spec, T0, key, NULL, &err), -EIO);
    /* Back (empty: nothing persisted): both APIs recover without a new
     * store. The sync client waits out its backoff first. */
    assert_int_equal(rs_restart(&own), 0);
    for (tries = 0; gh_store_key_create(s, &spec, T0, key, NULL, &err) != 0; tries++) {
        assert_true(tries < 600);
        rs_sleep_ms(50);
    }
    for (tries = 0; (rc = probe(&p)) != 0; tries++) {
        assert_true(rc == -ENOTCONN || rc == -ECONNRESET);
        assert_true(tries < 10000);
        rs_sleep_ms(5);
    }
    assert_int_equal(p.a.state, GH_APIKEY_VALID);
    gh_store_unref(s);
    loop_done(&loop);
    rs_stop(&own);
}

static void test_stopped_redis_times_out(void **state)
{
    (void)state;
    gh_store_conf_t c = conf_here();
    c.timeout_ms = 100;
    gh_store_t *s = open_conf(&c, 0, 0, NULL);
    gh_store_error_t err;
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    probe_t p = {&loop, s, key, {0}};
    assert_int_equal(probe(&p), 0);
    /* accepts, never answers: the lookup's timeout answers */
    rs_pause(&srv);
    assert_int_equal(probe(&p), -ETIMEDOUT);
    gh_apikey_t k;
    assert_int_equal(gh_store_key_get(s, "aaaaaaaaaaaa", &k, &err), -EIO);
    assert_non_null(strstr(err.msg, "no answer from Redis within"));
    rs_resume(&srv);
    int rc;
    for (int tries = 0; (rc = probe(&p)) != 0; tries++) {
        assert_true(rc == -ENOTCONN || rc == -ETIMEDOUT || rc == -ECONNRESET);
        assert_true(tries < 10000);
        rs_sleep_ms(5);
    }
    gh_store_unref(s);
    loop_done(&loop);
}

/* ---- usage ---- */

static void test_usage_from_two_gatehouses_adds_up(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    gh_store_t *other = open_again();
    for (int i = 0; i < 10; i++) {
        gh_store_usage_add(st, NULL, (unsigned)i, rec.id, T0, 1);
        gh_store_usage_add(other, NULL, (unsigned)i, rec.id, T0 + DAY, 2);
        gh_store_usage_add(other, NULL, 0, rec.id, T0, 3);
        if (i % 3 == 0) {
            assert_int_equal(gh_store_usage_flush(st, &err), 0);
            assert_int_equal(gh_store_usage_flush(other, &err), 0);
        }
    }
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    gh_store_unref(other); /* the last unref writes the rest */
    gh_store_t *reader = open_again();
    uint64_t c[2];
    assert_int_equal(gh_store_usage_get(reader, rec.id, T0 / DAY, T0 / DAY + 1, c, &err), 0);
    assert_int_equal(c[0], 10 + 30);
    assert_int_equal(c[1], 20);
    /* a count at the top stays there */
    rdo("HSET %susage:%s %d 9223372036854775800", prefix, rec.id, T0 / DAY);
    gh_store_usage_add(st, NULL, 0, rec.id, T0, 100);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    redisReply *r = rq("HGET %susage:%s %d", prefix, rec.id, T0 / DAY);
    assert_string_equal(r->str, "9223372036854775807");
    freeReplyObject(r);
    gh_store_unref(reader);
    gh_apikey_dispose(&rec);
}

/* A batch whose answer was lost (Redis stopped while it was sent) may
 * have been applied: it is sent again with its number, and Redis skips
 * it, so it counts once. Without the number it would count twice. */
static void test_usage_whose_answer_was_lost_counts_once(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    gh_apikey_t rec;
    gh_store_error_t err;
    create("alice", NULL, NULL, 0, T0, key, &rec);
    /* the usage client with a short timeout (its own is 10 s) */
    gh_rs_t *q = st->impl;
    gh_redis_opts_t o = q->opts;
    o.command_timeout_ms = 100;
    gh_redis_sync_free(q->bulk);
    assert_non_null(q->bulk = gh_redis_sync_new(&o, NULL, 0));
    gh_store_usage_add(st, NULL, 0, rec.id, T0, 1);
    assert_int_equal(gh_store_usage_flush(st, &err), 0); /* loads the script */
    rs_pause(&srv);
    gh_store_usage_add(st, NULL, 0, rec.id, T0, 5);
    assert_int_equal(gh_store_usage_flush(st, &err), 0); /* in doubt: kept by the backend */
    assert_non_null(q->doubt);
    rs_resume(&srv);
    /* Redis runs what it had buffered: the batch is applied */
    redisReply *r;
    for (int tries = 0;; tries++) {
        r = rq("HGET %susage:%s %d", prefix, rec.id, T0 / DAY);
        int applied = r->str != NULL && strcmp(r->str, "6") == 0;
        freeReplyObject(r);
        if (applied)
            break;
        assert_true(tries < 2000);
        rs_sleep_ms(5);
    }
    /* sent again (reading settles it): skipped */
    uint64_t c[1];
    for (int tries = 0; gh_store_usage_get(st, rec.id, T0 / DAY, T0 / DAY, c, &err) != 0; tries++) {
        assert_true(tries < 600); /* the client's backoff after the timeout */
        rs_sleep_ms(50);
    }
    assert_null(q->doubt);
    assert_int_equal(c[0], 6);
    gh_store_usage_add(st, NULL, 0, rec.id, T0, 1);
    assert_int_equal(gh_store_usage_flush(st, &err), 0);
    assert_int_equal(gh_store_usage_get(st, rec.id, T0 / DAY, T0 / DAY, c, &err), 0);
    assert_int_equal(c[0], 7);
    gh_apikey_dispose(&rec);
}

/* ---- lifetimes of the per-loop clients ---- */

/* A worker ends while lookups are in flight (Redis stopped): the ones its
 * streams cancelled end without a callback, the others get -ESHUTDOWN at
 * gh_store_loop_end, once each, and nothing is left on the loop. */
static void test_lookups_in_flight_at_a_worker_teardown(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    probe_t p = {&loop, st, key, {0}};
    assert_int_equal(probe(&p), 0); /* connected */
    rs_pause(&srv);
    enum { N = 8 };
    answer_t a[N];
    gh_store_req_t *r[N];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < N; i++)
        assert_int_equal(lookup(&loop, key, &a[i], &r[i]), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* sent, unanswered */
    for (int i = 0; i < N; i += 2)
        gh_store_req_cancel(r[i]);
    assert_int_equal(atomic_load(&st->pending), N);
    loop_done(&loop);
    for (int i = 0; i < N; i++) {
        assert_int_equal(a[i].calls, i % 2 ? 1 : 0);
        if (i % 2)
            assert_int_equal(a[i].status, -ESHUTDOWN);
    }
    assert_int_equal(atomic_load(&st->pending), 0);
    gh_store_loop_end(&loop); /* again: nothing left */
    rs_resume(&srv);
}

/* The store goes while a loop still runs: the loop closes its client
 * itself (its tick), after which nothing of the store keeps the loop
 * alive: uv_run returns on its own. */
static void test_client_closed_by_its_loop_when_the_store_goes(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    probe_t p = {&loop, st, key, {0}};
    assert_int_equal(probe(&p), 0);
    gh_store_unref(st);
    st = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    gh_store_loop_end(&loop); /* nothing left for it */
    st = open_again();
}

typedef struct {
    uv_thread_t thread;
    gh_store_t *store; /* borrowed until issued is set */
    const char *key;
    uv_sem_t *issued;
    answer_t a[16];
    int close_rc, ok;
} worker_t;

static int all_answered(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < 16; i++)
        if (w->a[i].calls == 0)
            return 0;
    return 1;
}

static void worker_main(void *arg)
{
    worker_t *w = arg;
    uv_loop_t loop;
    gh_apikey_presented_t p;
    gh_store_req_t *r;
    uv_loop_init(&loop);
    gh_apikey_present(w->key, strlen(w->key), &p, NULL);
    w->ok = 1;
    for (int i = 0; i < 16; i++)
        if (gh_store_key_lookup(w->store, &loop, &p, on_answer, &w->a[i], &r) != 0)
            w->ok = 0;
    w->store = NULL;
    uv_sem_post(w->issued);
    while (!all_answered(w))
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < 16; i++)
        if (w->a[i].calls != 1 || w->a[i].status != 0)
            w->ok = 0;
    /* runs out once the store's tick closed this loop's client */
    uv_run(&loop, UV_RUN_DEFAULT);
    w->close_rc = uv_loop_close(&loop);
}

/* Two worker threads look keys up while the owner drops the store: the
 * last reference goes on whichever thread answers last; each loop closes
 * its own client. (ASan checks that nothing is used after it is freed.) */
static void test_store_released_under_worker_threads(void **state)
{
    (void)state;
    char key[GH_APIKEY_LEN + 1];
    create("alice", NULL, NULL, 0, T0, key, NULL);
    uv_sem_t issued;
    assert_int_equal(uv_sem_init(&issued, 0), 0);
    worker_t w[2];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < 2; i++) {
        w[i].store = st;
        w[i].key = key;
        w[i].issued = &issued;
        assert_int_equal(uv_thread_create(&w[i].thread, worker_main, &w[i]), 0);
    }
    uv_sem_wait(&issued);
    uv_sem_wait(&issued);
    gh_store_unref(st);
    st = NULL;
    for (int i = 0; i < 2; i++) {
        uv_thread_join(&w[i].thread);
        assert_true(w[i].ok);
        assert_int_equal(w[i].close_rc, 0);
    }
    uv_sem_destroy(&issued);
    st = open_again();
}

/* ---- import and list at size ---- */

static void test_import_and_list_at_size(void **state)
{
    (void)state;
    enum { N = 2500 };
    gh_apikey_csv_row_t *rows = calloc(N + 1, sizeof(*rows));
    char(*keys)[40] = calloc(N + 1, sizeof(*keys));
    gh_store_import_result_t res;
    gh_store_error_t err;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "imported-key-%08d-abcdefgh", i);
        rows[i] = (gh_apikey_csv_row_t){(unsigned)i + 2,
                                        keys[i],
                                        strlen(keys[i]),
                                        (char *)(i % 2 ? "odd" : "even"),
                                        NULL,
                                        NULL,
                                        1};
    }
    assert_int_equal(gh_store_key_import(st, rows, N, T0, 0, &res, &err), 0);
    assert_int_equal(res.created, N);
    free(res.errors);
    char k[GH_APIKEY_LEN + 1];
    create("late", NULL, NULL, 0, T0 - 1, k, NULL); /* earlier than every import */
    /* every key, in chunks, oldest first, each once */
    gh_apikey_t *all;
    size_t n;
    assert_int_equal(gh_store_key_list(st, NULL, &all, &n, &err), 0);
    assert_int_equal(n, N + 1);
    assert_string_equal(all[0].consumer, "late");
    for (size_t i = 1; i < n; i++) {
        assert_true(all[i].created_at == T0);
        if (i > 1)
            assert_true(strcmp(all[i - 1].id, all[i].id) < 0);
    }
    gh_apikey_list_free(all, n);
    assert_int_equal(gh_store_key_list(st, "odd", &all, &n, &err), 0);
    assert_int_equal(n, N / 2);
    gh_apikey_list_free(all, n);
    /* moved to another consumer by a second import: listed there only */
    rows[0].consumer = (char *)"odd";
    assert_int_equal(gh_store_key_import(st, rows, 1, T0 + 5, 0, &res, &err), 0);
    assert_int_equal(res.updated, 1);
    free(res.errors);
    assert_int_equal(gh_store_key_list(st, "odd", &all, &n, &err), 0);
    assert_int_equal(n, N / 2 + 1);
    gh_apikey_list_free(all, n);
    assert_int_equal(gh_store_key_list(st, "even", &all, &n, &err), 0);
    assert_int_equal(n, N / 2 - 1);
    gh_apikey_list_free(all, n);
    /* many refused rows: all counted, the first messages kept, nothing written */
    gh_apikey_presented_t p;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(gh_apikey_present(keys[i], strlen(keys[i]), &p, NULL), 0);
        assert_int_equal(gh_store_key_revoke(st, p.id, T0, &err), 0);
    }
    snprintf(keys[N], sizeof(keys[N]), "a-new-key-abcdefghijklmnop");
    rows[N] = (gh_apikey_csv_row_t){9999, keys[N], strlen(keys[N]), (char *)"new", NULL, NULL, 1};
    assert_int_equal(gh_store_key_import(st, rows, N + 1, T0, 0, &res, &err), -EINVAL);
    assert_int_equal(res.total_errors, 200);
    assert_int_equal(res.num_errors, GH_APIKEY_CSV_MAX_ERRORS);
    assert_int_equal(res.created, 0);
    free(res.errors);
    assert_int_equal(find(st, keys[N], T0, NULL), -ENOENT);
    free(rows);
    free(keys);
}

static void test_import_limit(void **state)
{
    (void)state;
    enum { N = 100001 };
    gh_apikey_csv_row_t *rows = calloc(N, sizeof(*rows));
    char(*keys)[32] = calloc(N, sizeof(*keys));
    gh_store_import_result_t res;
    gh_store_error_t err;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k-%08d-abcdefghijklmn", i);
        rows[i] = (gh_apikey_csv_row_t){
            (unsigned)i + 2, keys[i], strlen(keys[i]), (char *)"c", NULL, NULL, 1};
    }
    assert_int_equal(gh_store_key_import(st, rows, N, T0, 1, &res, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "at most 100000"));
    free(res.errors);
    free(rows);
    free(keys);
}

/* ---- OAuth clients and revocations in Redis ---- */

static void test_client_data_model(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec;
    gh_store_error_t err;
    gh_client_spec_t spec = {"Orders", "a b", "https://x/y", 0, NULL, 600};
    assert_int_equal(gh_store_client_create(st, &spec, T0, secret, &rec, &err), 0);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", rec.secret_hash[i]);
    redisReply *r = rq("HGETALL %sclient:%s", prefix, rec.id);
    const char *want[][2] = {
        {"name", "Orders"},           {"scopes", "a b"},
        {"audiences", "https://x/y"}, {"auth_methods", "client_secret_basic client_secret_post"},
        {"created_at", "1700000000"}, {"token_ttl", "600"},
        {"secret_hash", hex}};
    assert_int_equal(r->elements, 2 * (sizeof(want) / sizeof(want[0])));
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        int found = 0;
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (strcmp(r->element[i]->str, want[w][0]) == 0) {
                assert_string_equal(r->element[i + 1]->str, want[w][1]);
                found = 1;
            }
        if (!found)
            fail_msg("field %s missing", want[w][0]);
    }
    freeReplyObject(r);
    r = rq("ZSCORE %sclients %s", prefix, rec.id);
    assert_string_equal(r->str, "1700000000");
    freeReplyObject(r);
    char s1[GH_CLIENT_SECRET_LEN + 1];
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 60, T0 + 5, s1, NULL, &err), 0);
    r = rq("HMGET %sclient:%s prev_secret_hash prev_valid_until secret_rotated_at", prefix, rec.id);
    assert_string_equal(r->element[0]->str, hex);
    assert_string_equal(r->element[1]->str, "1700000065");
    assert_string_equal(r->element[2]->str, "1700000005");
    freeReplyObject(r);
    /* grace 0 removes the previous secret's fields */
    assert_int_equal(gh_store_client_rotate_secret(st, rec.id, 0, T0 + 6, s1, NULL, &err), 0);
    r = rq("HEXISTS %sclient:%s prev_secret_hash", prefix, rec.id);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* revocations: a number each, two sorted sets */
    assert_int_equal(gh_store_revocation_add(st, "j1", T0 + 100, T0, &err), 0);
    assert_int_equal(gh_store_revocation_add(st, "j2", T0 + 10, T0, &err), 0);
    r = rq("GET %srevoked-seq", prefix);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    r = rq("ZSCORE %srevoked j2", prefix);
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    r = rq("ZSCORE %srevoked-exp j2", prefix);
    assert_string_equal(r->str, "1700000010");
    freeReplyObject(r);
    /* an add purges what expired, from both sets */
    assert_int_equal(gh_store_revocation_add(st, "j3", T0 + 100, T0 + 10, &err), 0);
    r = rq("ZCARD %srevoked", prefix);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    r = rq("ZSCORE %srevoked-exp j2", prefix);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    raw_lacks(secret + 8, 20);
    raw_lacks(s1 + 8, 20);
    gh_client_dispose(&rec);
}

/* ---- client-assertion claims in Redis ---- */

static void test_jti_claim_data_model(void **state)
{
    (void)state;
    gh_store_error_t err;
    assert_int_equal(gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "j 1:x", T0 + 300, T0, &err),
                     0);
    char k[128];
    snprintf(k, sizeof(k), "%sjti:ghc_aaaaaaaaaaaaaaaa:j 1:x", prefix);
    redisReply *r = rq("GET %s", k); /* an argument: not split at its space */
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "1700000300");
    freeReplyObject(r);
    /* expires with the claim: (until - now) seconds from when it was made */
    r = rq("PTTL %s", k);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer > 0 && r->integer <= 300000);
    freeReplyObject(r);
    /* the async claim the same */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    tally_t t[2] = {{0, 0}, {0, 1}};
    gh_store_req_t *req;
    assert_int_equal(gh_store_jti_claim_async(st, &loop, "ghc_aaaaaaaaaaaaaaaa", "a", T0 + 30, T0,
                                              on_tally, &t[0], &req),
                     0);
    run_until(&loop, all_tallied, t);
    assert_int_equal(t[0].status, 0);
    r = rq("PTTL %sjti:ghc_aaaaaaaaaaaaaaaa:a", prefix);
    assert_true(r->integer > 0 && r->integer <= 30000);
    freeReplyObject(r);
    /* a claim's key held by something else reads as claimed: refused,
     * never taken as new */
    rdo("HSET %sjti:ghc_aaaaaaaaaaaaaaaa:h f v", prefix);
    assert_int_equal(gh_store_jti_claim(st, "ghc_aaaaaaaaaaaaaaaa", "h", T0 + 30, T0, &err),
                     -EEXIST);
    /* other prefixes are other fleets */
    char p2[40];
    snprintf(p2, sizeof(p2), "%sother:", prefix);
    gh_store_conf_t c = conf_at(srv.port, p2, 5000);
    gh_store_t *o = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    assert_int_equal(gh_store_jti_claim(o, "ghc_aaaaaaaaaaaaaaaa", "a", T0 + 30, T0, &err), 0);
    gh_store_unref(o);
    loop_done(&loop);
}

static int claim_real(gh_store_t *s, const char *jti, int64_t life)
{
    gh_store_error_t err;
    int64_t now = (int64_t)time(NULL);
    return gh_store_jti_claim(s, "ghc_aaaaaaaaaaaaaaaa", jti, now + life, now, &err);
}

/* On the real clock: a one-second claim is gone after Redis expired it,
 * and the jti may be claimed again. */
static void test_jti_claim_expires_in_redis(void **state)
{
    (void)state;
    assert_int_equal(claim_real(st, "short", 1), 0);
    assert_int_equal(claim_real(st, "long", 3600), 0);
    int rc, tries = 0;
    while ((rc = claim_real(st, "short", 1)) == -EEXIST && tries++ < 1000)
        rs_sleep_ms(10);
    assert_int_equal(rc, 0);
    assert_int_equal(claim_real(st, "long", 3600), -EEXIST);
}

static void test_jti_claim_redis_down_or_stopped(void **state)
{
    (void)state;
    int fd;
    gh_store_error_t err;
    gh_store_conf_t c = conf_at(closed_port(&fd), prefix, 200);
    gh_store_t *down = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    assert_int_equal(gh_store_jti_claim(down, "ghc_aaaaaaaaaaaaaaaa", "j", T0 + 30, T0, &err),
                     -EIO);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < 2; i++) {
        tally_t t[2] = {{0, 0}, {0, 1}};
        gh_store_req_t *req;
        assert_int_equal(gh_store_jti_claim_async(down, &loop, "ghc_aaaaaaaaaaaaaaaa", "j", T0 + 30,
                                                  T0, on_tally, &t[0], &req),
                         0);
        assert_int_equal(t[0].calls, 0);
        run_until(&loop, all_tallied, t);
        assert_int_equal(t[0].status, -ENOTCONN);
    }
    gh_store_unref(down);
    close(fd);
    /* accepts, never answers: the claim's timeout answers (and the claim
     * may have been made: the caller fails closed) */
    c = conf_here();
    c.timeout_ms = 100;
    gh_store_t *s = open_conf(&c, 0, 0, NULL);
    tally_t t[2] = {{0, 0}, {0, 1}};
    gh_store_req_t *req;
    assert_int_equal(gh_store_jti_claim_async(s, &loop, "ghc_aaaaaaaaaaaaaaaa", "warm", T0 + 30, T0,
                                              on_tally, &t[0], &req),
                     0);
    run_until(&loop, all_tallied, t);
    assert_int_equal(t[0].status, 0);
    rs_pause(&srv);
    t[0].calls = 0;
    assert_int_equal(gh_store_jti_claim_async(s, &loop, "ghc_aaaaaaaaaaaaaaaa", "j2", T0 + 30, T0,
                                              on_tally, &t[0], &req),
                     0);
    run_until(&loop, all_tallied, t);
    assert_int_equal(t[0].status, -ETIMEDOUT);
    assert_int_equal(gh_store_jti_claim(s, "ghc_aaaaaaaaaaaaaaaa", "j3", T0 + 30, T0, &err), -EIO);
    assert_non_null(strstr(err.msg, "no answer from Redis within"));
    /* cancelled while Redis does not answer: no callback */
    t[0].calls = 0;
    assert_int_equal(gh_store_jti_claim_async(s, &loop, "ghc_aaaaaaaaaaaaaaaa", "j4", T0 + 30, T0,
                                              on_tally, &t[0], &req),
                     0);
    gh_store_req_cancel(req);
    rs_resume(&srv);
    gh_store_unref(s);
    loop_done(&loop);
    assert_int_equal(t[0].calls, 0);
}

static void test_client_malformed_records(void **state)
{
    (void)state;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t rec, got;
    gh_store_error_t err;
    client_new("a", NULL, "x", NULL, T0, secret, &rec);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* A field that decides whether a client authenticates and does not
     * read is a failure, for the CLI and for lookups: never "active",
     * never "no previous secret". */
    const char *bad[][2] = {
        {"revoked_at", "12abc"},
        {"revoked_at", ""},
        {"revoked_at", "0"},
        {"revoked_at", "-5"},
        {"auth_methods", "magic"},
        {"auth_methods", ""},
        {"auth_methods", "private_key_jwt"}, /* but it has a secret */
        {"secret_hash", "nothex"},
        {"prev_secret_hash", "zz"},
        {"prev_valid_until", "1e9"},
        {"token_ttl", "x"},
        {"created_at", "99999999999999999999"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *old = NULL;
        redisReply *o = rq("HGET %sclient:%s %s", prefix, rec.id, bad[i][0]);
        if (o->type == REDIS_REPLY_STRING)
            old = strdup(o->str);
        freeReplyObject(o);
        rdo("HSET %sclient:%s %s %s", prefix, rec.id, bad[i][0], bad[i][1]);
        if (gh_store_client_get(st, rec.id, &got, &err) != -EIO)
            fail_msg("case %zu: %s=%s read as a record", i, bad[i][0], bad[i][1]);
        canswer_t a = {0};
        canswer_t *one[] = {&a, NULL};
        gh_store_req_t *r;
        assert_int_equal(gh_store_client_lookup(st, &loop, rec.id, on_client, &a, &r), 0);
        run_until(&loop, canswered, one);
        if (a.status != -EIO)
            fail_msg("case %zu: lookup %d", i, a.status);
        if (old != NULL)
            rdo("HSET %sclient:%s %s %s", prefix, rec.id, bad[i][0], old);
        else
            rdo("HDEL %sclient:%s %s", prefix, rec.id, bad[i][0]);
        free(old);
    }
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), 0);
    gh_client_dispose(&got);
    /* a key of another type where a record belongs */
    rdo("DEL %sclient:%s", prefix, rec.id);
    rdo("SET %sclient:%s x", prefix, rec.id);
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), -EIO);
    assert_non_null(strstr(err.msg, "WRONGTYPE"));
    rdo("DEL %sclient:%s", prefix, rec.id);
    assert_int_equal(gh_store_client_get(st, rec.id, &got, &err), -ENOENT);
    /* the listing of a client whose record is gone skips it */
    gh_client_t *all;
    size_t n;
    assert_int_equal(gh_store_client_list(st, &all, &n, &err), 0);
    assert_int_equal(n, 0);
    gh_client_list_free(all, n);
    loop_done(&loop);
    gh_client_dispose(&rec);
}

static void test_client_lookup_redis_down(void **state)
{
    (void)state;
    int fd;
    int port = closed_port(&fd);
    gh_store_conf_t c = conf_at(port, prefix, 200);
    gh_store_t *down = open_conf(&c, GH_STORE_CREATE, 0, NULL);
    gh_store_error_t err;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_spec_t spec = {"a", NULL, "x", 0, NULL, 0};
    assert_int_equal(gh_store_client_create(down, &spec, T0, secret, NULL, &err), -EIO);
    assert_string_equal(secret, "");
    assert_int_equal(gh_store_revocation_add(down, "j", T0 + 5, T0, &err), -EIO);
    gh_revocation_t *e;
    size_t n;
    uint64_t next;
    int more;
    assert_int_equal(gh_store_revocations_since(down, 5, T0, 10, &e, &n, &next, &more, &err), -EIO);
    assert_int_equal(next, 5); /* the cursor stays */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < 2; i++) {
        canswer_t a = {0};
        canswer_t *one[] = {&a, NULL};
        gh_store_req_t *r;
        assert_int_equal(
            gh_store_client_lookup(down, &loop, "ghc_aaaaaaaaaaaaaaaa", on_client, &a, &r), 0);
        assert_int_equal(a.calls, 0);
        run_until(&loop, canswered, one);
        assert_int_equal(a.status, -ENOTCONN);
    }
    gh_store_unref(down);
    loop_done(&loop);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES(setup, teardown),
        CLIENT_CASES(setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_data_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_malformed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_lookup_redis_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_claim_data_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_claim_expires_in_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jti_claim_redis_down_or_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixes_are_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_sync_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_redis_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_from_two_gatehouses_adds_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_whose_answer_was_lost_counts_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lookups_in_flight_at_a_worker_teardown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_closed_by_its_loop_when_the_store_goes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_released_under_worker_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_and_list_at_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
