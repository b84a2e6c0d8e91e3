/*
 * A cluster's `tls` mapping (docs/tls.md) and the OpenSSL client context
 * built from it at load time:
 *
 *   tls: { sni: NAME, ca_file: PATH, verify: true, insecure_skip_verify: false,
 *          min_version: "1.2" | "1.3", cert_file: PATH, key_file: PATH }
 *
 * Files are read here, once, on the main thread: a missing or unreadable
 * certificate is a config error at its key's file:line:col, never a
 * surprise at the first request. The context (SSL_CTX) is shared by every
 * worker; OpenSSL makes SSL_new on a shared context thread-safe. Sessions
 * are cached by the transport itself (per worker, per endpoint), not in the
 * context: NO_INTERNAL_STORE keeps the context free of a locked cache.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <gatehouse/config.h>
#include <gatehouse/log.h>
#include <gatehouse/yaml.h>

#include "config/sections.h"

void gh_config_cluster_tls_free(gh_cluster_tls_t *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls->sni);
    free(tls->ca_file);
    free(tls->cert_file);
    free(tls->key_file);
    free(tls);
}

/* The last OpenSSL error, as a short text ("no such file", "key values
 * mismatch"), and the queue cleared. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (r == NULL && e != 0) {
        ERR_error_string_n(e, buf, len);
        r = buf;
    }
    ERR_clear_error();
    return r != NULL ? r : "unknown error";
}

/* An SNI host name (RFC 6066 section 3: a DNS name, never an address
 * literal): letters, digits, '-' and '.', no empty label, at most 253. */
static int sni_is_valid(const char *s)
{
    size_t n = strlen(s), label = 0;
    int alpha = 0;
    if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (++label > 63)
            return 0;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
            alpha = 1;
        else if (!((ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return 0;
    }
    /* All digits and dots: an IPv4 address, which SNI cannot carry. */
    return alpha || strchr(s, '-') != NULL || strchr(s, '_') != NULL;
}

static int opt_path(const gh_yaml_doc_t *doc, const gh_yaml_node_t *map, const char *key,
                    char **out)
{
    const gh_yaml_node_t *v = gh_yaml_map_get(map, key);
    if (v == NULL)
        return 0;
    return gh_config_str(doc, v, key, out);
}

static int build_ctx(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_cluster_tls_t *t)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    char buf[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return gh_yaml_oom(doc);
    t->ctx = ctx;
    if (SSL_CTX_set_min_proto_version(ctx, t->min_version) != 1)
        return gh_yaml_error(doc, n, "tls: cannot set the minimum version: %s",
                             ssl_reason(buf, sizeof(buf)));
    /* A server's renegotiation request is refused (an HTTP/1.1 client has
     * no use for it, and it would need writes in the middle of reads);
     * buffers of idle connections are given back. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    /* HTTP/1.1 only: offering it by ALPN keeps a server that speaks h2
     * from choosing it. (0 is success for this one call.) */
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        return gh_yaml_oom(doc);

    const gh_yaml_node_t *v;
    if (t->ca_file != NULL) {
        v = gh_yaml_map_get(n, "ca_file");
        if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1)
            return gh_yaml_error(doc, v, "tls.ca_file '%s': cannot load certificates: %s",
                                 t->ca_file, ssl_reason(buf, sizeof(buf)));
    } else if (t->verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return gh_yaml_error(doc, n, "tls: cannot load the system's trusted certificates: %s",
                             ssl_reason(buf, sizeof(buf)));
    }
    SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);

    if (t->cert_file != NULL) {
        v = gh_yaml_map_get(n, "cert_file");
        if (SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1)
            return gh_yaml_error(doc, v, "tls.cert_file '%s': cannot load the certificate: %s",
                                 t->cert_file, ssl_reason(buf, sizeof(buf)));
        v = gh_yaml_map_get(n, "key_file");
        if (SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1)
            return gh_yaml_error(doc, v, "tls.key_file '%s': cannot load the key: %s", t->key_file,
                                 ssl_reason(buf, sizeof(buf)));
        if (SSL_CTX_check_private_key(ctx) != 1)
            return gh_yaml_error(doc, v,
                                 "tls.key_file '%s' is not the key of tls.cert_file '%s': %s",
                                 t->key_file, t->cert_file, ssl_reason(buf, sizeof(buf)));
    }
    return 0;
}

