/*
 * Config of token authentication: providers.jwt.NAME and a route's authn.
 * Providers are parsed before listeners so that routes can name them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/sections.h"

const char *const gh_jwt_alg_names[GH_CONFIG_JWT_ALGS] = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
};
#define HS_BITS ((1u << 10) | (1u << 11) | (1u << 12))
#define ALL_ALGS ((1u << 13) - 1)

/* A realm goes into WWW-Authenticate as a quoted-string (RFC 9110
 * 5.6.4): visible ASCII and spaces only, so no control byte (tab, DEL, CR,
 * LF) or obs-text reaches a client, and no '"' or '\\' that would need
 * escaping. */
static int realm_is_valid(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e || *s == '"' || *s == '\\')
            return 0;
    return 1;
}

static int parse_from(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_jwt_provider_conf_t *p)
{
    static const char *const keys[] = {"header", "prefix", "query", "cookie", NULL};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "from")) != 0)
        return rc;
    if (n->count == 0)
        return gh_yaml_error(doc, n, "from must name at least one token location");
    p->from = calloc(n->count, sizeof(*p->from));
    if (p->from == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        gh_token_from_t *f = &p->from[p->num_from++];
        const gh_yaml_node_t *h, *q, *c, *pre;
        if ((rc = gh_yaml_expect(doc, it, GH_YAML_MAP, "a token location")) != 0 ||
            (rc = gh_yaml_check_keys(doc, it, keys, "token location")) != 0)
            return rc;
        h = gh_yaml_map_get(it, "header");
        q = gh_yaml_map_get(it, "query");
        c = gh_yaml_map_get(it, "cookie");
        pre = gh_yaml_map_get(it, "prefix");
        if ((h != NULL) + (q != NULL) + (c != NULL) != 1)
            return gh_yaml_error(doc, it,
                                 "a token location needs exactly one of header, query "
                                 "or cookie");
        if (pre != NULL && h == NULL)
            return gh_yaml_error(doc, pre, "prefix applies to header locations only");
        if (h != NULL) {
            f->kind = GH_TOKEN_FROM_HEADER;
            if ((rc = gh_config_header(doc, h, "header", &f->name)) != 0)
                return rc;
            if (pre != NULL) {
                const char *v;
                if ((rc = gh_yaml_str(doc, pre, "prefix", &v)) != 0 ||
                    (rc = gh_config_dup(doc, v, &f->prefix)) != 0)
                    return rc;
                f->prefix_len = strlen(f->prefix);
            }
        } else {
            f->kind = q != NULL ? GH_TOKEN_FROM_QUERY : GH_TOKEN_FROM_COOKIE;
            if ((rc = gh_config_str(doc, q != NULL ? q : c, q != NULL ? "query" : "cookie",
                                    &f->name)) != 0)
                return rc;
        }
        f->name_len = strlen(f->name);
    }
    return 0;
}

static int parse_required(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                          gh_jwt_provider_conf_t *p)
{
    static const char *const keys[] = {"claim", "exact", "one_of", "contains", NULL};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "required_claims")) != 0)
        return rc;
    p->required_claims = calloc(n->count + 1, sizeof(*p->required_claims));
    if (p->required_claims == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        gh_claim_req_t *r = &p->required_claims[p->num_required_claims++];
        const gh_yaml_node_t *cl, *e, *o, *ct;
        if ((rc = gh_yaml_expect(doc, it, GH_YAML_MAP, "a required claim")) != 0 ||
            (rc = gh_yaml_check_keys(doc, it, keys, "required claim")) != 0 ||
            (rc = gh_yaml_require(doc, it, "claim", "a required claim", &cl)) != 0 ||
            (rc = gh_config_str(doc, cl, "claim", &r->claim)) != 0)
            return rc;
        e = gh_yaml_map_get(it, "exact");
        o = gh_yaml_map_get(it, "one_of");
        ct = gh_yaml_map_get(it, "contains");
        if ((e != NULL) + (o != NULL) + (ct != NULL) != 1)
            return gh_yaml_error(doc, it,
                                 "required claim '%s' needs exactly one of exact, one_of "
                                 "or contains",
                                 r->claim);
        r->op = e ? GH_CLAIM_EXACT : o ? GH_CLAIM_ONE_OF : GH_CLAIM_CONTAINS;
        const gh_yaml_node_t *v = e ? e : o ? o : ct;
        if (e != NULL && e->kind != GH_YAML_SCALAR)
            return gh_yaml_error(doc, e, "exact takes one value");
        if ((rc = gh_config_str_list(doc, v,
                                     e   ? "exact"
                                     : o ? "one_of"
                                         : "contains",
                                     &r->values, &r->num_values)) != 0)
            return rc;
    }
    return 0;
}

