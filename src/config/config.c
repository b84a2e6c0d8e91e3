/*
 * The core schema: workers, listeners with their routes, clusters.
 * YAML tree (config/yaml.h) -> gh_config_t, all or nothing.
 *
 * Every allocation is recorded in the tree as soon as it is made, and arrays
 * are zeroed and their counts set before they are filled, so that on any
 * error gh_config_free() of the partial tree releases exactly what exists.
 *
 * Clusters are parsed before listeners, whatever their order in the file,
 * so that routes can resolve `to` on the spot.
 */
#include "gatehouse/config.h"
#include "gatehouse/fields.h"
#include "gatehouse/file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/sections.h"
#include <gatehouse/filter.h>
#include <gatehouse/store.h>
#include <gatehouse/yaml.h>

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

#define MAX_WORKERS 1024
#define MAX_HEAD_LIMIT (8 * MIB) /* as Envoy's ceiling for max_request_headers_kb */
#define MAX_HEADERS_LIMIT 10000
#define MAX_WEIGHT 1000000
#define MAX_NAME 256
#define MAX_CONFIG_FILE (16 * MIB)
/* Upper bounds of the duration keys, in ms (docs/config.md). */
#define MINUTE_MS (60ULL * 1000)
#define MAX_DRAIN_TIMEOUT (60 * MINUTE_MS)
#define MAX_HEADER_TIMEOUT (10 * MINUTE_MS)
#define MAX_IDLE_TIMEOUT (60 * MINUTE_MS)
#define MAX_BODY_TIMEOUT (60 * MINUTE_MS)
#define MAX_CONNECT_TIMEOUT (5 * MINUTE_MS)
#define MAX_ROUTE_TIMEOUT (60 * MINUTE_MS)

/* A set of borrowed NUL-terminated names, each with a value; open
 * addressing. The checks for repeated names use it so that loading stays
 * linear in the config's size: comparing each route name with every
 * earlier one made a 39,000-route listener take 6 s on the main loop. */
typedef struct {
    const char *key;
    void *val;
} name_slot_t;

typedef struct {
    name_slot_t *slots;
    size_t cap, n;
} name_set_t;

typedef struct {
    gh_yaml_doc_t *doc;
    gh_config_t *cfg;
    int no_dns;
    name_set_t clusters;    /* cluster name -> gh_cluster_t */
    name_set_t route_names; /* of the listener being parsed */
} ctx_t;

/* ---- public parsers ---- */

static int scan_number(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return -EINVAL;
        n = n * 10 + d;
    }
    *p = s;
    *v = n;
    return 0;
}

int gh_config_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
    uint64_t v;
    if (s == NULL || scan_number(&s, &v) != 0 || v == 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].ms)
                return -EINVAL;
            *ms = v * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

int gh_config_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},      {"B", 1},     {"KiB", KIB},    {"MiB", MIB},
                 {"GiB", GIB}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    uint64_t v;
    if (s == NULL || scan_number(&s, &v) != 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mult)
                return -EINVAL;
            *bytes = v * units[i].mult;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- free ---- */

static void strmatch_dispose(gh_strmatch_t *m)
{
    free(m->value);
    pcre2_code_free(m->re);
    pcre2_match_data_free(m->md_unused);
}

static void kvmatches_free(gh_kvmatch_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        strmatch_dispose(&v[i].match);
    }
    free(v);
}

static void route_dispose(gh_route_t *r)
{
    free(r->name);
    for (size_t i = 0; i < r->num_hosts; i++)
        free(r->hosts[i]);
    free(r->hosts);
    strmatch_dispose(&r->path);
    for (size_t i = 0; i < r->num_methods; i++)
        free(r->methods[i]);
    free(r->methods);
    for (size_t i = 0; i < r->num_forward_trailers; i++)
        free(r->forward_trailers[i]);
    free(r->forward_trailers);
    kvmatches_free(r->headers, r->num_headers);
    kvmatches_free(r->query, r->num_query);
    free(r->targets);
    for (size_t i = 0; i < r->num_filters; i++)
        if (r->filters[i].type->free_conf != NULL)
            r->filters[i].type->free_conf(r->filters[i].conf);
    free(r->filters);
}

void gh_config_free(gh_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        gh_listener_conf_t *l = &cfg->listeners[i];
        free(l->name);
        free(l->address);
        for (size_t j = 0; j < l->num_routes; j++)
            route_dispose(&l->routes[j]);
        free(l->routes);
        free(l->trusted_proxies);
        for (size_t j = 0; j < l->num_filters; j++)
            if (l->filters[j].type->free_conf != NULL)
                l->filters[j].type->free_conf(l->filters[j].conf);
        free(l->filters);
    }
    free(cfg->listeners);
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        gh_cluster_t *c = &cfg->clusters[i];
        free(c->name);
        free(c->default_host);
        for (size_t j = 0; j < c->num_endpoints; j++)
            free(c->endpoints[j].address);
        free(c->endpoints);
        gh_config_free_lambda_cluster(c->lambda);
        gh_config_cluster_tls_free(c->tls);
    }
    free(cfg->clusters);
    gh_config_free_issuer(cfg->issuer);
    gh_config_free_plans(cfg);
    /* After the routes and listeners, whose confs may borrow from them. */
    for (size_t i = 0; i < cfg->num_sections; i++)
        if (cfg->sections[i].type->free_section != NULL)
            cfg->sections[i].type->free_section(cfg->sections[i].section);
    free(cfg->sections);
    gh_config_free_sections(cfg);
    gh_store_conf_dispose(&cfg->store);
    free(cfg->state_dir);
    free(cfg->path);
    free(cfg);
}

const void *gh_config_section(const gh_config_t *cfg, const gh_filter_type_t *type)
{
    for (size_t i = 0; i < cfg->num_sections; i++)
        if (cfg->sections[i].type == type)
            return cfg->sections[i].section;
    return NULL;
}

const void *gh_config_listener_conf(const gh_config_t *cfg, size_t listener,
                                    const gh_filter_type_t *type)
{
    if (listener >= cfg->num_listeners)
        return NULL;
    const gh_listener_conf_t *l = &cfg->listeners[listener];
    for (size_t i = 0; i < l->num_filters; i++)
        if (l->filters[i].type == type)
            return l->filters[i].conf;
    return NULL;
}

/* ---- name sets ---- */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int name_set_grow(name_set_t *set)
{
    size_t cap = set->cap ? set->cap * 2 : 64;
    name_slot_t *t = calloc(cap, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < set->cap; i++) {
        if (set->slots[i].key == NULL)
            continue;
        size_t j = (size_t)name_hash(set->slots[i].key) & (cap - 1);
        while (t[j].key != NULL)
            j = (j + 1) & (cap - 1);
        t[j] = set->slots[i];
    }
    free(set->slots);
    set->slots = t;
    set->cap = cap;
    return 0;
}

static name_slot_t *name_set_find(const name_set_t *set, const char *key)
{
    if (set->cap == 0)
        return NULL;
    size_t mask = set->cap - 1;
    for (size_t j = (size_t)name_hash(key) & mask; set->slots[j].key != NULL; j = (j + 1) & mask)
        if (strcmp(set->slots[j].key, key) == 0)
            return &set->slots[j];
    return NULL;
}

static void *name_set_get(const name_set_t *set, const char *key)
{
    const name_slot_t *slot = name_set_find(set, key);
    return slot != NULL ? slot->val : NULL;
}

/* Adds key (borrowed; it must outlive the set). Returns 1 when key is
 * already there (nothing added), 0 when added, or an error (reported). */
static int name_set_add(ctx_t *c, name_set_t *set, const char *key, void *val)
{
    if (name_set_find(set, key) != NULL)
        return 1;
    if (2 * (set->n + 1) > set->cap && name_set_grow(set) != 0)
        return gh_yaml_oom(c->doc);
    size_t mask = set->cap - 1;
    size_t j = (size_t)name_hash(key) & mask;
    while (set->slots[j].key != NULL)
        j = (j + 1) & mask;
    set->slots[j].key = key;
    set->slots[j].val = val;
    set->n++;
    return 0;
}

static void name_set_dispose(name_set_t *set)
{
    free(set->slots);
    memset(set, 0, sizeof(*set));
}

/* ---- helpers ---- */

static int dup_mem(ctx_t *c, const char *s, size_t len, char **out)
{
    char *p = malloc(len + 1);
    if (p == NULL) {
        gh_yaml_oom(c->doc);
        return -ENOMEM;
    }
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    *out = p;
    return 0;
}