static int parse_tls(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n, gh_cluster_tls_t *t)
{
    static const char *const keys[] = {
        "sni",         "ca_file",   "verify",   "insecure_skip_verify",
        "min_version", "cert_file", "key_file", NULL};
    const gh_yaml_node_t *v;
    const char *s;
    int rc, skip = 0;

    t->verify = 1;
    t->min_version = TLS1_2_VERSION;
    if ((rc = gh_yaml_expect(doc, n, GH_YAML_MAP, "'tls'")) != 0 ||
        (rc = gh_yaml_check_keys(doc, n, keys, "'tls'")) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "sni")) != NULL) {
        if ((rc = gh_config_str(doc, v, "sni", &t->sni)) != 0)
            return rc;
        if (!sni_is_valid(t->sni))
            return gh_yaml_error(doc, v, "tls.sni '%s' is not a host name (no port, no address)",
                                 t->sni);
        for (char *p = t->sni; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    if ((v = gh_yaml_map_get(n, "verify")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "verify", &t->verify)) != 0)
        return rc;
    if ((v = gh_yaml_map_get(n, "insecure_skip_verify")) != NULL &&
        (rc = gh_yaml_bool(doc, v, "insecure_skip_verify", &skip)) != 0)
        return rc;
    /* Turning verification off makes TLS protect against nobody who can
     * sit in the path: it takes two keys that say so. */
    if (!t->verify && !skip)
        return gh_yaml_error(doc, gh_yaml_map_get(n, "verify"),
                             "tls.verify: false turns off certificate and host name checks: it "
                             "needs insecure_skip_verify: true as well");
    if (skip && t->verify)
        return gh_yaml_error(doc, v, "tls.insecure_skip_verify: true goes only with verify: false");
    if ((v = gh_yaml_map_get(n, "min_version")) != NULL) {
        if ((rc = gh_yaml_str(doc, v, "min_version", &s)) != 0)
            return rc;
        if (strcmp(s, "1.2") == 0)
            t->min_version = TLS1_2_VERSION;
        else if (strcmp(s, "1.3") == 0)
            t->min_version = TLS1_3_VERSION;
        else
            return gh_yaml_error(doc, v, "tls.min_version must be \"1.2\" or \"1.3\"");
    }
    if ((rc = opt_path(doc, n, "ca_file", &t->ca_file)) != 0 ||
        (rc = opt_path(doc, n, "cert_file", &t->cert_file)) != 0 ||
        (rc = opt_path(doc, n, "key_file", &t->key_file)) != 0)
        return rc;
    if ((t->cert_file == NULL) != (t->key_file == NULL))
        return gh_yaml_error(doc, n, "tls needs both cert_file and key_file, or neither");
    if ((rc = build_ctx(doc, n, t)) != 0)
        return rc;
    if (!t->verify)
        GH_LOG(GH_LOG_WARN, "config",
               "%s: a cluster's tls has verify: false: its upstreams are not authenticated",
               doc->name);
    return 0;
}

int gh_config_parse_cluster_tls(const gh_yaml_doc_t *doc, const gh_yaml_node_t *n,
                                gh_cluster_tls_t **out)
{
    gh_cluster_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return gh_yaml_oom(doc);
    int rc = parse_tls(doc, n, t);
    if (rc != 0) {
        ERR_clear_error();
        gh_config_cluster_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int gh_config_cluster_tls_system(const gh_yaml_doc_t *doc, const gh_yaml_node_t *at,
                                 gh_cluster_tls_t **out)
{
    gh_cluster_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return gh_yaml_oom(doc);
    t->verify = 1;
    t->min_version = TLS1_2_VERSION;
    int rc = build_ctx(doc, at, t);
    if (rc != 0) {
        ERR_clear_error();
        gh_config_cluster_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