static int parse_claims_to_headers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                   gh_jwt_provider_conf_t *p)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "claims_to_headers")) != 0)
        return rc;
    p->claims_to_headers = calloc(n->count + 1, sizeof(*p->claims_to_headers));
    if (p->claims_to_headers == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = n->head; k != NULL; k = k->next) {
        gh_claim_header_t *ch = &p->claims_to_headers[p->num_claims_to_headers++];
        if ((rc = gh_config_dup(doc, k->str, &ch->claim)) != 0 ||
            (rc = gh_config_set_header(doc, k->value, "claims_to_headers header", &ch->header)) !=
                0)
            return rc;
    }
    return 0;
}

static int parse_algorithms(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                            gh_jwt_provider_conf_t *p)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "algorithms")) != 0)
        return rc;
    p->algorithms = 0;
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        const char *v;
        int found = -1;
        if ((rc = gh_yaml_str(doc, it, "algorithm", &v)) != 0)
            return rc;
        for (int i = 0; i < GH_CONFIG_JWT_ALGS; i++)
            if (gh_jwt_alg_names[i] != NULL && strcmp(v, gh_jwt_alg_names[i]) == 0)
                found = i;
        if (found < 0)
            return gh_yaml_error(doc, it,
                                 "unknown algorithm '%s' (RS256..512, PS256..512, ES256..512, "
                                 "EdDSA, HS256..512; 'none' is never accepted)",
                                 v);
        p->algorithms |= 1u << found;
    }
    if (p->algorithms == 0)
        return gh_yaml_error(doc, n, "algorithms must not be empty");
    return 0;
}

static int parse_jwks(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_jwt_provider_conf_t *p)
{
    static const char *const keys[] = {"inline",
                                       "file",
                                       "uri",
                                       "discovery",
                                       "refresh_interval",
                                       "min_refresh_interval",
                                       "max_refresh_interval",
                                       "timeout",
                                       "insecure_http",
                                       NULL};
    const gh_yaml_node_t *in, *fi, *ur, *di, *v;
    int rc, disc = 0;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "jwks")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "jwks")) != 0)
        return rc;
    in = gh_yaml_map_get(n, "inline");
    fi = gh_yaml_map_get(n, "file");
    ur = gh_yaml_map_get(n, "uri");
    di = gh_yaml_map_get(n, "discovery");
    if (di != NULL && (rc = gh_yaml_bool(doc, di, "discovery", &disc)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "insecure_http")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "insecure_http", &p->insecure_http)) != 0)
        return rc;
    if ((in != NULL) + (fi != NULL) + (ur != NULL) + (disc != 0) != 1)
        return gh_yaml_error(doc, n,
                             "jwks needs exactly one of inline, file, uri or "
                             "discovery: true");
    if (in != NULL) {
        p->jwks_source = GH_JWKS_INLINE;
        rc = gh_config_str(doc, in, "inline", &p->jwks_inline);
    } else if (fi != NULL) {
        p->jwks_source = GH_JWKS_FILE;
        rc = gh_config_str(doc, fi, "file", &p->jwks_file);
    } else if (ur != NULL) {
        p->jwks_source = GH_JWKS_URI;
        rc = gh_config_str(doc, ur, "uri", &p->jwks_uri);
        if (rc == 0 && strncmp(p->jwks_uri, "https://", 8) != 0 &&
            strncmp(p->jwks_uri, "http://", 7) != 0)
            rc = gh_yaml_error(doc, ur, "jwks uri must be an https:// URL");
        else if (rc == 0 && !p->insecure_http && strncmp(p->jwks_uri, "http://", 7) == 0)
            rc = gh_yaml_error(doc, ur,
                               "jwks uri is plain http: anyone on the path could replace the "
                               "keys (say insecure_http: true to allow it anyway)");
    } else {
        p->jwks_source = GH_JWKS_DISCOVERY;
        char url[2048];
        size_t il = strlen(p->issuer);
        snprintf(url, sizeof(url), "%s%s.well-known/openid-configuration", p->issuer,
                 il > 0 && p->issuer[il - 1] == '/' ? "" : "/");
        rc = gh_config_dup(doc, url, &p->jwks_uri);
        if (rc == 0 && strncmp(p->issuer, "https://", 8) != 0 &&
            strncmp(p->issuer, "http://", 7) != 0)
            rc = gh_yaml_error(doc, di, "discovery needs an issuer that is an https:// URL");
        else if (rc == 0 && !p->insecure_http && strncmp(p->issuer, "http://", 7) == 0)
            rc = gh_yaml_error(doc, di,
                               "discovery over plain http: anyone on the path could replace the "
                               "keys (say insecure_http: true to allow it anyway)");
    }
    if (rc != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "refresh_interval")) != NULL &&
        (rc = gh_yaml_duration(doc, v, "refresh_interval", &p->refresh_ms)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "min_refresh_interval")) != NULL &&
        (rc = gh_yaml_duration(doc, v, "min_refresh_interval", &p->min_refresh_ms)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "max_refresh_interval")) != NULL &&
        (rc = gh_yaml_duration(doc, v, "max_refresh_interval", &p->max_refresh_ms)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "timeout")) != NULL) {
        if ((rc = gh_yaml_duration(doc, v, "timeout", &p->fetch_timeout_ms)) != 0)
            return rc;
        /* A fetch holds a thread-pool thread; a key host that hangs must
         * not hold it (or shutdown) for long. 0 would mean "none" to curl. */
        if (p->fetch_timeout_ms == 0 || p->fetch_timeout_ms > 60000)
            return gh_yaml_error(doc, v, "timeout must be between 1ms and 60s");
    }
    if (p->min_refresh_ms > p->max_refresh_ms)
        return gh_yaml_error(doc, n, "min_refresh_interval is above max_refresh_interval");
    return 0;
}

