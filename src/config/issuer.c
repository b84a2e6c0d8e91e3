/*
 * The top-level `issuer` section (docs/issuer.md): the OAuth 2.0 token
 * service's settings, read by the token endpoint's filter, the signing
 * keys (gatehouse/issuer_keys.h) and JWT providers with `issuer: self`.
 *
 *   issuer:
 *     issuer: https://auth.example.com
 *     token_ttl: 1h
 *     alg: ES256
 *     default_audience: https://api.example.com
 *     jwks_max_age: 5m
 *     publish_lead: 6m
 *     leeway: 60s
 *     assertion_lifetime: 5m
 *     failed_auth_limit: 10
 *     introspectors: [ghc_...]
 *     revocation_poll: 5s
 *     replay_capacity: 65536
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/client.h>
#include <gatehouse/config.h>
#include <gatehouse/jwt.h>
#include <gatehouse/yaml.h>

#include "config/sections.h"

#define DAY_MS (86400ULL * 1000)

void gh_config_free_issuer(gh_issuer_conf_t *is)
{
    if (is == NULL)
        return;
    free(is->url);
    free(is->default_audience);
    for (size_t i = 0; i < is->num_introspectors; i++)
        free(is->introspectors[i]);
    free(is->introspectors);
    free(is);
}

/* 1 when h[0..n) (HOST[:PORT]) names this host's loopback: "localhost",
 * an IPv4 address in 127.0.0.0/8 or [::1], the whole host and nothing more
 * ("localhost.example.com" and "127.0.0.1.example.com" are anyone's). */
static int loopback_host(const char *h, size_t n)
{
    const char *colon = h[0] == '[' ? memchr(h, ']', n) : memchr(h, ':', n);
    size_t hl = colon == NULL ? n : (size_t)(colon - h) + (h[0] == '[');
    if (hl < n && h[hl] != ':')
        return 0;
    for (size_t i = hl + 1; i < n; i++)
        if (h[i] < '0' || h[i] > '9')
            return 0;
    char host[64];
    if (hl == 0 || hl >= sizeof(host))
        return 0;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct in_addr a4;
    if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* https://HOST[:PORT] (http:// only for loopback hosts, for tests and
 * sidecars): discovery documents put the endpoints under it. */
static int check_url(const gh_yaml_doc_t *doc, const gh_yaml_node_t *v, const char *u)
{
    size_t skip = strncmp(u, "https://", 8) == 0 ? 8 : strncmp(u, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0)
        return gh_yaml_error(doc, v, "issuer must be an https:// URL (RFC 8414 section 2)");
    const char *h = u + skip;
    size_t n = strlen(h);
    if (n > 0 && h[n - 1] == '/')
        n--;
    if (n == 0 || memchr(h, '/', n) != NULL || strpbrk(h, "?#@ ") != NULL)
        return gh_yaml_error(doc, v,
                             "issuer is a scheme and a host (and port) only: no path, query, "
                             "fragment or user information");
    if (skip == 7 && !loopback_host(h, n))
        return gh_yaml_error(doc, v,
                             "issuer is http:// on a host that is not loopback: tokens and "
                             "client secrets would cross the network in the clear");
    return 0;
}

static int opt_secs(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, const char *key,
                    uint64_t min_s, uint64_t max_ms, uint64_t *out_s)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(n, key);
    uint64_t ms;
    int rc;
    if (v == NULL)
        return 0;
    if ((rc = gh_yaml_duration_max(doc, v, key, max_ms, &ms)) != 0)
        return rc;
    if (ms % 1000 != 0 || ms / 1000 < min_s)
        return gh_yaml_error(doc, v, "'%s' is whole seconds, at least %llus", key,
                             (unsigned long long)min_s);
    *out_s = ms / 1000;
    return 0;
}

