/* What the Redis clients share: options, the RESP request encoder, script
 * ids, counters and their /metrics lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "store/redis_internal.h"

static char *dup_opt(const char *s, int *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = 1;
    return d;
}

void redis_conf_dispose(redis_conf_t *rc)
{
    free(rc->host);
    free(rc->unix_path);
    free(rc->username);
    if (rc->password != NULL) {
        /* A secret: do not leave it in freed memory. */
        volatile char *p = rc->password;
        while (*p != '\0')
            *p++ = '\0';
        free(rc->password);
    }
    free(rc->prefix);
    memset(rc, 0, sizeof(*rc));
}

#define DAY_MS (24ull * 3600 * 1000)

int redis_conf_init(redis_conf_t *rc, const gh_redis_opts_t *o, char *err, size_t errcap)
{
    memset(rc, 0, sizeof(*rc));
    const char *why = NULL;
    const char *host = o->host;
    if (o->unix_path != NULL && host != NULL)
        why = "give either host or unix_path, not both";
    else if (o->unix_path == NULL && host == NULL)
        why = "no host or unix_path";
    else if (o->unix_path != NULL && (o->unix_path[0] == '\0' || strlen(o->unix_path) >= 108))
        why = "unix_path is empty or too long";
    if (why == NULL && host != NULL) {
        /* hiredis resolves names with getaddrinfo, which blocks: a worker
         * loop must never wait on DNS. "localhost" means 127.0.0.1 (not
         * ::1, where a server bound to 127.0.0.1 refuses). */
        unsigned char a[16];
        if (strcmp(host, "localhost") == 0)
            host = "127.0.0.1";
        else if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1)
            why = "host must be an IP address or localhost";
    }
    if (why == NULL && o->prefix != NULL && strlen(o->prefix) > REDIS_PREFIX_MAX)
        why = "prefix longer than 256 bytes";
    if (why == NULL && o->username != NULL && o->password == NULL)
        why = "username without password";
    if (why == NULL && o->pool_size > REDIS_POOL_MAX)
        why = "pool_size above 64";
    if (why == NULL && o->max_pending > REDIS_PENDING_MAX)
        why = "max_pending above 1048576";
    if (why == NULL && (o->connect_timeout_ms > DAY_MS || o->command_timeout_ms > DAY_MS ||
                        o->backoff_min_ms > DAY_MS || o->backoff_max_ms > DAY_MS))
        why = "a timeout or backoff above one day";
    if (why == NULL && o->db > 1000000)
        why = "db above 1000000";
    if (why != NULL) {
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "redis: %s", why);
        return -EINVAL;
    }
    int oom = 0;
    rc->host = dup_opt(host, &oom);
    rc->unix_path = dup_opt(o->unix_path, &oom);
    rc->username = dup_opt(o->username, &oom);
    rc->password = dup_opt(o->password, &oom);
    rc->prefix = dup_opt(o->prefix, &oom);
    rc->prefix_len = o->prefix != NULL ? strlen(o->prefix) : 0;
    rc->port = o->port != 0 ? o->port : 6379;
    rc->db = o->db;
    rc->pool_size = o->pool_size != 0 ? o->pool_size : 2;
    rc->max_pending = o->max_pending != 0 ? o->max_pending : 1024;
    rc->connect_timeout_ms = o->connect_timeout_ms != 0 ? o->connect_timeout_ms : 1000;
    rc->command_timeout_ms = o->command_timeout_ms != 0 ? o->command_timeout_ms : 1000;
    rc->backoff_min_ms = o->backoff_min_ms != 0 ? o->backoff_min_ms : 100;
    rc->backoff_max_ms = o->backoff_max_ms != 0 ? o->backoff_max_ms : 5000;
    if (rc->backoff_max_ms < rc->backoff_min_ms)
        rc->backoff_max_ms = rc->backoff_min_ms;
    if (rc->unix_path != NULL)
        snprintf(rc->where, sizeof(rc->where), "unix:%s", rc->unix_path);
    else if (rc->host != NULL && strchr(rc->host, ':') != NULL)
        snprintf(rc->where, sizeof(rc->where), "[%s]:%u", rc->host, rc->port);
    else if (rc->host != NULL)
        snprintf(rc->where, sizeof(rc->where), "%s:%u", rc->host, rc->port);
    if (oom) {
        redis_conf_dispose(rc);
        if (err != NULL && errcap > 0)
            snprintf(err, errcap, "redis: out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* ---- RESP encoder ---- */

void redis_buf_init(redis_buf_t *b)
{
    b->p = b->inl;
    b->len = 0;
    b->cap = sizeof(b->inl);
    b->oom = 0;
    b->inl[0] = '\0';
}

void redis_buf_dispose(redis_buf_t *b)
{
    if (b->p != b->inl)
        free(b->p);
    redis_buf_init(b);
}

static int reserve(redis_buf_t *b, size_t more)
{
    if (b->oom)
        return -1;
    /* +1: the NUL kept past the end. */
    if (more + 1 > b->cap - b->len) {
        size_t cap = b->cap;
        while (more + 1 > cap - b->len) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return -1;
            }
            cap *= 2;
        }
        char *p = b->p == b->inl ? malloc(cap) : realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return -1;
        }
        if (b->p == b->inl)
            memcpy(p, b->inl, b->len);
        b->p = p;
        b->cap = cap;
    }
    return 0;
}