/* audiences is required: a provider without one would take a token minted
 * for any other service of the same issuer (RFC 8725 section 3.9). One that
 * truly serves every audience says so with "any". */
static int parse_audiences(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                           gh_jwt_provider_conf_t *p)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(n, "audiences");
    if (v == NULL)
        return gh_yaml_error(doc, n,
                             "jwt provider '%s' needs audiences (a list, or 'any' to accept "
                             "tokens for every audience)",
                             p->name);
    if (v->kind == GH_YAML_SCALAR && v->str != NULL && strcmp(v->str, "any") == 0) {
        p->audiences_any = 1;
        return 0;
    }
    return gh_config_str_list(doc, v, "audiences", &p->audiences, &p->num_audiences);
}

static int parse_provider(const gh_yaml_doc_t *doc, const gh_yaml_node_t *key,
                          const gh_config_t *cfg, gh_jwt_provider_conf_t *p)
{
    static const char *const keys[] = {"issuer",
                                       "audiences",
                                       "clock_skew",
                                       "exp_optional",
                                       "typ",
                                       "required_claims",
                                       "jwks",
                                       "allow_symmetric",
                                       "algorithms",
                                       "from",
                                       "claims_to_headers",
                                       "payload_header",
                                       "forward_token",
                                       "realm",
                                       "cache_entries",
                                       "max_token_age",
                                       NULL};
    const gh_yaml_node_t *n = key->value, *v;
    uint64_t u;
    int rc;
    p->clock_skew_s = 60;
    p->refresh_ms = 300000;
    p->min_refresh_ms = 30000;
    p->max_refresh_ms = 86400000;
    p->fetch_timeout_ms = 5000;
    p->forward_token = 1;
    p->cache_entries = 10000;
    p->algorithms = ALL_ALGS & ~HS_BITS;
    if ((rc = gh_config_dup(doc, key->str, &p->name)) != 0 ||
        (rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "a jwt provider")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "jwt provider")) != 0 ||
        (rc = gh_yaml_require(doc, n, "issuer", "jwt provider", &v)) != 0 ||
        (rc = gh_config_str(doc, v, "issuer", &p->issuer)) != 0)
        return rc;
    /* issuer: self is gatehouse's own token service (docs/issuer.md): its
     * keys come from the key directory, not a JWKS, and its tokens are
     * checked against the revoked ones. */
    if (strcmp(p->issuer, "self") == 0) {
        if (cfg->issuer == NULL)
            return gh_yaml_error(doc, v,
                                 "issuer: self names this gatehouse's token service: the "
                                 "configuration needs a top-level 'issuer' section");
        if (gh_yaml_map_get(n, "jwks") != NULL)
            return gh_yaml_error(doc, gh_yaml_map_key(n, "jwks"),
                                 "issuer: self takes its keys from the issuer's key directory: "
                                 "no jwks");
        if (gh_yaml_map_get(n, "allow_symmetric") != NULL)
            return gh_yaml_error(doc, gh_yaml_map_key(n, "allow_symmetric"),
                                 "issuer: self signs with asymmetric keys only");
        free(p->issuer);
        p->issuer = NULL;
        if ((rc = gh_config_dup(doc, cfg->issuer->url, &p->issuer)) != 0)
            return rc;
        p->jwks_source = GH_JWKS_SELF;
    }
    if ((rc = parse_audiences(doc, n, p)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "clock_skew")) != NULL) {
        uint64_t ms;
        if ((rc = gh_yaml_duration(doc, v, "clock_skew", &ms)) != 0)
            return rc;
        if (ms > GH_JWT_MAX_CLOCK_SKEW * 1000)
            return gh_yaml_error(doc, v, "clock_skew is at most 5m");
        p->clock_skew_s = ms / 1000;
    }
    if ((v = gh_yaml_map_get(n, "max_token_age")) != NULL) {
        uint64_t ms;
        if ((rc = gh_yaml_duration(doc, v, "max_token_age", &ms)) != 0)
            return rc;
        if (ms < 1000)
            return gh_yaml_error(doc, v, "max_token_age is at least 1s");
        p->max_token_age_s = ms / 1000;
    }
    if ((v = gh_yaml_map_get(n, "exp_optional")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "exp_optional", &p->exp_optional)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "typ")) != NULL &&
        (rc = gh_config_str(doc, v, "typ", &p->typ)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "required_claims")) != NULL &&
        (rc = parse_required(doc, v, p)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "allow_symmetric")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "allow_symmetric", &p->allow_symmetric)) != 0)
        return rc;
    if (p->allow_symmetric)
        p->algorithms |= HS_BITS;
    if ((v = gh_yaml_map_get(n, "algorithms")) != NULL && (rc = parse_algorithms(doc, v, p)) != 0)
        return rc;
    if ((p->algorithms & HS_BITS) && !p->allow_symmetric)
        return gh_yaml_error(doc, gh_yaml_map_get(n, "algorithms"),
                             "HS256/384/512 need allow_symmetric: true and an inline or file "
                             "JWKS holding the shared key");
    if (p->jwks_source != GH_JWKS_SELF &&
        ((rc = gh_yaml_require(doc, n, "jwks", "jwt provider", &v)) != 0 ||
         (rc = parse_jwks(doc, v, p)) != 0))
        return rc;
    /* A shared secret fetched over the network would be a secret on the
     * wire and in every cache on the way. */
    if (p->allow_symmetric &&
        (p->jwks_source == GH_JWKS_URI || p->jwks_source == GH_JWKS_DISCOVERY))
        return gh_yaml_error(doc, gh_yaml_map_get(n, "allow_symmetric"),
                             "allow_symmetric needs an inline or file JWKS, not a fetched one");
    if ((v = gh_yaml_map_get(n, "from")) != NULL) {
        if ((rc = parse_from(doc, v, p)) != 0)
            return rc;
    } else {
        p->from = calloc(1, sizeof(*p->from));
        if (p->from == NULL || (p->from[0].name = strdup("authorization")) == NULL ||
            (p->from[0].prefix = strdup("Bearer ")) == NULL)
            return gh_yaml_oom(doc);
        p->num_from = 1;
        p->from[0].kind = GH_TOKEN_FROM_HEADER;
        p->from[0].name_len = 13;
        p->from[0].prefix_len = 7;
    }
    if ((v = gh_yaml_map_get(n, "claims_to_headers")) != NULL &&
        (rc = parse_claims_to_headers(doc, v, p)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "payload_header")) != NULL &&
        (rc = gh_config_set_header(doc, v, "payload_header", &p->payload_header)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "forward_token")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "forward_token", &p->forward_token)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "realm")) != NULL) {
        if ((rc = gh_config_str(doc, v, "realm", &p->realm)) != 0)
            return rc;
        if (!realm_is_valid(p->realm))
            return gh_yaml_error(doc, v,
                                 "realm may contain only visible ASCII and spaces, "
                                 "without quotes or backslashes");
    } else if ((rc = gh_config_dup(doc, "gatehouse", &p->realm)) != 0) {
        return rc;
    }
    if ((v = gh_yaml_map_get(n, "cache_entries")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "cache_entries", 0, 10000000, &u)) != 0)
            return rc;
        p->cache_entries = (uint32_t)u;
    }
    return 0;
}