/* calloc(n, size) that reports errors. Never NULL on success, even for
 * n == 0, so that callers indexing by the YAML node count need no special
 * case. */
static int alloc_array(ctx_t *c, size_t n, size_t size, void **out)
{
    *out = calloc(n > 0 ? n : 1, size);
    if (*out == NULL) {
        gh_yaml_oom(c->doc);
        return -ENOMEM;
    }
    return 0;
}

static char ascii_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* RFC 9110 section 5.6.2: tchar. */
static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* Names end up in logs, metrics and the admin API: printable ASCII, no
 * spaces, bounded. */
static int check_name(ctx_t *c, const gh_yaml_node_t *n, const char *what, const char **out)
{
    const char *s;
    int rc = gh_yaml_str(c->doc, n, what, &s);
    if (rc != 0)
        return rc;
    if (n->len == 0 || n->len > MAX_NAME)
        return gh_yaml_error(c->doc, n, "%s must be 1 to %d characters", what, MAX_NAME);
    for (size_t i = 0; i < n->len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return gh_yaml_error(
                c->doc, n, "%s '%s' may contain only printable ASCII without spaces", what, s);
    }
    *out = s;
    return 0;
}

/* max_ms: the key's upper bound (docs/config.md lists each). */
static int opt_duration(ctx_t *c, const gh_yaml_node_t *map, const char *key, uint64_t max_ms,
                        uint64_t *out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    return v != NULL ? gh_yaml_duration_max(c->doc, v, key, max_ms, out) : 0;
}

static int opt_size(ctx_t *c, const gh_yaml_node_t *map, const char *key, uint64_t min,
                    uint64_t max, size_t *out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    uint64_t x;
    if (v == NULL)
        return 0;
    int rc = gh_yaml_size(c->doc, v, key, min, max > SIZE_MAX ? SIZE_MAX : max, &x);
    if (rc == 0)
        *out = (size_t)x;
    return rc;
}

static int opt_uint(ctx_t *c, const gh_yaml_node_t *map, const char *key, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    return v != NULL ? gh_yaml_uint(c->doc, v, key, min, max, out) : 0;
}

static int opt_weight(ctx_t *c, const gh_yaml_node_t *map, uint32_t *out)
{
    uint64_t w = 1;
    int rc = opt_uint(c, map, "weight", 1, MAX_WEIGHT, &w);
    *out = (uint32_t)w;
    return rc;
}

static int nonempty_list(ctx_t *c, const gh_yaml_node_t *n, const char *key)
{
    char what[64];
    snprintf(what, sizeof(what), "'%s'", key);
    int rc = gh_yaml_expect(c->doc, n, GH_YAML_SEQ, what);
    if (rc == 0 && n->count == 0)
        rc = gh_yaml_error(c->doc, n, "'%s' must not be empty", key);
    return rc;
}

/* ---- addresses ---- */

/* Splits "host:port" or "[v6]:port" (host copied without brackets). Returns
 * NULL or what is wrong. */
static const char *split_hostport(const char *s, char *host, size_t hostsz, int *bracketed,
                                  uint16_t *port)
{
    const char *h, *colon;
    size_t hlen;
    uint64_t p;

    *bracketed = s[0] == '[';
    if (*bracketed) {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return "has '[' without ']'";
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (*colon != ':')
            return "needs a port after ']'";
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return "needs a port";
        h = s;
        hlen = (size_t)(colon - s);
        if (memchr(h, ':', hlen) != NULL)
            return "has an IPv6 address without brackets";
    }
    if (hlen == 0)
        return "has an empty host";
    if (hlen >= hostsz)
        return "has a host that is too long";
    const char *ps = colon + 1;
    if (scan_number(&ps, &p) != 0 || *ps != '\0' || p < 1 || p > 65535)
        return "needs a port from 1 to 65535";
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return NULL;
}

static int resolve(const char *host, uint16_t port, int family, int flags,
                   struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    char serv[8];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    snprintf(serv, sizeof(serv), "%u", (unsigned)port);
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc != 0)
        return rc;
    if (res == NULL || res->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(res);
        return EAI_FAIL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Listeners bind what is written: numeric addresses only, so that a config
 * never depends on DNS at startup, and strictly (inet_pton refuses the
 * inet_aton forms such as "127.1" that getaddrinfo would take). */
const char *gh_config_numeric_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 64];
    int bracketed;
    uint16_t port;
    const char *why = split_hostport(s, host, sizeof(host), &bracketed, &port);
    if (why != NULL)
        return why;
    memset(ss, 0, sizeof(*ss));
    if (bracketed) {
        if (resolve(host, port, AF_INET6, AI_NUMERICHOST, ss, len) != 0)
            return "has an invalid IPv6 address";
        return NULL;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return "must be a numeric IPv4 address or a bracketed IPv6 address";
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
    return NULL;
}

static int parse_listen(ctx_t *c, const gh_yaml_node_t *n, gh_listener_conf_t *l)
{
    const char *s, *why;
    int rc = gh_yaml_str(c->doc, n, "listen", &s);
    if (rc != 0)
        return rc;
    if ((why = gh_config_numeric_addr(s, &l->addr, &l->addrlen)) != NULL)
        return gh_yaml_error(c->doc, n, "listen address '%s' %s", s, why);
    return dup_mem(c, s, n->len, &l->address);
}

static int is_hostname(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '.' || ch == '_'))
            return 0;
    }
    return 1;
}

static int parse_endpoint_address(ctx_t *c, const gh_yaml_node_t *n, gh_endpoint_conf_t *e)
{
    char host[NI_MAXHOST];
    int bracketed, flags = 0, family = AF_UNSPEC;
    uint16_t port;
    const char *s, *why;
    int rc = gh_yaml_str(c->doc, n, "address", &s);
    if (rc != 0)
        return rc;
    why = split_hostport(s, host, sizeof(host), &bracketed, &port);
    if (why != NULL)
        return gh_yaml_error(c->doc, n, "endpoint address '%s' %s", s, why);
    if (bracketed) {
        family = AF_INET6;
        flags = AI_NUMERICHOST;
    } else if (!is_hostname(host)) {
        return gh_yaml_error(c->doc, n, "endpoint address '%s' has an invalid host name", s);
    } else if (c->no_dns && strcmp(host, "localhost") != 0) {
        flags = AI_NUMERICHOST;
    }
    rc = resolve(host, port, family, flags, &e->addr, &e->addrlen);
    if (rc != 0)
        return gh_yaml_error(c->doc, n, "cannot resolve endpoint '%s': %s", s, gai_strerror(rc));
    return dup_mem(c, s, n->len, &e->address);
}

/* ---- clusters ---- */

static int no_dns(void);

static void cluster_defaults(gh_cluster_t *cl, size_t index)
{
    cl->index = index;
    cl->lb = GH_LB_ROUND_ROBIN;
    cl->connect_timeout_ms = 2000;
    cl->idle_timeout_ms = 30000;
    cl->max_idle = 64;
    cl->max_response_head = 64 * KIB;
    cl->max_response_headers = 100;
    cl->max_connections = 1024;
    cl->max_pending = 1024;
}

/* The Lambda endpoint's URL: scheme http or https, an authority, nothing
 * after but one '/'. Writes "host:port" (the default port added) into hp
 * and the authority as written into auth; NULL, or why not. */
static const char *lambda_url(const char *url, int *tls, char *hp, size_t hpsz, char *auth,
                              size_t authsz)
{
    const char *a;
    if (strncmp(url, "https://", 8) == 0) {
        *tls = 1;
        a = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        *tls = 0;
        a = url + 7;
    } else {
        return "must start with http:// or https://";
    }
    size_t alen = strcspn(a, "/?#");
    if (a[alen] != '\0' && strcmp(a + alen, "/") != 0)
        return "must be a scheme and an authority only (no path, query or fragment)";
    if (alen == 0 || alen >= authsz || alen + 7 >= hpsz)
        return "has an empty or too long host";
    if (memchr(a, '@', alen) != NULL)
        return "must not carry user information";
    memcpy(auth, a, alen);
    auth[alen] = '\0';
    const char *colon = strrchr(auth, ':');
    int has_port = colon != NULL && (auth[0] != '[' || colon > strchr(auth, ']'));
    snprintf(hp, hpsz, has_port ? "%s" : "%s:%s", auth, *tls ? "443" : "80");
    return NULL;
}