void redis_buf_raw(redis_buf_t *b, const char *a, size_t len)
{
    if (reserve(b, len) < 0)
        return;
    memcpy(b->p + b->len, a, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void put_head(redis_buf_t *b, char type, size_t n)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do {
        tmp[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    tmp[--i] = type;
    redis_buf_raw(b, tmp + i, sizeof(tmp) - i);
}

void redis_buf_count(redis_buf_t *b, size_t n)
{
    put_head(b, '*', n);
}

void redis_buf_arg(redis_buf_t *b, const char *pfx, size_t pfx_len, const char *a, size_t len)
{
    put_head(b, '$', pfx_len + len);
    if (reserve(b, pfx_len + len + 2) < 0)
        return;
    if (pfx_len > 0)
        memcpy(b->p + b->len, pfx, pfx_len);
    if (len > 0)
        memcpy(b->p + b->len + pfx_len, a, len);
    b->len += pfx_len + len;
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
    b->p[b->len] = '\0';
}

/* Commands that change a connection's state for whoever sends next on it.
 * A pooled connection carries many callers' commands, interleaved: a
 * MULTI would take other callers' commands into its transaction, a
 * SELECT would move them to another db, SUBSCRIBE or MONITOR would turn
 * every later reply into a message, CLIENT REPLY OFF would leave callers
 * without replies. Atomic multi-key work is a script (gh_redis_eval). */
static int changes_connection(const char *cmd, size_t len, int argc, const char *arg1,
                              size_t arg1_len)
{
    static const char *const refused[] = {
        "SUBSCRIBE",    "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
        "SUNSUBSCRIBE", "MONITOR",    "QUIT",       "RESET",       "SELECT",
        "AUTH",         "HELLO",      "MULTI",      "EXEC",        "DISCARD",
        "WATCH",        "UNWATCH",    "SYNC",       "PSYNC",       "REPLCONF",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (strlen(refused[i]) == len && strncasecmp(refused[i], cmd, len) == 0)
            return 1;
    /* CLIENT REPLY OFF|SKIP, and CLIENT with anything that changes replies. */
    return len == 6 && strncasecmp(cmd, "CLIENT", 6) == 0 && argc > 1 && arg1 != NULL &&
           arg1_len == 5 && strncasecmp(arg1, "REPLY", 5) == 0;
}

int redis_format(redis_buf_t *b, const redis_conf_t *rc, int argc, const char *const *argv,
                 const size_t *lens, uint32_t keys)
{
    if (argc < 1 || argv == NULL || lens == NULL || argv[0] == NULL)
        return -EINVAL;
    if (changes_connection(argv[0], lens[0], argc, argc > 1 ? argv[1] : NULL,
                           argc > 1 ? lens[1] : 0))
        return -EINVAL;
    redis_buf_count(b, (size_t)argc);
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL && lens[i] != 0)
            return -EINVAL;
        int key = i < 32 && (keys >> i & 1u);
        redis_buf_arg(b, rc->prefix, key ? rc->prefix_len : 0, argv[i], lens[i]);
    }
    return b->oom ? -ENOMEM : 0;
}

int redis_format_script_tail(redis_buf_t *b, const redis_conf_t *rc, int nkeys, int argc,
                             const char *const *argv, const size_t *lens)
{
    if (nkeys < 0 || argc < nkeys || (argc > 0 && (argv == NULL || lens == NULL)))
        return -EINVAL;
    char num[16];
    int n = snprintf(num, sizeof(num), "%d", nkeys);
    redis_buf_arg(b, NULL, 0, num, (size_t)n);
    for (int i = 0; i < argc; i++) {
        if (argv[i] == NULL && lens[i] != 0)
            return -EINVAL;
        redis_buf_arg(b, rc->prefix, i < nkeys ? rc->prefix_len : 0, argv[i], lens[i]);
    }
    return b->oom ? -ENOMEM : 0;
}

int redis_format_script(redis_buf_t *b, const gh_redis_script_t *s, int use_text, const char *tail,
                        size_t tail_len, int tail_argc)
{
    redis_buf_count(b, 2 + (size_t)tail_argc);
    if (use_text) {
        redis_buf_arg(b, NULL, 0, "EVAL", 4);
        redis_buf_arg(b, NULL, 0, s->text, strlen(s->text));
    } else {
        redis_buf_arg(b, NULL, 0, "EVALSHA", 7);
        redis_buf_arg(b, NULL, 0, s->sha1, 40);
    }
    redis_buf_raw(b, tail, tail_len);
    return b->oom ? -ENOMEM : 0;
}

int redis_format_handshake(redis_buf_t *b, const redis_conf_t *rc, size_t *ends, int *n)
{
    *n = 0;
    if (rc->password != NULL) {
        redis_buf_count(b, rc->username != NULL ? 3 : 2);
        redis_buf_arg(b, NULL, 0, "AUTH", 4);
        if (rc->username != NULL)
            redis_buf_arg(b, NULL, 0, rc->username, strlen(rc->username));
        redis_buf_arg(b, NULL, 0, rc->password, strlen(rc->password));
        ends[(*n)++] = b->len;
    }
    if (rc->db != 0) {
        char num[16];
        int len = snprintf(num, sizeof(num), "%u", rc->db);
        redis_buf_count(b, 2);
        redis_buf_arg(b, NULL, 0, "SELECT", 6);
        redis_buf_arg(b, NULL, 0, num, (size_t)len);
        ends[(*n)++] = b->len;
    }
    /* Always one round trip: a connection is ready once the server has
     * answered on it, not when the kernel accepted it (a stopped server's
     * kernel still completes the TCP handshake). */
    redis_buf_count(b, 1);
    redis_buf_arg(b, NULL, 0, "PING", 4);
    ends[(*n)++] = b->len;
    return b->oom ? -ENOMEM : 0;
}

int redis_reply_is_noscript(const struct redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->str != NULL && r->len >= 8 &&
           memcmp(r->str, "NOSCRIPT", 8) == 0;
}

void gh_redis_script_init(gh_redis_script_t *s, const char *text)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";
    s->text = text;
    memset(s->sha1, 0, sizeof(s->sha1));
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return; /* an empty id: EVALSHA gets NOSCRIPT, and EVAL runs */
    for (unsigned i = 0; i < 20; i++) {
        s->sha1[2 * i] = hex[md[i] >> 4];
        s->sha1[2 * i + 1] = hex[md[i] & 15];
    }
}

void gh_redis_reply_free(struct redisReply *reply)
{
    if (reply != NULL)
        freeReplyObject(reply);
}

/* ---- counters ---- */

void redis_stats_read(const gh_redis_stats_t *st, gh_redis_stats_t *out)
{
    out->commands = __atomic_load_n(&st->commands, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&st->refused, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&st->errors, __ATOMIC_RELAXED);
    out->timeouts = __atomic_load_n(&st->timeouts, __ATOMIC_RELAXED);
    out->reconnects = __atomic_load_n(&st->reconnects, __ATOMIC_RELAXED);
    out->connected = __atomic_load_n(&st->connected, __ATOMIC_RELAXED);
}

void gh_redis_stats_add(gh_redis_stats_t *sum, const gh_redis_stats_t *s)
{
    sum->commands += s->commands;
    sum->refused += s->refused;
    sum->errors += s->errors;
    sum->timeouts += s->timeouts;
    sum->reconnects += s->reconnects;
    sum->connected += s->connected;
}

size_t gh_redis_metrics_format(char *buf, size_t cap, const char *const *names,
                               const gh_redis_stats_t *stats, size_t n)
{
    static const struct {
        const char *name;
        const char *type;
        const char *help;
        size_t off;
    } fam[] = {
        {"gatehouse_redis_commands_total", "counter", "Redis commands accepted.",
         offsetof(gh_redis_stats_t, commands)},
        {"gatehouse_redis_refused_total", "counter",
         "Redis commands refused at once (closing, queue full, no connection).",
         offsetof(gh_redis_stats_t, refused)},
        {"gatehouse_redis_errors_total", "counter",
         "Redis commands ended by a lost connection or an error reply.",
         offsetof(gh_redis_stats_t, errors)},
        {"gatehouse_redis_timeouts_total", "counter", "Redis commands ended by their timeout.",
         offsetof(gh_redis_stats_t, timeouts)},
        {"gatehouse_redis_reconnects_total", "counter",
         "Redis connection attempts after the first.", offsetof(gh_redis_stats_t, reconnects)},
        {"gatehouse_redis_connections", "gauge", "Redis connections ready.",
         offsetof(gh_redis_stats_t, connected)},
    };
    size_t len = 0;
    int w;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        w = snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, __VA_ARGS__);       \
        if (w > 0)                                                                                 \
            len += (size_t)w;                                                                      \
    } while (0)
    for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
        EMIT("# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help, fam[f].name, fam[f].type);
        for (size_t i = 0; i < n; i++) {
            const uint64_t *v = (const uint64_t *)((const char *)&stats[i] + fam[f].off);
            EMIT("%s{client=\"%s\"} %llu\n", fam[f].name, names[i], (unsigned long long)*v);
        }
    }