static int audiences_overlap(const gh_jwt_provider_conf_t *a, const gh_jwt_provider_conf_t *b)
{
    /* "audiences: any" overlaps everything. */
    if (a->num_audiences == 0 || b->num_audiences == 0)
        return 1;
    for (size_t i = 0; i < a->num_audiences; i++)
        for (size_t j = 0; j < b->num_audiences; j++)
            if (strcmp(a->audiences[i], b->audiences[j]) == 0)
                return 1;
    return 0;
}

/* A token in a query parameter would otherwise be written to the access
 * log with the query: its parameter joins access_log.secret_query. */
static int mask_query_tokens(const gh_yaml_doc_t *doc, gh_config_t *cfg,
                             const gh_jwt_provider_conf_t *p)
{
    gh_access_log_conf_t *l = &cfg->access_log;
    for (size_t i = 0; i < p->num_from; i++) {
        if (p->from[i].kind != GH_TOKEN_FROM_QUERY)
            continue;
        int have = 0;
        for (size_t j = 0; j < l->num_secret_query; j++)
            have |= strcmp(l->secret_query[j], p->from[i].name) == 0;
        if (have)
            continue;
        char **n = realloc(l->secret_query, (l->num_secret_query + 2) * sizeof(char *));
        if (n == NULL)
            return gh_yaml_oom(doc);
        l->secret_query = n;
        if ((n[l->num_secret_query] = strdup(p->from[i].name)) == NULL)
            return gh_yaml_oom(doc);
        l->num_secret_query++;
    }
    return 0;
}