gh_cluster_t *gh_config_lambda_endpoint(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at,
                                        gh_config_t *cfg, const char *region)
{
    char url[300], hp[300], auth[300], host[NI_MAXHOST], name[320];
    const char *from = "AWS_ENDPOINT_URL_LAMBDA", *u = getenv(from), *why;
    const char *ignore = getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    int tls, bracketed, rc;
    uint16_t port;
    /* AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true ("true" in any case, as
     * the SDKs read it) turns the endpoint variables off: where it is set
     * the SDKs call AWS itself, and so must gatehouse, whose events carry
     * the clients' tokens and the requests' bodies. */
    if (ignore != NULL && strcasecmp(ignore, "true") == 0)
        u = NULL;
    else if (u == NULL || u[0] == '\0')
        u = getenv(from = "AWS_ENDPOINT_URL");
    if (u == NULL || u[0] == '\0') {
        from = "AWS's regional endpoint";
        snprintf(url, sizeof(url), "https://lambda.%s.amazonaws.com", region);
    } else if (strlen(u) >= sizeof(url)) {
        gh_yaml_error(doc, at, "%s is too long", from);
        return NULL;
    } else {
        memcpy(url, u, strlen(u) + 1);
    }
    if ((why = lambda_url(url, &tls, hp, sizeof(hp), auth, sizeof(auth))) != NULL ||
        (why = split_hostport(hp, host, sizeof(host), &bracketed, &port)) != NULL) {
        gh_yaml_error(doc, at, "the Lambda endpoint '%s' (from %s) %s", url, from, why);
        return NULL;
    }
    snprintf(name, sizeof(name), "%s://%s", tls ? "https" : "http", auth);
    for (size_t i = 0; i < cfg->num_clusters; i++) {
        gh_cluster_t *cl = &cfg->clusters[i];
        if (strcmp(cl->name, name) != 0)
            continue;
        if (cl->lambda != NULL || cl->num_endpoints != 1 ||
            strcmp(cl->endpoints[0].address, hp) != 0 || (cl->tls != NULL) != tls) {
            gh_yaml_error(doc, at,
                          "a cluster is named '%s', the name of the implicit Lambda endpoint: "
                          "rename it, or name it in lambda.endpoint",
                          name);
            return NULL;
        }
        return cl;
    }
    if (cfg->num_clusters == cfg->clusters_cap) { /* the pre-count in parse_clusters */
        gh_yaml_error(doc, at, "internal error: no room for the implicit Lambda endpoint");
        return NULL;
    }
    int flags = bracketed ? AI_NUMERICHOST : 0;
    if (!bracketed && !is_hostname(host)) {
        gh_yaml_error(doc, at, "the Lambda endpoint '%s' (from %s) has an invalid host name", url,
                      from);
        return NULL;
    }
    if (no_dns() && strcmp(host, "localhost") != 0)
        flags = AI_NUMERICHOST;
    gh_cluster_t *cl = &cfg->clusters[cfg->num_clusters];
    memset(cl, 0, sizeof(*cl));
    cluster_defaults(cl, cfg->num_clusters);
    cl->implicit = 1;
    cfg->num_clusters++; /* from here on freed with the config */
    cl->endpoints = calloc(1, sizeof(*cl->endpoints));
    if (cl->endpoints == NULL || (cl->name = strdup(name)) == NULL ||
        (cl->default_host = strdup(auth)) == NULL ||
        (cl->endpoints[0].address = strdup(hp)) == NULL) {
        gh_yaml_oom(doc);
        return NULL;
    }
    cl->num_endpoints = 1;
    cl->endpoints[0].weight = 1;
    cl->total_weight = 1;
    rc = resolve(host, port, bracketed ? AF_INET6 : AF_UNSPEC, flags, &cl->endpoints[0].addr,
                 &cl->endpoints[0].addrlen);
    if (rc != 0) {
        gh_yaml_error(doc, at, "cannot resolve the Lambda endpoint '%s' (from %s): %s", url, from,
                      gai_strerror(rc));
        return NULL;
    }
    if (tls && gh_config_cluster_tls_system(doc, at, &cl->tls) != 0)
        return NULL;
    return cl;
}

static int parse_endpoint(ctx_t *c, const gh_yaml_node_t *n, gh_endpoint_conf_t *e)
{
    static const char *const keys[] = {"address", "weight", NULL};
    const gh_yaml_node_t *addr;
    int rc;
    if (n->kind == GH_YAML_SCALAR) {
        e->weight = 1;
        return parse_endpoint_address(c, n, e);
    }
    if (n->kind != GH_YAML_MAP)
        return gh_yaml_error(c->doc, n,
                             "an endpoint must be \"host:port\" or { address: \"host:port\", "
                             "weight: N }");
    if ((rc = gh_yaml_check_keys(c->doc, n, keys, "endpoint")) != 0 ||
        (rc = gh_yaml_require(c->doc, n, "address", "endpoint", &addr)) != 0 ||
        (rc = opt_weight(c, n, &e->weight)) != 0)
        return rc;
    return parse_endpoint_address(c, addr, e);
}

static int parse_cluster(ctx_t *c, const gh_yaml_node_t *key, gh_cluster_t *cl, size_t index)
{
    static const char *const keys[] = {"type",
                                       "endpoints",
                                       "lb",
                                       "connect_timeout",
                                       "idle_timeout",
                                       "max_idle",
                                       "max_response_head",
                                       "max_response_headers",
                                       "default_host",
                                       "max_connections",
                                       "max_pending",
                                       "tls",
                                       "inject",
                                       NULL};
    static const char *const lbs[] = {"round_robin", "least_request", "random"};
    const gh_yaml_node_t *n = key->value, *eps, *v;
    const char *name = NULL;
    uint64_t u;
    size_t i;
    int rc;

    cluster_defaults(cl, index);
    if ((rc = check_name(c, key, "cluster name", &name)) != 0 ||
        (rc = dup_mem(c, name, key->len, &cl->name)) != 0)
        return rc;
    char what[MAX_NAME + 16];
    snprintf(what, sizeof(what), "cluster '%s'", name);
    if ((rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, what)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "type")) != NULL) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, "lambda") == 0)
            return gh_config_parse_lambda_cluster(c->doc, n, cl);
        if (v->kind != GH_YAML_SCALAR || strcmp(v->str, "http") != 0)
            return gh_yaml_error(c->doc, v, "a cluster's 'type' is http (the default) or lambda");
    }
    if ((rc = gh_yaml_check_keys(c->doc, n, keys, what)) != 0 ||
        (rc = gh_yaml_require(c->doc, n, "endpoints", what, &eps)) != 0 ||
        (rc = nonempty_list(c, eps, "endpoints")) != 0)
        return rc;

    if ((v = gh_yaml_map_get(n, "lb")) != NULL) {
        for (i = 0; i < 3; i++) {
            if (v->kind == GH_YAML_SCALAR && strcmp(v->str, lbs[i]) == 0)
                break;
        }
        if (i == 3)
            return gh_yaml_error(c->doc, v, "'lb' must be round_robin, least_request or random");
        cl->lb = (gh_lb_kind_t)i;
    }
    u = cl->max_idle;
    if ((rc = opt_duration(c, n, "connect_timeout", MAX_CONNECT_TIMEOUT,
                           &cl->connect_timeout_ms)) != 0 ||
        (rc = opt_duration(c, n, "idle_timeout", MAX_IDLE_TIMEOUT, &cl->idle_timeout_ms)) != 0 ||
        (rc = opt_uint(c, n, "max_idle", 0, 65536, &u)) != 0 ||
        (rc = opt_size(c, n, "max_response_head", KIB, MAX_HEAD_LIMIT, &cl->max_response_head)) !=
            0)
        return rc;
    cl->max_idle = (uint32_t)u;
    u = cl->max_response_headers;
    if ((rc = opt_uint(c, n, "max_response_headers", 1, MAX_HEADERS_LIMIT, &u)) != 0)
        return rc;
    cl->max_response_headers = (size_t)u;
    if ((v = gh_yaml_map_get(n, "default_host")) != NULL &&
        (rc = gh_config_parse_default_host(c->doc, v, &cl->default_host)) != 0)
        return rc;
    u = cl->max_connections;
    if ((rc = opt_uint(c, n, "max_connections", 1, 1000000, &u)) != 0)
        return rc;
    cl->max_connections = (uint32_t)u;
    u = cl->max_pending;
    if ((rc = opt_uint(c, n, "max_pending", 0, 1000000, &u)) != 0)
        return rc;
    cl->max_pending = (uint32_t)u;
    if ((v = gh_yaml_map_get(n, "tls")) != NULL &&
        (rc = gh_config_parse_cluster_tls(c->doc, v, &cl->tls)) != 0)
        return rc;
    /* The inject filter's, read when a route to this cluster is parsed. */
    cl->has_inject = gh_yaml_map_get(n, "inject") != NULL;

    if ((rc = alloc_array(c, eps->count, sizeof(*cl->endpoints), (void **)&cl->endpoints)) != 0)
        return rc;
    cl->num_endpoints = eps->count;
    i = 0;
    name_set_t seen = {0};
    for (const gh_yaml_node_t *e = eps->head; e != NULL && rc == 0; e = e->next, i++) {
        gh_endpoint_conf_t *ep = &cl->endpoints[i];
        if ((rc = parse_endpoint(c, e, ep)) != 0)
            break;
        if ((rc = name_set_add(c, &seen, ep->address, ep)) < 0)
            break;
        if (rc == 1)
            rc = gh_yaml_error(c->doc, e,
                               "endpoint '%s' is listed twice in cluster '%s' (use "
                               "weight instead)",
                               ep->address, name);
        else if (ep->weight > UINT32_MAX - cl->total_weight)
            rc = gh_yaml_error(c->doc, e, "total endpoint weight of cluster '%s' is too large",
                               name);
        else
            cl->total_weight += ep->weight;
    }
    name_set_dispose(&seen);
    return rc;
}