#undef EMIT
    return len;
}

static int no_dns(void)
{
    const char *v = getenv("GH_CONFIG_NO_DNS");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

/* host:port or [v6]:port (checked by the store section's parser) into an
 * address the client takes: an IP address or "localhost". */
int gh_redis_resolve(const char *address, char *out, size_t out_cap, uint16_t *out_port, char *err,
                     size_t cap)
{
    char host[256];
    const char *colon, *h = address;
    size_t hl;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        h = address + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        if ((colon = strrchr(address, ':')) == NULL)
            goto bad;
        hl = (size_t)(colon - address);
    }
    if (hl == 0 || hl >= sizeof(host))
        goto bad;
    memcpy(host, h, hl);
    host[hl] = '\0';
    /* Digits only: strtoul would also take a sign and leading blanks
     * ("-18446744073709551615" is 1 to it). */
    const char *digits = colon + 1;
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || digits[nd] != '\0')
        goto bad;
    unsigned long port = strtoul(digits, NULL, 10);
    if (port == 0 || port > 65535)
        goto bad;
    *out_port = (uint16_t)port;
    unsigned char bin[16];
    if (strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, bin) == 1 ||
        inet_pton(AF_INET6, host, bin) == 1) {
        if (hl >= out_cap)
            goto bad;
        memcpy(out, host, hl + 1);
        return 0;
    }
    if (no_dns()) {
        snprintf(err, cap,
                 "store address '%s': '%s' is a host name, and GH_CONFIG_NO_DNS forbids "
                 "looking it up",
                 address, host);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, cap, "store address '%s': cannot resolve '%s': %s", address, host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        if (res != NULL)
            freeaddrinfo(res);
        return -EIO;
    }
    const void *a = res->ai_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)res->ai_addr)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    const char *ok = inet_ntop(res->ai_family, a, out, (socklen_t)out_cap);
    freeaddrinfo(res);
    if (ok == NULL) {
        snprintf(err, cap, "store address '%s': cannot use the address of '%s'", address, host);
        return -EIO;
    }
    return 0;
bad:
    snprintf(err, cap, "store address '%s' is not host:port", address);
    return -EINVAL;
}