/* A cache time: a duration up to 1h, or 0 ("0", "0s": no caching). */
static int cache_ttl(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, const char *key,
                     uint64_t *ms)
{
    if (v->kind == GH_YAML_SCALAR && (strcmp(v->str, "0") == 0 || strcmp(v->str, "0s") == 0)) {
        *ms = 0;
        return 0;
    }
    int rc = gh_yaml_duration(doc, v, key, ms);
    if (rc == 0 && *ms > 3600000)
        return gh_yaml_error(doc, v,
                             "%s is at most 1h (it bounds how late a change in the "
                             "store, a revocation, takes effect)",
                             key);
    return rc;
}

/* providers.apikeys.NAME (docs/api-keys.md). */
static int parse_apikey_provider(const gh_yaml_doc_t *doc, const gh_yaml_node_t *key,
                                 gh_apikey_provider_conf_t *p)
{
    static const char *const keys[] = {"header",        "query",     "consumer_header",
                                       "forward_key",   "cache_ttl", "negative_cache_ttl",
                                       "cache_entries", "realm",     NULL};
    const gh_yaml_node_t *n = key->value, *v;
    uint64_t u;
    int rc;
    p->cache_ttl_ms = 30000;
    p->negative_ttl_ms = 5000;
    p->cache_entries = 10000;
    if ((rc = gh_config_dup(doc, key->str, &p->name)) != 0)
        return rc;
    if (n->kind == GH_YAML_SCALAR && n->len == 0) {
        /* `keys: {}` written as `keys:` */
    } else if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "an apikeys provider")) != 0 ||
               (rc = gh_yaml_check_keys(doc, n, keys, "apikeys provider")) != 0) {
        return rc;
    }
    int map = n->kind == GH_YAML_MAP;
    const gh_yaml_node_t *h = map ? gh_yaml_map_get(n, "header") : NULL;
    const gh_yaml_node_t *q = map ? gh_yaml_map_get(n, "query") : NULL;
    if (h != NULL && (rc = gh_config_header(doc, h, "header", &p->header)) != 0)
        return rc;
    if (q != NULL) {
        if ((rc = gh_config_str(doc, q, "query", &p->query)) != 0)
            return rc;
        if (p->query[0] == '\0' || strpbrk(p->query, "&=#%+ ") != NULL)
            return gh_yaml_error(doc, q, "query '%s' is not a plain parameter name", p->query);
    }
    if (h == NULL && q == NULL && (rc = gh_config_dup(doc, "x-api-key", &p->header)) != 0)
        return rc;
    if (p->header != NULL)
        p->from[p->num_from++] = (gh_token_from_t){
            .kind = GH_TOKEN_FROM_HEADER, .name = p->header, .name_len = strlen(p->header)};
    if (p->query != NULL)
        p->from[p->num_from++] = (gh_token_from_t){
            .kind = GH_TOKEN_FROM_QUERY, .name = p->query, .name_len = strlen(p->query)};
    if (p->header != NULL) {
        const char *why = gh_config_header_name_refused(p->header);
        if (why != NULL && strcmp(p->header, "authorization") != 0)
            return gh_yaml_error(doc, h, "header '%s' %s", p->header, why);
    }
    v = map ? gh_yaml_map_get(n, "consumer_header") : NULL;
    if (v != NULL) {
        if (!(v->kind == GH_YAML_SCALAR && (strcmp(v->str, "false") == 0 || v->len == 0)) &&
            (rc = gh_config_set_header(doc, v, "consumer_header", &p->consumer_header)) != 0)
            return rc;
    } else if ((rc = gh_config_dup(doc, "x-consumer", &p->consumer_header)) != 0) {
        return rc;
    }
    p->consumer_header_len = p->consumer_header != NULL ? strlen(p->consumer_header) : 0;
    if (p->consumer_header != NULL && p->header != NULL &&
        strcmp(p->consumer_header, p->header) == 0)
        return gh_yaml_error(doc, v, "consumer_header and header are the same field");
    if (map && (v = gh_yaml_map_get(n, "forward_key")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "forward_key", &p->forward_key)) != 0)
        return rc;
    if (map && (v = gh_yaml_map_get(n, "cache_ttl")) != NULL &&
        (rc = cache_ttl(doc, v, "cache_ttl", &p->cache_ttl_ms)) != 0)
        return rc;
    if (map && (v = gh_yaml_map_get(n, "negative_cache_ttl")) != NULL &&
        (rc = cache_ttl(doc, v, "negative_cache_ttl", &p->negative_ttl_ms)) != 0)
        return rc;
    if (map && (v = gh_yaml_map_get(n, "cache_entries")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "cache_entries", 0, 10000000, &u)) != 0)
            return rc;
        p->cache_entries = (uint32_t)u;
    }
    if (map && (v = gh_yaml_map_get(n, "realm")) != NULL) {
        if ((rc = gh_config_str(doc, v, "realm", &p->realm)) != 0)
            return rc;
        if (!realm_is_valid(p->realm))
            return gh_yaml_error(doc, v,
                                 "realm may contain only visible ASCII and spaces, "
                                 "without quotes or backslashes");
    } else if ((rc = gh_config_dup(doc, "gatehouse", &p->realm)) != 0) {
        return rc;
    }
    return 0;
}