/* How many lambda blocks name no endpoint (a bound on the implicit
 * endpoint clusters gh_config_lambda_endpoint adds): in lambda clusters and
 * in providers.authorizers. Malformed sections count 0 (their parsers say
 * what is wrong). */
static size_t implicit_lambda_endpoints(const gh_yaml_node_t *root)
{
    const gh_yaml_node_t *providers = gh_yaml_map_get(root, "providers");
    const gh_yaml_node_t *maps[] = {gh_yaml_map_get(root, "clusters"),
                                    gh_yaml_map_get(providers, "authorizers")};
    size_t n = 0;
    for (size_t i = 0; i < 2; i++) {
        if (maps[i] == NULL || maps[i]->kind != GH_YAML_MAP)
            continue;
        for (const gh_yaml_node_t *k = maps[i]->head; k != NULL; k = k->next) {
            const gh_yaml_node_t *l = gh_yaml_map_get(k->value, "lambda");
            if (l != NULL && l->kind == GH_YAML_MAP && gh_yaml_map_get(l, "endpoint") == NULL)
                n++;
        }
    }
    return n;
}

static int parse_clusters(ctx_t *c, const gh_yaml_node_t *root)
{
    const gh_yaml_node_t *n = gh_yaml_map_get(root, "clusters");
    size_t implicit = implicit_lambda_endpoints(root);
    int rc;
    if (n != NULL && (rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, "'clusters'")) != 0)
        return rc;
    /* Room for the implicit endpoints too: the array never moves, since
     * routes, authorizers and lambda clusters point into it. */
    c->cfg->clusters_cap = (n != NULL ? n->count : 0) + implicit;
    if (c->cfg->clusters_cap == 0)
        return 0;
    if ((rc = alloc_array(c, c->cfg->clusters_cap, sizeof(gh_cluster_t),
                          (void **)&c->cfg->clusters)) != 0)
        return rc;
    if (n == NULL)
        return 0;
    c->cfg->num_clusters = n->count;
    size_t i = 0;
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next, i++) {
        if ((rc = parse_cluster(c, k, &c->cfg->clusters[i], i)) != 0)
            return rc;
        /* Names are mapping keys: YAML already refused a repeated one. */
        gh_cluster_t *cl = &c->cfg->clusters[i];
        if ((rc = name_set_add(c, &c->clusters, cl->name, cl)) < 0)
            return rc;
    }
    /* A lambda cluster names the cluster that answers the Invoke API,
     * which may come after it. */
    i = 0;
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next, i++)
        if (c->cfg->clusters[i].lambda != NULL &&
            (rc = gh_config_bind_lambda_cluster(c->doc, k->value, c->cfg, &c->cfg->clusters[i])) !=
                0)
            return rc;
    return 0;
}

static gh_cluster_t *find_cluster(ctx_t *c, const char *name)
{
    return name_set_get(&c->clusters, name);
}

/* ---- routes ---- */

static int compile_regex(ctx_t *c, const gh_yaml_node_t *n, gh_strmatch_t *m)
{
    int errcode;
    PCRE2_SIZE off;
    m->re = pcre2_compile((PCRE2_SPTR)n->str, n->len, 0, &errcode, &off, NULL);
    if (m->re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", errcode);
        return gh_yaml_error(c->doc, n, "invalid regex '%s': %s at offset %zu", n->str,
                             (const char *)msg, (size_t)off);
    }
    /* Without JIT (some architectures, or W^X policies) the interpreter
     * matches the same language, only slower. */
    (void)pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
    return 0;
}

/* The value of an exact/prefix/regex/present/absent key into m. */
static int parse_strmatch(ctx_t *c, const gh_yaml_node_t *key, int is_path, gh_strmatch_t *m)
{
    static const char *const kinds[] = {"exact", "prefix", "regex", "present", "absent"};
    const gh_yaml_node_t *v = key->value;
    const char *s;
    int rc, flag;
    size_t k = 0;
    while (strcmp(key->str, kinds[k]) != 0)
        k++;
    m->kind = (gh_match_kind_t)k;
    if (m->kind == GH_MATCH_PRESENT || m->kind == GH_MATCH_ABSENT) {
        if ((rc = gh_yaml_bool(c->doc, v, key->str, &flag)) != 0)
            return rc;
        if (!flag)
            return gh_yaml_error(c->doc, v, "'%s' can only be true", key->str);
        return 0;
    }
    if ((rc = gh_yaml_str(c->doc, v, key->str, &s)) != 0)
        return rc;
    if (is_path && m->kind != GH_MATCH_REGEX && s[0] != '/')
        return gh_yaml_error(c->doc, v, "path %s '%s' must start with '/'", key->str, s);
    if (m->kind == GH_MATCH_REGEX && (rc = compile_regex(c, v, m)) != 0)
        return rc;
    m->value_len = v->len;
    return dup_mem(c, s, v->len, &m->value);
}

/* Exactly one of the keys in `kinds` (which are all the allowed keys besides
 * `other`). Returns the key node in *out. */
static int one_of(ctx_t *c, const gh_yaml_node_t *map, const char *const *kinds, const char *what,
                  const char *list, const gh_yaml_node_t **out)
{
    *out = NULL;
    for (const char *const *k = kinds; *k != NULL; k++) {
        const gh_yaml_node_t *key = gh_yaml_map_key(map, *k);
        if (key == NULL)
            continue;
        if (*out != NULL)
            return gh_yaml_error(c->doc, key, "%s needs exactly one of %s", what, list);
        *out = key;
    }
    if (*out == NULL)
        return gh_yaml_error(c->doc, map, "%s needs exactly one of %s", what, list);
    return 0;
}

static int parse_path(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    static const char *const keys[] = {"exact", "prefix", "regex", NULL};
    const gh_yaml_node_t *key;
    int rc;
    if ((rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, "'path'")) != 0 ||
        (rc = gh_yaml_check_keys(c->doc, n, keys, "'path'")) != 0 ||
        (rc = one_of(c, n, keys, "'path'", "'exact', 'prefix' or 'regex'", &key)) != 0)
        return rc;
    r->has_path = 1;
    return parse_strmatch(c, key, 1, &r->path);
}

/* Host patterns are compared with the request's Host (port removed,
 * lower-cased), so they are stored lower-case and may not carry a port. A
 * wildcard is only a leading "*." so that matching stays a suffix compare. */
static int parse_host(ctx_t *c, const gh_yaml_node_t *n, char **out)
{
    const char *s;
    int rc = gh_yaml_str(c->doc, n, "host", &s);
    if (rc != 0)
        return rc;
    const char *p = s;
    size_t len = n->len;
    if (len >= 2 && p[0] == '*' && p[1] == '.') {
        p += 2;
        len -= 2;
    }
    int ok = len > 0 && len <= 253;
    if (ok && p[0] == '[') {
        ok = len > 2 && p[len - 1] == ']';
        for (size_t i = 1; ok && i + 1 < len; i++)
            ok = strchr("0123456789abcdefABCDEF:.", p[i]) != NULL && p[i] != '\0';
        ok = ok && p == s;
    } else {
        ok = ok && p[0] != '.' && p[len - 1] != '.' && strstr(p, "..") == NULL;
        for (size_t i = 0; ok && i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 ch == '-' || ch == '.' || ch == '_';
        }
    }
    if (!ok)
        return gh_yaml_error(c->doc, n,
                             "invalid host '%s': a host name without port, optionally starting "
                             "with '*.'",
                             s);
    if ((rc = dup_mem(c, s, n->len, out)) != 0)
        return rc;
    for (char *q = *out; *q != '\0'; q++)
        *q = ascii_lower(*q);
    return 0;
}