static int parse_into(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_issuer_conf_t *is)
{
    static const char *const keys[] = {"issuer",
                                       "token_ttl",
                                       "alg",
                                       "rsa_bits",
                                       "default_audience",
                                       "jwks_max_age",
                                       "publish_lead",
                                       "leeway",
                                       "assertion_lifetime",
                                       "failed_auth_limit",
                                       "introspectors",
                                       "revocation_poll",
                                       "replay_capacity",
                                       NULL};
    const gh_yaml_node_t *v;
    uint64_t u;
    int rc;
    is->token_ttl = 3600;
    is->alg = GH_JWT_ES256;
    is->rsa_bits = 2048;
    is->jwks_max_age = 300;
    is->publish_lead = 360;
    is->leeway = 60;
    is->assertion_lifetime = 3600; /* authlib's default lifetime, Okta's bound */
    is->failed_auth_limit = 10;
    is->revocation_poll_ms = 5000;
    is->replay_capacity = 65536;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'issuer'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'issuer'")) != 0 ||
        (rc = gh_yaml_require(doc, n, "issuer", "'issuer'", &v)) != 0 ||
        (rc = gh_config_str(doc, v, "issuer", &is->url)) != 0 ||
        (rc = check_url(doc, v, is->url)) != 0)
        return rc;
    size_t ul = strlen(is->url);
    if (is->url[ul - 1] == '/')
        is->url[ul - 1] = '\0'; /* "iss" is written without it */
    if ((rc = opt_secs(doc, n, "token_ttl", 60, DAY_MS, &is->token_ttl)) != 0 ||
        (rc = opt_secs(doc, n, "jwks_max_age", 0, DAY_MS, &is->jwks_max_age)) != 0 ||
        (rc = opt_secs(doc, n, "publish_lead", 0, 7 * DAY_MS, &is->publish_lead)) != 0 ||
        (rc = opt_secs(doc, n, "leeway", 0, 3600 * 1000, &is->leeway)) != 0 ||
        (rc = opt_secs(doc, n, "assertion_lifetime", 10, 3600 * 1000, &is->assertion_lifetime)) !=
            0)
        return rc;
    if (is->publish_lead < is->jwks_max_age)
        return gh_yaml_error(doc, n,
                             "publish_lead (%llus) is shorter than jwks_max_age (%llus): a "
                             "verifier could meet a new key's tokens before it fetched the key",
                             (unsigned long long)is->publish_lead,
                             (unsigned long long)is->jwks_max_age);
    if ((v = gh_yaml_map_get(n, "alg")) != NULL) {
        const char *a;
        if ((rc = gh_yaml_str(doc, v, "alg", &a)) != 0)
            return rc;
        if (strcmp(a, "ES256") == 0)
            is->alg = GH_JWT_ES256;
        else if (strcmp(a, "RS256") == 0)
            is->alg = GH_JWT_RS256;
        else if (strcmp(a, "EdDSA") == 0)
            is->alg = GH_JWT_EDDSA;
        else
            return gh_yaml_error(doc, v, "alg is ES256 (the default), RS256 or EdDSA");
    }
    if ((v = gh_yaml_map_get(n, "rsa_bits")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "rsa_bits", 2048, 4096, &u)) != 0)
            return rc;
        if (u != 2048 && u != 3072 && u != 4096)
            return gh_yaml_error(doc, v, "rsa_bits is 2048, 3072 or 4096");
        is->rsa_bits = (int)u;
    }
    if ((v = gh_yaml_map_get(n, "default_audience")) != NULL &&
        (rc = gh_config_str(doc, v, "default_audience", &is->default_audience)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "failed_auth_limit")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "failed_auth_limit", 1, 100000, &u)) != 0)
            return rc;
        is->failed_auth_limit = (uint32_t)u;
    }
    if ((v = gh_yaml_map_get(n, "introspectors")) != NULL) {
        if ((rc = gh_config_str_list(doc, v, "introspectors", &is->introspectors,
                                     &is->num_introspectors)) != 0)
            return rc;
        for (size_t i = 0; i < is->num_introspectors; i++)
            if (!gh_client_id_valid(is->introspectors[i]))
                return gh_yaml_error(doc, v,
                                     "introspectors: '%s' is not a client id (ghc_ and 16 of "
                                     "a-z2-7)",
                                     is->introspectors[i]);
    }
    if ((v = gh_yaml_map_get(n, "revocation_poll")) != NULL &&
        (rc = gh_yaml_duration_max(doc, v, "revocation_poll", 60000, &is->revocation_poll_ms)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "replay_capacity")) != NULL) {
        if ((rc = gh_yaml_uint(doc, v, "replay_capacity", 1024, 16u << 20, &u)) != 0)
            return rc;
        is->replay_capacity = (uint32_t)u;
    }
    return 0;
}

/* RFC 6749 section 2.3.1 keeps credentials out of the request URI, but a
 * client may put them there all the same (the endpoints ignore them): the
 * access log must not write them. The issuer's credential-bearing
 * parameters join access_log.secret_query (parsed before this section). */
static int mask_credentials(const gh_yaml_doc_t *doc, gh_config_t *cfg)
{
    static const char *const names[] = {"client_secret", "client_assertion", "token"};
    gh_access_log_conf_t *l = &cfg->access_log;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        int have = 0;
        for (size_t j = 0; j < l->num_secret_query; j++)
            have |= strcmp(l->secret_query[j], names[k]) == 0;
        if (have)
            continue;
        char **v = realloc(l->secret_query, (l->num_secret_query + 2) * sizeof(char *));
        if (v == NULL)
            return gh_yaml_oom(doc);
        l->secret_query = v;
        if ((v[l->num_secret_query] = strdup(names[k])) == NULL)
            return gh_yaml_oom(doc);
        v[++l->num_secret_query] = NULL;
    }
    return 0;
}

int gh_config_parse_issuer(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_config_t *cfg)
{
    if (n == NULL)
        return 0;
    gh_issuer_conf_t *is = calloc(1, sizeof(*is));
    if (is == NULL)
        return gh_yaml_oom(doc);
    int rc = parse_into(doc, n, is);
    if (rc != 0) {
        gh_config_free_issuer(is);
        return rc;
    }
    cfg->issuer = is;
    return mask_credentials(doc, cfg);
}