static int parse_apikey_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                                  gh_config_t *cfg)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "providers.apikeys")) != 0)
        return rc;
    cfg->apikey_providers = calloc(node->count + 1, sizeof(*cfg->apikey_providers));
    if (cfg->apikey_providers == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = node->head; k != NULL; k = k->next) {
        gh_apikey_provider_conf_t *p = &cfg->apikey_providers[cfg->num_apikey_providers];
        p->index = cfg->num_apikey_providers++;
        if ((rc = parse_apikey_provider(doc, k, p)) != 0)
            return rc;
        /* One namespace for the names a route's authn gives. */
        for (size_t i = 0; i < cfg->num_jwt_providers; i++)
            if (strcmp(cfg->jwt_providers[i].name, p->name) == 0)
                return gh_yaml_error(
                    doc, k, "provider name '%s' is both a jwt and an apikeys provider", p->name);
        if (p->query != NULL) {
            gh_jwt_provider_conf_t fake = {0};
            gh_token_from_t from = {.kind = GH_TOKEN_FROM_QUERY, .name = p->query};
            fake.from = &from;
            fake.num_from = 1;
            if ((rc = mask_query_tokens(doc, cfg, &fake)) != 0)
                return rc;
        }
    }
    return 0;
}

static int parse_jwt_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *jwt,
                               gh_config_t *cfg);

int gh_config_parse_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                              gh_config_t *cfg)
{
    static const char *const keys[] = {"jwt", "apikeys", "authorizers", NULL};
    const gh_yaml_node_t *jwt, *ak, *az;
    int rc;
    if (node == NULL)
        return 0;
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "providers")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "providers")) != 0)
        return rc;
    if ((jwt = gh_yaml_map_get(node, "jwt")) != NULL &&
        (rc = parse_jwt_providers(doc, jwt, cfg)) != 0)
        return rc;
    if ((ak = gh_yaml_map_get(node, "apikeys")) != NULL &&
        (rc = parse_apikey_providers(doc, ak, cfg)) != 0)
        return rc;
    if ((az = gh_yaml_map_get(node, "authorizers")) != NULL)
        return gh_config_parse_authorizers(doc, az, cfg);
    return 0;
}