static int parse_hosts(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    int rc;
    if (n->kind == GH_YAML_SCALAR) {
        if ((rc = alloc_array(c, 1, sizeof(char *), (void **)&r->hosts)) != 0)
            return rc;
        r->num_hosts = 1;
        return parse_host(c, n, &r->hosts[0]);
    }
    if (n->kind != GH_YAML_SEQ)
        return gh_yaml_error(c->doc, n, "'host' must be a string or a list of strings");
    if ((rc = nonempty_list(c, n, "host")) != 0 ||
        (rc = alloc_array(c, n->count, sizeof(char *), (void **)&r->hosts)) != 0)
        return rc;
    r->num_hosts = n->count;
    size_t i = 0;
    for (const gh_yaml_node_t *h = n->head; h != NULL; h = h->next, i++) {
        if ((rc = parse_host(c, h, &r->hosts[i])) != 0)
            return rc;
    }
    return 0;
}

static int parse_methods(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    int rc;
    if ((rc = nonempty_list(c, n, "methods")) != 0 ||
        (rc = alloc_array(c, n->count, sizeof(char *), (void **)&r->methods)) != 0)
        return rc;
    r->num_methods = n->count;
    size_t i = 0;
    for (const gh_yaml_node_t *m = n->head; m != NULL; m = m->next, i++) {
        const char *s;
        if ((rc = gh_yaml_str(c->doc, m, "methods", &s)) != 0)
            return rc;
        if (!is_token(s, m->len))
            return gh_yaml_error(c->doc, m, "method '%s' is not an HTTP token", s);
        if ((rc = dup_mem(c, s, m->len, &r->methods[i])) != 0)
            return rc;
    }
    return 0;
}

/* The provider of the route's authn that sets (claims_to_headers,
 * payload_header) or takes a token from (from: header) a field of that
 * name, or NULL. */
static const char *provider_sets_field(const gh_route_t *r, const char *name, size_t len)
{
    for (size_t i = 0; r->authn != NULL && i < r->authn->num_providers; i++) {
        const gh_jwt_provider_conf_t *p = r->authn->providers[i];
        /* Folded as the upstream may read them: x_user is x-user. */
        for (size_t j = 0; j < p->num_claims_to_headers; j++)
            if (gh_field_name_same(p->claims_to_headers[j].header,
                                   strlen(p->claims_to_headers[j].header), name, len))
                return p->name;
        if (p->payload_header != NULL &&
            gh_field_name_same(p->payload_header, strlen(p->payload_header), name, len))
            return p->name;
        for (size_t j = 0; j < p->num_from; j++)
            if (p->from[j].kind == GH_TOKEN_FROM_HEADER &&
                gh_field_name_same(p->from[j].name, p->from[j].name_len, name, len))
                return p->name;
    }
    for (size_t i = 0; r->authn != NULL && i < r->authn->num_apikeys; i++) {
        const gh_apikey_provider_conf_t *k = r->authn->apikeys[i];
        if ((k->header != NULL && gh_field_name_same(k->header, strlen(k->header), name, len)) ||
            (k->consumer_header != NULL &&
             gh_field_name_same(k->consumer_header, strlen(k->consumer_header), name, len)))
            return k->name;
    }
    return NULL;
}

/* forward_trailers: request trailer names to pass upstream. Names that
 * could change framing, routing or credentials once an upstream merges
 * trailers into the header section are refused here, and dropped at run
 * time whatever the list says (proxy/body.c). */
static int parse_forward_trailers(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    int rc;
    if ((rc = nonempty_list(c, n, "forward_trailers")) != 0 ||
        (rc = alloc_array(c, n->count, sizeof(char *), (void **)&r->forward_trailers)) != 0)
        return rc;
    size_t i = 0;
    for (const gh_yaml_node_t *m = n->head; m != NULL; m = m->next, i++) {
        const char *s;
        if ((rc = gh_yaml_str(c->doc, m, "forward_trailers", &s)) != 0)
            return rc;
        if (!is_token(s, m->len))
            return gh_yaml_error(c->doc, m, "trailer name '%s' is not an HTTP token", s);
        if (gh_field_trailer_forbidden(s, m->len))
            return gh_yaml_error(c->doc, m, "trailer '%s' can never be forwarded", s);
        const char *by = provider_sets_field(r, s, m->len);
        if (by != NULL)
            return gh_yaml_error(
                c->doc, m, "trailer '%s' names a field provider '%s' of this route sets or reads",
                s, by);
        if ((rc = dup_mem(c, s, m->len, &r->forward_trailers[i])) != 0)
            return rc;
        r->num_forward_trailers = i + 1;
        for (size_t j = 0; j < m->len; j++)
            r->forward_trailers[i][j] = ascii_lower(r->forward_trailers[i][j]);
    }
    return 0;
}

/* headers: (is_header) names are tokens, stored lower-case; query: names as
 * written, without the characters that delimit a query. */
static int parse_kvmatches(ctx_t *c, const gh_yaml_node_t *n, int is_header, gh_kvmatch_t **out,
                           size_t *count)
{
    static const char *const keys[] = {"name",    "exact",  "prefix", "regex",
                                       "present", "absent", NULL};
    const char *key = is_header ? "headers" : "query";
    char what[32];
    int rc;
    snprintf(what, sizeof(what), "an entry of '%s'", key);
    if ((rc = nonempty_list(c, n, key)) != 0 ||
        (rc = alloc_array(c, n->count, sizeof(gh_kvmatch_t), (void **)out)) != 0)
        return rc;
    *count = n->count;
    size_t i = 0;
    for (const gh_yaml_node_t *e = n->head; e != NULL; e = e->next, i++) {
        gh_kvmatch_t *kv = &(*out)[i];
        const gh_yaml_node_t *name, *mk;
        const char *s;
        if ((rc = gh_yaml_expect(c->doc, e, GH_YAML_MAP, what)) != 0 ||
            (rc = gh_yaml_check_keys(c->doc, e, keys, what)) != 0 ||
            (rc = gh_yaml_require(c->doc, e, "name", what, &name)) != 0 ||
            (rc = gh_yaml_str(c->doc, name, "name", &s)) != 0)
            return rc;
        if (is_header && !is_token(s, name->len))
            return gh_yaml_error(c->doc, name, "header name '%s' is not an HTTP token", s);
        if (!is_header && (name->len == 0 || strpbrk(s, "&=# \t\r\n") != NULL))
            return gh_yaml_error(c->doc, name, "invalid query parameter name '%s'", s);
        if ((rc = one_of(c, e, keys + 1, what, "'exact', 'prefix', 'regex', 'present' or 'absent'",
                         &mk)) != 0)
            return rc;
        if ((rc = dup_mem(c, s, name->len, &kv->name)) != 0)
            return rc;
        kv->name_len = name->len;
        if (is_header) {
            for (char *q = kv->name; *q != '\0'; q++)
                *q = ascii_lower(*q);
        }
        if ((rc = parse_strmatch(c, mk, 0, &kv->match)) != 0)
            return rc;
    }
    return 0;
}

static int parse_match(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    static const char *const keys[] = {"host", "path", "methods", "headers", "query", NULL};
    const gh_yaml_node_t *v;
    int rc;
    if ((rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, "'match'")) != 0 ||
        (rc = gh_yaml_check_keys(c->doc, n, keys, "'match'")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "host")) != NULL && (rc = parse_hosts(c, v, r)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "path")) != NULL && (rc = parse_path(c, v, r)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "methods")) != NULL && (rc = parse_methods(c, v, r)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "headers")) != NULL &&
        (rc = parse_kvmatches(c, v, 1, &r->headers, &r->num_headers)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "query")) != NULL &&
        (rc = parse_kvmatches(c, v, 0, &r->query, &r->num_query)) != 0)
        return rc;
    return 0;
}