static int parse_jwt_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *jwt,
                               gh_config_t *cfg)
{
    int rc;
    if ((rc = gh_yaml_expect(doc, jwt, GH_YAML_MAP, "providers.jwt")) != 0)
        return rc;
    cfg->jwt_providers = calloc(jwt->count + 1, sizeof(*cfg->jwt_providers));
    if (cfg->jwt_providers == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *k = jwt->head; k != NULL; k = k->next) {
        gh_jwt_provider_conf_t *p = &cfg->jwt_providers[cfg->num_jwt_providers];
        p->index = cfg->num_jwt_providers++;
        if ((rc = parse_provider(doc, k, cfg, p)) != 0 ||
            (rc = mask_query_tokens(doc, cfg, p)) != 0)
            return rc;
        /* RFC 8725 section 3.8: the token's issuer picks the provider; two
         * providers that could both claim a token make that ambiguous. */
        for (size_t i = 0; i < p->index; i++) {
            const gh_jwt_provider_conf_t *o = &cfg->jwt_providers[i];
            if (strcmp(o->issuer, p->issuer) == 0 && audiences_overlap(o, p))
                return gh_yaml_error(doc, k,
                                     "jwt providers '%s' and '%s' have the same issuer and "
                                     "overlapping audiences",
                                     o->name, p->name);
        }
    }
    return 0;
}

static gh_jwt_provider_conf_t *find_provider(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->num_jwt_providers; i++)
        if (strcmp(cfg->jwt_providers[i].name, name) == 0)
            return &cfg->jwt_providers[i];
    return NULL;
}

static gh_apikey_provider_conf_t *find_apikey_provider(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->num_apikey_providers; i++)
        if (strcmp(cfg->apikey_providers[i].name, name) == 0)
            return &cfg->apikey_providers[i];
    return NULL;
}

static gh_authorizer_conf_t *find_authorizer(const gh_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->num_authorizers; i++)
        if (strcmp(cfg->authorizers[i].name, name) == 0)
            return &cfg->authorizers[i];
    return NULL;
}

static int add_providers(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const gh_config_t *cfg,
                         gh_authn_conf_t *a)
{
    size_t cap = n->kind == GH_YAML_SEQ ? n->count : 1;
    if (n->kind == GH_YAML_MAP || (n->kind == GH_YAML_SEQ && n->count == 0))
        return gh_yaml_error(doc, n, "authn names a provider or a non-empty list of providers");
    a->providers = calloc(cap + 1, sizeof(*a->providers));
    a->apikeys = calloc(cap + 1, sizeof(*a->apikeys));
    a->authorizers = calloc(cap + 1, sizeof(*a->authorizers));
    if (a->providers == NULL || a->apikeys == NULL || a->authorizers == NULL)
        return gh_yaml_oom(doc);
    const gh_yaml_node_t *one = n->kind == GH_YAML_SCALAR ? n : n->head;
    for (; one != NULL; one = n->kind == GH_YAML_SCALAR ? NULL : one->next) {
        const char *name;
        int rc = gh_yaml_str(doc, one, "provider", &name);
        if (rc != 0)
            return rc;
        gh_jwt_provider_conf_t *p = find_provider(cfg, name);
        gh_authorizer_conf_t *az = p == NULL ? find_authorizer(cfg, name) : NULL;
        if (az != NULL) {
            for (size_t i = 0; i < a->num_authorizers; i++)
                if (a->authorizers[i] == az)
                    return gh_yaml_error(doc, one, "provider '%s' is named twice", name);
            a->authorizers[a->num_authorizers++] = az;
            continue;
        }
        if (p == NULL) {
            gh_apikey_provider_conf_t *k = find_apikey_provider(cfg, name);
            if (k == NULL)
                return gh_yaml_error(doc, one, "authn names unknown provider '%s'", name);
            for (size_t i = 0; i < a->num_apikeys; i++)
                if (a->apikeys[i] == k)
                    return gh_yaml_error(doc, one, "provider '%s' is named twice", name);
            a->apikeys[a->num_apikeys++] = k;
            continue;
        }
        for (size_t i = 0; i < a->num_providers; i++)
            if (a->providers[i] == p)
                return gh_yaml_error(doc, one, "provider '%s' is named twice", name);
        a->providers[a->num_providers++] = p;
    }
    return 0;
}

static int parse_exempt(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_authn_conf_t *a)
{
    static const char *const keys[] = {"exact", "prefix", "regex", NULL};
    int rc;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_SEQ, "exempt")) != 0)
        return rc;
    a->exempt = calloc(n->count + 1, sizeof(*a->exempt));
    if (a->exempt == NULL)
        return gh_yaml_oom(doc);
    for (const gh_yaml_node_t *it = n->head; it != NULL; it = it->next) {
        gh_strmatch_t *m = &a->exempt[a->num_exempt];
        if ((rc = gh_yaml_expect(doc, it, GH_YAML_MAP, "an exempt path")) != 0 ||
            (rc = gh_yaml_check_keys(doc, it, keys, "exempt path")) != 0)
            return rc;
        if (it->count != 1)
            return gh_yaml_error(doc, it, "an exempt path takes one of exact, prefix or regex");
        const gh_yaml_node_t *k = it->head;
        const char *v;
        if ((rc = gh_yaml_str(doc, k->value, k->str, &v)) != 0)
            return rc;
        m->kind = strcmp(k->str, "exact") == 0    ? GH_MATCH_EXACT
                  : strcmp(k->str, "prefix") == 0 ? GH_MATCH_PREFIX
                                                  : GH_MATCH_REGEX;
        if ((rc = gh_config_dup(doc, v, &m->value)) != 0)
            return rc;
        m->value_len = strlen(v);
        a->num_exempt++;
        if (m->kind == GH_MATCH_REGEX) {
            int ec;
            PCRE2_SIZE eo;
            m->re = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
            if (m->re == NULL) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(ec, msg, sizeof(msg));
                return gh_yaml_error(doc, k->value, "invalid regex at offset %zu: %s", (size_t)eo,
                                     (const char *)msg);
            }
            pcre2_jit_compile(m->re, PCRE2_JIT_COMPLETE);
        } else if (v[0] != '/') {
            return gh_yaml_error(doc, k->value, "exempt paths start with '/'");
        }
    }
    return 0;
}

int gh_config_parse_authn(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                          const gh_config_t *cfg, gh_route_t *r)
{
    static const char *const keys[] = {"any", "all", "optional", "exempt", NULL};
    int rc;
    gh_authn_conf_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return gh_yaml_oom(doc);
    r->authn = a;
    if (node->kind == GH_YAML_SCALAR)
        return add_providers(doc, node, cfg, a);
    if ((rc = gh_yaml_expect(doc, node, GH_YAML_MAP, "authn")) != 0 ||
        (rc = gh_yaml_check_keys(doc, node, keys, "authn")) != 0)
        return rc;
    const gh_yaml_node_t *any = gh_yaml_map_get(node, "any"), *all = gh_yaml_map_get(node, "all"),
                         *opt = gh_yaml_map_get(node, "optional"),
                         *ex = gh_yaml_map_get(node, "exempt");
    if ((any != NULL) + (all != NULL) + (opt != NULL) != 1)
        return gh_yaml_error(doc, node, "authn takes exactly one of any, all or optional");
    a->all = all != NULL;
    a->optional = opt != NULL;
    if ((rc = add_providers(doc, any ? any : all ? all : opt, cfg, a)) != 0)
        return rc;
    if (ex != NULL && (rc = parse_exempt(doc, ex, a)) != 0)
        return rc;
    return 0;
}

void gh_config_free_authn(gh_authn_conf_t *a)
{
    if (a == NULL)
        return;
    free(a->providers);
    free(a->apikeys);
    free(a->authorizers);
    for (size_t i = 0; i < a->num_exempt; i++) {
        free(a->exempt[i].value);
        if (a->exempt[i].re != NULL)
            pcre2_code_free(a->exempt[i].re);
    }
    free(a->exempt);
    free(a);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void gh_config_free_providers(gh_config_t *cfg)
{
    for (size_t i = 0; i < cfg->num_jwt_providers; i++) {
        gh_jwt_provider_conf_t *p = &cfg->jwt_providers[i];
        free(p->name);
        free(p->issuer);
        free_strs(p->audiences, p->num_audiences);
        free(p->typ);
        for (size_t j = 0; j < p->num_required_claims; j++) {
            free(p->required_claims[j].claim);
            free_strs(p->required_claims[j].values, p->required_claims[j].num_values);
        }
        free(p->required_claims);
        free(p->jwks_inline);
        free(p->jwks_file);
        free(p->jwks_uri);
        for (size_t j = 0; j < p->num_from; j++) {
            free(p->from[j].name);
            free(p->from[j].prefix);
        }
        free(p->from);
        for (size_t j = 0; j < p->num_claims_to_headers; j++) {
            free(p->claims_to_headers[j].claim);
            free(p->claims_to_headers[j].header);
        }
        free(p->claims_to_headers);
        free(p->payload_header);
        free(p->realm);
    }
    free(cfg->jwt_providers);
    for (size_t i = 0; i < cfg->num_apikey_providers; i++) {
        gh_apikey_provider_conf_t *k = &cfg->apikey_providers[i];
        free(k->name);
        free(k->header);
        free(k->query);
        free(k->consumer_header);
        free(k->realm);
    }
    free(cfg->apikey_providers);
}