static int add_target(ctx_t *c, gh_route_t *r, const gh_yaml_node_t *at, const char *cluster,
                      uint32_t weight)
{
    gh_cluster_t *cl = find_cluster(c, cluster);
    if (cl == NULL)
        return gh_yaml_error(c->doc, at, "route '%s' names unknown cluster '%s'", r->name, cluster);
    for (size_t i = 0; i < r->num_targets; i++) {
        if (r->targets[i].cluster == cl)
            return gh_yaml_error(c->doc, at, "route '%s' names cluster '%s' twice", r->name,
                                 cluster);
    }
    if (weight > UINT32_MAX - r->total_weight)
        return gh_yaml_error(c->doc, at, "total weight of route '%s' is too large", r->name);
    r->targets[r->num_targets].cluster = cl;
    r->targets[r->num_targets].weight = weight;
    r->num_targets++;
    r->total_weight += weight;
    return 0;
}

/* An unknown cluster is reported at the node that names it: the `to`
 * scalar, or the `cluster` value inside a list entry. */
static int parse_to(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r)
{
    static const char *const keys[] = {"cluster", "weight", NULL};
    const char *s;
    int rc;
    if (n->kind == GH_YAML_SCALAR) {
        if ((rc = gh_yaml_str(c->doc, n, "to", &s)) != 0 ||
            (rc = alloc_array(c, 1, sizeof(*r->targets), (void **)&r->targets)) != 0)
            return rc;
        return add_target(c, r, n, s, 1);
    }
    if (n->kind != GH_YAML_SEQ)
        return gh_yaml_error(c->doc, n,
                             "'to' must be a cluster name or a list of { cluster, weight }");
    if ((rc = nonempty_list(c, n, "to")) != 0 ||
        (rc = alloc_array(c, n->count, sizeof(*r->targets), (void **)&r->targets)) != 0)
        return rc;
    for (const gh_yaml_node_t *e = n->head; e != NULL; e = e->next) {
        const gh_yaml_node_t *cn;
        uint32_t w;
        if ((rc = gh_yaml_expect(c->doc, e, GH_YAML_MAP, "an entry of 'to'")) != 0 ||
            (rc = gh_yaml_check_keys(c->doc, e, keys, "an entry of 'to'")) != 0 ||
            (rc = gh_yaml_require(c->doc, e, "cluster", "an entry of 'to'", &cn)) != 0 ||
            (rc = gh_yaml_str(c->doc, cn, "cluster", &s)) != 0 ||
            (rc = opt_weight(c, e, &w)) != 0 || (rc = add_target(c, r, cn, s, w)) != 0)
            return rc;
    }
    return 0;
}

/* Whether the route's listener has a section of type t (parse_listener). */
static int listener_has(const ctx_t *c, const gh_route_t *r, const gh_filter_type_t *t)
{
    const gh_listener_conf_t *l = &c->cfg->listeners[r->listener];
    for (size_t i = 0; i < l->num_filters; i++)
        if (l->filters[i].type == t)
            return 1;
    return 0;
}

/* A route key that is neither core nor a filter's section. A key holding
 * a NUL (a YAML escape) is refused before strcmp could read "authn\0x" as
 * authn: gh_yaml_map_get, which compares lengths, would not find it, and
 * the route would run without the section it seems to have (no
 * authentication). */
static int check_route_keys(ctx_t *c, const gh_yaml_node_t *n)
{
    static const char *const core[] = {"name",     "match",   "to",
                                       "max_body", "timeout", "forward_trailers"};
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next) {
        if (memchr(k->str, '\0', k->len) != NULL)
            return gh_yaml_error(c->doc, k, "unknown key '%s' in route (it holds a NUL)", k->str);
        int known = gh_filter_type_find(k->str) != NULL;
        for (size_t i = 0; !known && i < sizeof(core) / sizeof(core[0]); i++)
            known = strcmp(k->str, core[i]) == 0;
        if (!known)
            return gh_yaml_error(c->doc, k, "unknown key '%s' in route", k->str);
    }
    return 0;
}

/* Each registered filter type parses its own section of the route, in
 * registry order, which is the order the chain runs them in. */
static int parse_route_filters(ctx_t *c, const gh_yaml_node_t *n, gh_route_t *r,
                               const gh_yaml_node_t *to)
{
    const gh_filter_type_t *const *types = gh_filter_types();
    const gh_yaml_node_t *terminal = NULL;
    size_t want = 0;
    int rc;
    for (size_t i = 0; types[i] != NULL; i++)
        if (gh_yaml_map_get(n, types[i]->name) != NULL || listener_has(c, r, types[i]) ||
            types[i]->implied != NULL)
            want++;
    if (want > 0 && (rc = alloc_array(c, want, sizeof(*r->filters), (void **)&r->filters)) != 0)
        return rc;
    for (size_t i = 0; types[i] != NULL; i++) {
        const gh_filter_type_t *t = types[i];
        const gh_yaml_node_t *v = gh_yaml_map_get(n, t->name);
        /* A type may be in a chain without its section: a section on the
         * route's listener puts it on every route of it, and a type may be
         * implied (rate_limits, for plans). parse then gets the route's own
         * section, or NULL. */
        if (v == NULL && !listener_has(c, r, t) && (t->implied == NULL || !t->implied(c->cfg, r)))
            continue;
        if (t->phase == GH_PHASE_TERMINAL && v != NULL) {
            if (to != NULL || terminal != NULL)
                return gh_yaml_error(c->doc, gh_yaml_map_key(n, t->name),
                                     "route '%s' needs exactly one of 'to' or '%s'", r->name,
                                     t->name);
            terminal = v;
        }
        void *conf = NULL;
        if (t->parse != NULL && (rc = t->parse(c->doc, v, c->cfg, r, &conf)) != 0)
            return rc;
        r->filters[r->num_filters].type = t;
        r->filters[r->num_filters++].conf = conf;
    }
    if (to == NULL && terminal == NULL)
        return gh_yaml_error(c->doc, n, "route '%s' needs exactly one of 'to' or 'direct_response'",
                             r->name);
    return 0;
}

static int parse_route(ctx_t *c, const gh_yaml_node_t *n, const gh_listener_conf_t *l,
                       gh_route_t *r)
{
    const gh_yaml_node_t *v, *to, *namenode;
    const char *name = NULL;
    int rc;

    r->max_body = GIB;
    r->timeout_ms = 15000;
    r->listener = (size_t)(l - c->cfg->listeners);
    if ((rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, "a route")) != 0 ||
        (rc = check_route_keys(c, n)) != 0)
        return rc;

    if ((namenode = gh_yaml_map_get(n, "name")) != NULL) {
        if ((rc = check_name(c, namenode, "route name", &name)) != 0 ||
            (rc = dup_mem(c, name, namenode->len, &r->name)) != 0)
            return rc;
    } else {
        char buf[MAX_NAME + 32];
        int len = snprintf(buf, sizeof(buf), "%s/#%zu", l->name, r->index);
        if ((rc = dup_mem(c, buf, (size_t)len, &r->name)) != 0)
            return rc;
    }
    if ((rc = name_set_add(c, &c->route_names, r->name, r)) < 0)
        return rc;
    if (rc == 1)
        return gh_yaml_error(c->doc, namenode != NULL ? namenode : n,
                             "duplicate route name '%s' in listener '%s'", r->name, l->name);

    if ((v = gh_yaml_map_get(n, "match")) != NULL && (rc = parse_match(c, v, r)) != 0)
        return rc;

    to = gh_yaml_map_get(n, "to");
    if (to != NULL && (rc = parse_to(c, to, r)) != 0)
        return rc;
    /* A lambda route is answered by the lambda filter, an HTTP one by the
     * router: one request cannot be split between the two. */
    for (size_t i = 1; i < r->num_targets; i++)
        if ((r->targets[i].cluster->lambda != NULL) != (r->targets[0].cluster->lambda != NULL))
            return gh_yaml_error(c->doc, to,
                                 "route '%s' mixes lambda and HTTP clusters in 'to' ('%s' and "
                                 "'%s'): split between clusters of one type",
                                 r->name, r->targets[0].cluster->name, r->targets[i].cluster->name);
    if ((v = gh_yaml_map_get(n, "max_body")) != NULL &&
        (rc = gh_yaml_size(c->doc, v, "max_body", 0, UINT64_MAX, &r->max_body)) != 0)
        return rc;
    if ((rc = opt_duration(c, n, "timeout", MAX_ROUTE_TIMEOUT, &r->timeout_ms)) != 0)
        return rc;
    if ((rc = parse_route_filters(c, n, r, to)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "forward_trailers")) != NULL &&
        (rc = parse_forward_trailers(c, v, r)) != 0)
        return rc;
    return 0;
}

/* Each filter section checked against the whole config, at its node. */
static int check_route_filters(ctx_t *c, const gh_yaml_node_t *listeners)
{
    size_t li = 0;
    for (const gh_yaml_node_t *l = listeners->head; l != NULL; l = l->next, li++) {
        const gh_yaml_node_t *routes = gh_yaml_map_get(l, "routes");
        const gh_listener_conf_t *lc = &c->cfg->listeners[li];
        size_t ri = 0;
        for (const gh_yaml_node_t *rn = routes ? routes->head : NULL;
             rn != NULL && ri < lc->num_routes; rn = rn->next, ri++) {
            const gh_route_t *r = &lc->routes[ri];
            for (size_t f = 0; f < r->num_filters; f++) {
                const gh_filter_type_t *t = r->filters[f].type;
                int rc;
                if (t->check != NULL && (rc = t->check(c->doc, gh_yaml_map_get(rn, t->name), c->cfg,
                                                       r, r->filters[f].conf)) != 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* ---- listeners ---- */

static int is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    return memcmp(&s6->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
}

/* Same family and port, and the same address or either one the wildcard:
 * the two could not both bind, or with SO_REUSEPORT they would silently
 * share connections. */
static int addr_conflicts(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        if (x->sin_port != y->sin_port)
            return 0;
        return x->sin_addr.s_addr == y->sin_addr.s_addr || is_wildcard(a) || is_wildcard(b);
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    if (x->sin6_port != y->sin6_port)
        return 0;
    return (memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
            x->sin6_scope_id == y->sin6_scope_id) ||
           is_wildcard(a) || is_wildcard(b);
}

/* One of names[0..n) as an index; the names, joined, for the error. */
static int opt_choice(ctx_t *c, const gh_yaml_node_t *map, const char *key,
                      const char *const *names, int n, const char *list, int *out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    if (v == NULL)
        return 0;
    for (int i = 0; i < n; i++) {
        if (v->kind == GH_YAML_SCALAR && strcmp(v->str, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return gh_yaml_error(c->doc, v, "'%s' must be %s", key, list);
}

/* How a listener normalizes request paths (gatehouse/path.h). The enum
 * values follow the order of the names. */
static int parse_path_opts(ctx_t *c, const gh_yaml_node_t *n, gh_path_opts_t *o)
{
    static const char *const slashes[] = {"reject", "keep", "unescape_and_redirect"};
    static const char *const params[] = {"strip", "keep", "reject"};
    const gh_yaml_node_t *v;
    int sl = GH_PATH_SLASHES_REJECT, pa = GH_PATH_PARAMS_STRIP, rc;

    *o = (gh_path_opts_t)GH_PATH_OPTS_DEFAULT;
    if ((v = gh_yaml_map_get(n, "normalize_path")) != NULL &&
        (rc = gh_yaml_bool(c->doc, v, "normalize_path", &o->normalize)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "merge_slashes")) != NULL &&
        (rc = gh_yaml_bool(c->doc, v, "merge_slashes", &o->merge_slashes)) != 0)
        return rc;
    if ((rc = opt_choice(c, n, "escaped_slashes", slashes, 3,
                         "reject, keep or unescape_and_redirect", &sl)) != 0 ||
        (rc = opt_choice(c, n, "path_params", params, 3, "strip, keep or reject", &pa)) != 0)
        return rc;
    o->escaped_slashes = (gh_path_slashes_t)sl;
    o->params = (gh_path_params_t)pa;
    return 0;
}

/* keys, then the name of every filter type with a listener section
 * (sections == 0) or a top-level section (sections == 1), into out
 * (NULL-terminated). */
#define MAX_EXTRA_KEYS 32
static void with_filter_keys(const char *const *keys, const char **out, int sections)
{
    const gh_filter_type_t *const *types = gh_filter_types();
    size_t n = 0;
    for (; keys[n] != NULL; n++)
        out[n] = keys[n];
    for (size_t i = 0, extra = 0; types[i] != NULL && extra < MAX_EXTRA_KEYS; i++)
        if (sections ? types[i]->parse_section != NULL : types[i]->parse_listener != NULL) {
            out[n++] = types[i]->name;
            extra++;
        }
    out[n] = NULL;
}

/* The listener's sections of filter types (parse_listener), read before
 * its routes, which take them up in parse_route_filters. */
static int parse_listener_filters(ctx_t *c, const gh_yaml_node_t *n, gh_listener_conf_t *l)
{
    const gh_filter_type_t *const *types = gh_filter_types();
    size_t want = 0;
    int rc;
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->parse_listener != NULL && gh_yaml_map_get(n, types[i]->name) != NULL)
            want++;
    if (want == 0)
        return 0;
    if ((rc = alloc_array(c, want, sizeof(*l->filters), (void **)&l->filters)) != 0)
        return rc;
    for (size_t i = 0; types[i] != NULL; i++) {
        const gh_filter_type_t *t = types[i];
        const gh_yaml_node_t *v = gh_yaml_map_get(n, t->name);
        void *conf = NULL;
        if (t->parse_listener == NULL || v == NULL)
            continue;
        if ((rc = t->parse_listener(c->doc, v, c->cfg, l, &conf)) != 0)
            return rc;
        l->filters[l->num_filters].type = t;
        l->filters[l->num_filters++].conf = conf;
    }
    return 0;
}

/* The top-level sections of filter types (parse_section), each parsed
 * whether or not its key is there (node NULL). */
static int parse_filter_sections(ctx_t *c, const gh_yaml_node_t *root)
{
    const gh_filter_type_t *const *types = gh_filter_types();
    size_t want = 0;
    int rc;
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->parse_section != NULL)
            want++;
    if (want == 0)
        return 0;
    if ((rc = alloc_array(c, want, sizeof(*c->cfg->sections), (void **)&c->cfg->sections)) != 0)
        return rc;
    for (size_t i = 0; types[i] != NULL; i++) {
        const gh_filter_type_t *t = types[i];
        void *section = NULL;
        if (t->parse_section == NULL)
            continue;
        if ((rc = t->parse_section(c->doc, gh_yaml_map_get(root, t->name), c->cfg, &section)) != 0)
            return rc;
        c->cfg->sections[c->cfg->num_sections].type = t;
        c->cfg->sections[c->cfg->num_sections++].section = section;
    }
    return 0;
}

static int parse_listener(ctx_t *c, const gh_yaml_node_t *n, size_t index)
{
    static const char *const keys[] = {"name",
                                       "listen",
                                       "header_timeout",
                                       "idle_timeout",
                                       "body_timeout",
                                       "max_head",
                                       "max_headers",
                                       "max_uri",
                                       "routes",
                                       "normalize_path",
                                       "merge_slashes",
                                       "escaped_slashes",
                                       "path_params",
                                       "trusted_proxies",
                                       "max_connections",
                                       "max_connections_per_address",
                                       NULL};
    const char *keys_all[MAX_EXTRA_KEYS + sizeof(keys) / sizeof(keys[0])];
    gh_listener_conf_t *l = &c->cfg->listeners[index];
    const gh_yaml_node_t *namenode, *listen, *routes;
    const char *name = NULL;
    uint64_t u;
    int rc;

    l->header_timeout_ms = 10000;
    l->idle_timeout_ms = 60000;
    l->body_timeout_ms = 60000;
    l->max_head = 64 * KIB;
    l->max_headers = 100;
    l->max_uri = 8 * KIB;

    with_filter_keys(keys, keys_all, 0);
    if ((rc = gh_yaml_expect(c->doc, n, GH_YAML_MAP, "a listener")) != 0 ||
        (rc = gh_yaml_check_keys(c->doc, n, keys_all, "listener")) != 0 ||
        (rc = gh_yaml_require(c->doc, n, "name", "listener", &namenode)) != 0 ||
        (rc = check_name(c, namenode, "listener name", &name)) != 0)
        return rc;
    for (size_t i = 0; i < index; i++) {
        if (strcmp(c->cfg->listeners[i].name, name) == 0)
            return gh_yaml_error(c->doc, namenode, "duplicate listener name '%s'", name);
    }
    if ((rc = dup_mem(c, name, namenode->len, &l->name)) != 0)
        return rc;

    char what[MAX_NAME + 16];
    snprintf(what, sizeof(what), "listener '%s'", name);
    if ((rc = gh_yaml_require(c->doc, n, "listen", what, &listen)) != 0 ||
        (rc = parse_listen(c, listen, l)) != 0)
        return rc;
    for (size_t i = 0; i < index; i++) {
        const gh_listener_conf_t *o = &c->cfg->listeners[i];
        if (addr_conflicts(&o->addr, &l->addr))
            return gh_yaml_error(c->doc, listen,
                                 "listener '%s' address '%s' conflicts with listener '%s' ('%s')",
                                 name, l->address, o->name, o->address);
    }

    if ((rc = opt_duration(c, n, "header_timeout", MAX_HEADER_TIMEOUT, &l->header_timeout_ms)) !=
            0 ||
        (rc = opt_duration(c, n, "idle_timeout", MAX_IDLE_TIMEOUT, &l->idle_timeout_ms)) != 0 ||
        (rc = opt_duration(c, n, "body_timeout", MAX_BODY_TIMEOUT, &l->body_timeout_ms)) != 0 ||
        (rc = opt_size(c, n, "max_head", KIB, MAX_HEAD_LIMIT, &l->max_head)) != 0 ||
        (rc = opt_size(c, n, "max_uri", 1, MAX_HEAD_LIMIT, &l->max_uri)) != 0)
        return rc;
    u = l->max_headers;
    if ((rc = opt_uint(c, n, "max_headers", 1, MAX_HEADERS_LIMIT, &u)) != 0)
        return rc;
    l->max_headers = (size_t)u;
    if ((rc = parse_path_opts(c, n, &l->path)) != 0)
        return rc;
    if ((rc = gh_config_parse_trusted_proxies(c->doc, gh_yaml_map_get(n, "trusted_proxies"), l)) !=
        0)
        return rc;
    u = 10000;
    if ((rc = opt_uint(c, n, "max_connections", 1, 1000000, &u)) != 0)
        return rc;
    l->max_connections = (uint32_t)u;
    u = 0;
    if ((rc = opt_uint(c, n, "max_connections_per_address", 0, 1000000, &u)) != 0)
        return rc;
    l->max_conns_per_address = (uint32_t)u;

    if ((rc = parse_listener_filters(c, n, l)) != 0)
        return rc;
    if ((rc = gh_yaml_require(c->doc, n, "routes", what, &routes)) != 0 ||
        (rc = nonempty_list(c, routes, "routes")) != 0 ||
        (rc = alloc_array(c, routes->count, sizeof(gh_route_t), (void **)&l->routes)) != 0)
        return rc;
    l->num_routes = routes->count;
    size_t i = 0;
    name_set_dispose(&c->route_names);
    for (const gh_yaml_node_t *r = routes->head; r != NULL; r = r->next, i++) {
        l->routes[i].index = i;
        if ((rc = parse_route(c, r, l, &l->routes[i])) != 0)
            return rc;
    }
    return 0;
}

/* The directory for files gatehouse makes itself (the store's default
 * file); relative to the working directory, as every path of the config. */
static int parse_state_dir(ctx_t *c, const gh_yaml_node_t *n)
{
    const char *v = GH_STORE_DEFAULT_STATE_DIR;
    int rc;
    if (n != NULL) {
        if ((rc = gh_yaml_str(c->doc, n, "state_dir", &v)) != 0)
            return rc;
        if (v[0] == '\0')
            return gh_yaml_error(c->doc, n, "state_dir must not be empty");
    }
    return dup_mem(c, v, strlen(v), &c->cfg->state_dir);
}

static int parse_root(ctx_t *c, const gh_yaml_node_t *root)
{
    static const char *const keys[] = {
        "workers",   "drain_timeout", "listeners", "clusters", "admin",  "access_log", "tracing",
        "providers", "state_dir",     "store",     "plans",    "issuer", NULL};
    const char *keys_all[MAX_EXTRA_KEYS + sizeof(keys) / sizeof(keys[0])];
    const gh_yaml_node_t *listeners;
    uint64_t u = 0;
    int rc;

    c->cfg->drain_timeout_ms = 30000;
    if (root == NULL)
        return gh_yaml_error(c->doc, NULL, "the configuration is empty");
    if (root->kind != GH_YAML_MAP)
        return gh_yaml_error(c->doc, root, "the configuration must be a mapping");
    with_filter_keys(keys, keys_all, 1);
    if ((rc = gh_yaml_check_keys(c->doc, root, keys_all, "the configuration")) != 0 ||
        (rc = opt_uint(c, root, "workers", 0, MAX_WORKERS, &u)) != 0 ||
        (rc = opt_duration(c, root, "drain_timeout", MAX_DRAIN_TIMEOUT,
                           &c->cfg->drain_timeout_ms)) != 0)
        return rc;
    c->cfg->workers = (uint32_t)u;
    if ((rc = parse_state_dir(c, gh_yaml_map_get(root, "state_dir"))) != 0 ||
        (rc = gh_store_conf_parse(c->doc, gh_yaml_map_get(root, "store"), c->cfg->state_dir,
                                  &c->cfg->store)) != 0)
        return rc;
    if ((rc = gh_config_parse_admin(c->doc, gh_yaml_map_get(root, "admin"), c->cfg)) != 0 ||
        (rc = gh_config_parse_access_log(c->doc, gh_yaml_map_get(root, "access_log"), c->cfg)) !=
            0 ||
        (rc = gh_config_parse_tracing(c->doc, gh_yaml_map_get(root, "tracing"), c->cfg)) != 0 ||
        (rc = gh_config_parse_issuer(c->doc, gh_yaml_map_get(root, "issuer"), c->cfg)) != 0)
        return rc;
    if ((rc = parse_clusters(c, root)) != 0 ||
        (rc = gh_config_parse_providers(c->doc, gh_yaml_map_get(root, "providers"), c->cfg)) != 0 ||
        (rc = gh_config_parse_plans(c->doc, gh_yaml_map_get(root, "plans"), c->cfg)) != 0 ||
        (rc = parse_filter_sections(c, root)) != 0)
        return rc;
    if ((rc = gh_yaml_require(c->doc, root, "listeners", "the configuration", &listeners)) != 0 ||
        (rc = nonempty_list(c, listeners, "listeners")) != 0 ||
        (rc = alloc_array(c, listeners->count, sizeof(gh_listener_conf_t),
                          (void **)&c->cfg->listeners)) != 0)
        return rc;
    c->cfg->num_listeners = listeners->count;
    size_t i = 0;
    for (const gh_yaml_node_t *l = listeners->head; l != NULL; l = l->next, i++) {
        if ((rc = parse_listener(c, l, i)) != 0)
            return rc;
    }
    if ((rc = gh_config_check_plans(c->doc, gh_yaml_map_get(root, "plans"), c->cfg)) != 0)
        return rc;
    return check_route_filters(c, listeners);
}

/* ---- entry points ---- */

/* GH_CONFIG_NO_DNS (set and not "0") keeps loading hermetic for fuzzing and
 * tests: endpoint hosts must then be numeric, except "localhost". */
static int no_dns(void)
{
    const char *v = getenv("GH_CONFIG_NO_DNS");
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

gh_config_t *gh_config_load_buffer(const char *name, const char *buf, size_t len,
                                   gh_config_error_t *err)
{
    gh_yaml_doc_t doc;
    ctx_t c = {.doc = &doc, .no_dns = no_dns()};

    if (name == NULL)
        name = "<buffer>";
    if (buf == NULL)
        buf = "";
    if (gh_yaml_doc_init(&doc, name, buf, len, err) != 0)
        return NULL;
    c.cfg = calloc(1, sizeof(*c.cfg));
    if (c.cfg == NULL || dup_mem(&c, name, strlen(name), &c.cfg->path) != 0 ||
        parse_root(&c, doc.root) != 0) {
        if (c.cfg == NULL)
            gh_yaml_oom(&doc);
        gh_config_free(c.cfg);
        c.cfg = NULL;
    }
    name_set_dispose(&c.clusters);
    name_set_dispose(&c.route_names);
    gh_yaml_doc_dispose(&doc);
    return c.cfg;
}

gh_config_t *gh_config_load(const char *path, gh_config_error_t *err)
{
    gh_config_t *cfg = NULL;
    char *buf = NULL;
    struct stat st;
    int fd = gh_file_open(path); /* never blocks: a named pipe is refused */
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (f == NULL) {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", path, gh_file_strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err->msg, sizeof(err->msg), "%s: not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)MAX_CONFIG_FILE) {
        snprintf(err->msg, sizeof(err->msg), "%s: larger than %llu bytes", path,
                 (unsigned long long)MAX_CONFIG_FILE);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    buf = malloc(size + 1);
    if (buf == NULL) {
        snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
        goto out;
    }
    if (fread(buf, 1, size, f) != size || ferror(f)) {
        snprintf(err->msg, sizeof(err->msg), "%s: read error", path);
        goto out;
    }
    cfg = gh_config_load_buffer(path, buf, size, err);
out:
    free(buf);
    fclose(f);
    return cfg;
}
