/*
 * The manifest of the issuer's keys (keys.json): its strict parser, its
 * writer and the rules of the timeline; the settings; RFC 7638 thumbprints.
 * No I/O here.
 *
 * The parser is strict because the manifest decides which keys verifiers
 * trust: a hand edit that a lenient reader would half understand (a time
 * as a string, a misspelt member) must stop the load, and the server keeps
 * the keys it has.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <gatehouse/store.h>

#include "issuer/keys_internal.h"
#include "jose/b64url.h"

/* 9999-12-31T23:59:59Z, as JWT dates (GH_JWT_MAX_DATE). */
#define MAX_TIME 253402300799LL

void gh_issuer_seterr(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- settings ---- */

int gh_issuer_keys_conf_init(gh_issuer_keys_conf_t *c, const char *state_dir)
{
    memset(c, 0, sizeof(*c));
    if (state_dir == NULL)
        state_dir = GH_STORE_DEFAULT_STATE_DIR;
    size_t n = strlen(state_dir);
    while (n > 1 && state_dir[n - 1] == '/') /* "state/" and "state" are one directory */
        n--;
    c->dir = malloc(n + sizeof("/" GH_ISSUER_KEYS_SUBDIR));
    if (c->dir == NULL)
        return -ENOMEM;
    memcpy(c->dir, state_dir, n);
    memcpy(c->dir + n, "/" GH_ISSUER_KEYS_SUBDIR, sizeof("/" GH_ISSUER_KEYS_SUBDIR));
    c->alg = GH_JWT_ES256;
    c->rsa_bits = 2048;
    c->jwks_max_age = GH_ISSUER_DEFAULT_JWKS_MAX_AGE;
    c->publish_lead = GH_ISSUER_DEFAULT_PUBLISH_LEAD;
    c->max_token_ttl = GH_ISSUER_DEFAULT_MAX_TOKEN_TTL;
    c->leeway = GH_ISSUER_DEFAULT_LEEWAY;
    return 0;
}

void gh_issuer_keys_conf_dispose(gh_issuer_keys_conf_t *c)
{
    free(c->dir);
    c->dir = NULL;
}

gh_jwt_alg_t gh_issuer_keys_alg(const char *name)
{
    if (name == NULL)
        return GH_JWT_ALG_UNKNOWN;
    if (strcmp(name, "ES256") == 0)
        return GH_JWT_ES256;
    if (strcmp(name, "RS256") == 0)
        return GH_JWT_RS256;
    if (strcmp(name, "EdDSA") == 0)
        return GH_JWT_EDDSA;
    return GH_JWT_ALG_UNKNOWN;
}

static int alg_supported(gh_jwt_alg_t a)
{
    return a == GH_JWT_ES256 || a == GH_JWT_RS256 || a == GH_JWT_EDDSA;
}

int gh_issuer_keys_conf_check(const gh_issuer_keys_conf_t *c, char *err, size_t cap)
{
    if (c->dir == NULL || c->dir[0] == '\0')
        gh_issuer_seterr(err, cap, "the key directory is not set");
    else if (!alg_supported(c->alg))
        gh_issuer_seterr(err, cap, "the key algorithm must be ES256, RS256 or EdDSA");
    else if (c->alg == GH_JWT_RS256 && c->rsa_bits != 2048 && c->rsa_bits != 3072 &&
             c->rsa_bits != 4096)
        gh_issuer_seterr(err, cap, "RSA keys are 2048, 3072 or 4096 bits, not %d", c->rsa_bits);
    else if (c->jwks_max_age < 0 || c->jwks_max_age > GH_ISSUER_MAX_LEAD)
        gh_issuer_seterr(err, cap, "the JWKS max-age must be from 0 to %d seconds",
                         GH_ISSUER_MAX_LEAD);
    else if (c->publish_lead < 0 || c->publish_lead > GH_ISSUER_MAX_LEAD)
        gh_issuer_seterr(err, cap, "the publish lead must be from 0 to %d seconds",
                         GH_ISSUER_MAX_LEAD);
    else if (c->publish_lead < c->jwks_max_age)
        gh_issuer_seterr(err, cap,
                         "the publish lead (%llds) is shorter than the JWKS max-age (%llds): a "
                         "verifier that cached the JWKS just before a rotation would refuse the "
                         "new key's tokens",
                         (long long)c->publish_lead, (long long)c->jwks_max_age);
    else if (c->max_token_ttl < 1 || c->max_token_ttl > GH_ISSUER_MAX_TTL)
        gh_issuer_seterr(err, cap, "the longest token lifetime must be from 1 to %d seconds",
                         GH_ISSUER_MAX_TTL);
    else if (c->leeway < 0 || c->leeway > GH_ISSUER_MAX_LEEWAY)
        gh_issuer_seterr(err, cap, "the leeway must be from 0 to %d seconds", GH_ISSUER_MAX_LEEWAY);
    else
        return 0;
    return -EINVAL;
}

/* ---- a key's state ---- */

gh_issuer_key_state_t gh_issuer_key_state(const gh_issuer_key_info_t *k, int64_t now)
{
    if (k->retire_at != 0 && now >= k->retire_at)
        return GH_ISSUER_KEY_RETIRED;
    if (now < k->publish_at)
        return GH_ISSUER_KEY_PENDING;
    if (now < k->sign_from)
        return GH_ISSUER_KEY_PUBLISHED;
    if (k->sign_until == 0 || now < k->sign_until)
        return GH_ISSUER_KEY_SIGNING;
    return GH_ISSUER_KEY_RETIRING;
}

const char *gh_issuer_key_state_name(gh_issuer_key_state_t s)
{
    static const char *const names[] = {"pending", "published", "signing", "retiring", "retired"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- thumbprints ---- */

int gh_issuer_kid_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return 0;
        if (n >= GH_ISSUER_KID_LEN)
            return 0;
    }
    return n == GH_ISSUER_KID_LEN;
}

/* A member that goes into the thumbprint's input verbatim: it must be a
 * string that needs no JSON escaping (base64url values and the names of
 * curves and key types), else the input would not be the canonical form. */
static const char *plain_member(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    if (s == NULL || s[0] == '\0')
        return NULL;
    for (const char *p = s; *p; p++)
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return NULL;
    return s;
}

int gh_issuer_jwk_thumbprint(json_t *jwk, char *out)
{
    /* RFC 7638 section 3.2: the required members only, in lexicographic
     * order, no whitespace. */
    const char *kty = plain_member(jwk, "kty");
    char *in = NULL;
    int n = -1;
    if (kty == NULL)
        return -EINVAL;
    if (strcmp(kty, "RSA") == 0) {
        const char *e = plain_member(jwk, "e"), *m = plain_member(jwk, "n");
        if (e && m)
            n = asprintf(&in, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, m);
    } else if (strcmp(kty, "EC") == 0) {
        const char *crv = plain_member(jwk, "crv"), *x = plain_member(jwk, "x"),
                   *y = plain_member(jwk, "y");
        if (crv && x && y)
            n = asprintf(&in, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x,
                         y);
    } else if (strcmp(kty, "OKP") == 0) {
        const char *crv = plain_member(jwk, "crv"), *x = plain_member(jwk, "x");
        if (crv && x)
            n = asprintf(&in, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}", crv, x);
    }
    if (n < 0)
        return -EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
    free(in);
    if (!ok)
        return -EINVAL;
    gh_b64url_encode(md, mdlen, out);
    return 0;
}

json_t *gh_issuer_public_jwk(const gh_jwt_signing_key_t *key, const char *kid, gh_jwt_alg_t alg,
                             char *kid_out, char *err, size_t cap)
{
    char *text = gh_jwt_signing_key_jwks(key, kid, alg, err, cap);
    if (text == NULL)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_t *jwk = json_incref(json_array_get(json_object_get(doc, "keys"), 0));
    json_decref(doc);
    if (jwk == NULL) {
        gh_issuer_seterr(err, cap, "out of memory");
        return NULL;
    }
    if (kid_out != NULL && gh_issuer_jwk_thumbprint(jwk, kid_out) != 0) {
        gh_issuer_seterr(err, cap, "cannot compute the key's thumbprint");
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

int gh_issuer_key_fits(const gh_jwt_signing_key_t *key, gh_jwt_alg_t alg)
{
    EVP_PKEY *p = gh_jwt_signing_key_pkey(key);
    if (p == NULL)
        return 0;
    switch (alg) {
    case GH_JWT_RS256:
        return EVP_PKEY_is_a(p, "RSA") && EVP_PKEY_get_bits(p) >= GH_JWKS_MIN_RSA_BITS;
    case GH_JWT_ES256: {
        char group[64];
        return EVP_PKEY_is_a(p, "EC") &&
               EVP_PKEY_get_utf8_string_param(p, "group", group, sizeof(group), NULL) &&
               (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
    }
    case GH_JWT_EDDSA:
        return EVP_PKEY_is_a(p, "ED25519");
    default:
        return 0;
    }
}

/* ---- the manifest ---- */

static int get_time(json_t *o, const char *name, int64_t lo, int64_t hi, int64_t *out,
                    const char *where, char *err, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL) {
        gh_issuer_seterr(err, cap, "%s: %s is missing", where, name);
        return -EINVAL;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        gh_issuer_seterr(err, cap, "%s: %s must be an integer from %lld to %lld", where, name,
                         (long long)lo, (long long)hi);
        return -EINVAL;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int only_members(json_t *o, const char *const *known, const char *where, char *err,
                        size_t cap)
{
    const char *name;
    json_t *v;
    json_object_foreach(o, name, v)
    {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], name) != 0)
            i++;
        if (known[i] == NULL) {
            char shown[48];
            size_t n = strlen(name);
            snprintf(shown, sizeof(shown), "%.*s%s", (int)(n > 32 ? 32 : n), name,
                     n > 32 ? "..." : "");
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                    *p = '?';
            gh_issuer_seterr(err, cap, "%s: unknown member '%s'", where, shown);
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_key(json_t *o, size_t i, gh_issuer_key_info_t *k, char *err, size_t cap)
{
    static const char *const known[] = {"kid",       "alg",        "created_at", "publish_at",
                                        "sign_from", "sign_until", "retire_at",  NULL};
    char where[32];
    snprintf(where, sizeof(where), "keys[%zu]", i);
    if (!json_is_object(o)) {
        gh_issuer_seterr(err, cap, "%s must be an object", where);
        return -EINVAL;
    }
    int rc = only_members(o, known, where, err, cap);
    if (rc != 0)
        return rc;
    const char *kid = json_string_value(json_object_get(o, "kid"));
    if (kid == NULL || !gh_issuer_kid_valid(kid)) {
        gh_issuer_seterr(err, cap, "%s: kid must be a key thumbprint (43 base64url characters)",
                         where);
        return -EINVAL;
    }
    memcpy(k->kid, kid, GH_ISSUER_KID_LEN + 1);
    k->alg = gh_issuer_keys_alg(json_string_value(json_object_get(o, "alg")));
    if (k->alg == GH_JWT_ALG_UNKNOWN) {
        gh_issuer_seterr(err, cap, "%s: alg must be ES256, RS256 or EdDSA", where);
        return -EINVAL;
    }
    if ((rc = get_time(o, "created_at", 0, MAX_TIME, &k->created_at, where, err, cap)) != 0 ||
        (rc = get_time(o, "publish_at", 0, MAX_TIME, &k->publish_at, where, err, cap)) != 0 ||
        (rc = get_time(o, "sign_from", 0, MAX_TIME, &k->sign_from, where, err, cap)) != 0 ||
        (rc = get_time(o, "sign_until", 0, MAX_TIME, &k->sign_until, where, err, cap)) != 0 ||
        (rc = get_time(o, "retire_at", 0, MAX_TIME, &k->retire_at, where, err, cap)) != 0)
        return rc;
    return 0;
}

int gh_issuer_manifest_check(const gh_issuer_manifest_t *m, char *err, size_t cap)
{
    size_t open = 0;
    if (m->n == 0 || m->n > GH_ISSUER_KEYS_MAX) {
        gh_issuer_seterr(err, cap, "the manifest must list from 1 to %d keys", GH_ISSUER_KEYS_MAX);
        return -EINVAL;
    }
    if (m->max_token_ttl < 1 || m->max_token_ttl > GH_ISSUER_MAX_TTL || m->leeway < 0 ||
        m->leeway > GH_ISSUER_MAX_LEEWAY) {
        gh_issuer_seterr(err, cap, "max_token_ttl or leeway out of range");
        return -EINVAL;
    }
    for (size_t i = 0; i < m->n; i++) {
        const gh_issuer_key_info_t *k = &m->keys[i];
        const char *why = NULL;
        if (k->publish_at > k->sign_from)
            why = "it would sign before it is published (sign_from < publish_at)";
        else if (k->sign_until != 0 && k->sign_until < k->sign_from)
            why = "sign_until is before sign_from";
        else if ((k->sign_until == 0) != (k->retire_at == 0))
            why = "retire_at must be set exactly when sign_until is";
        else if (k->retire_at != 0 && k->retire_at < k->sign_until)
            why = "it would leave the JWKS while it signs (retire_at < sign_until)";
        if (why != NULL) {
            gh_issuer_seterr(err, cap, "keys[%zu] (kid %.8s...): %s", i, k->kid, why);
            return -EINVAL;
        }
        open += k->sign_until == 0;
        for (size_t j = 0; j < i; j++) {
            const gh_issuer_key_info_t *o = &m->keys[j];
            if (strcmp(o->kid, k->kid) == 0) {
                gh_issuer_seterr(err, cap, "keys[%zu] and keys[%zu] have the same kid", j, i);
                return -EINVAL;
            }
            /* Signing windows [sign_from, sign_until), open-ended when 0;
             * an empty one (a key rotated away before it signed) meets
             * nothing. */
            int k_empty = k->sign_until != 0 && k->sign_until == k->sign_from;
            int o_empty = o->sign_until != 0 && o->sign_until == o->sign_from;
            int k_before = k->sign_until != 0 && k->sign_until <= o->sign_from;
            int o_before = o->sign_until != 0 && o->sign_until <= k->sign_from;
            if (!k_empty && !o_empty && !k_before && !o_before) {
                gh_issuer_seterr(err, cap,
                                 "keys[%zu] and keys[%zu] would both sign at the same time", j, i);
                return -EINVAL;
            }
        }
    }
    if (open != 1) {
        gh_issuer_seterr(err, cap,
                         "exactly one key must be open (sign_until 0: the newest), not %zu", open);
        return -EINVAL;
    }
    return 0;
}

int gh_issuer_manifest_parse(const char *text, size_t len, gh_issuer_manifest_t *out, char *err,
                             size_t cap)
{
    static const char *const known[] = {"version", "max_token_ttl", "leeway", "keys", NULL};
    json_error_t je;
    int rc = -EINVAL;
    memset(out, 0, sizeof(*out));
    /* jansson reads past a NUL after a number or a literal (see
     * admin/apikeys.c): refused first. */
    if (memchr(text, '\0', len) != NULL) {
        gh_issuer_seterr(err, cap, "the manifest holds a NUL byte");
        return -EINVAL;
    }
    if (len > GH_ISSUER_MANIFEST_MAX) {
        gh_issuer_seterr(err, cap, "the manifest is larger than %d bytes", GH_ISSUER_MANIFEST_MAX);
        return -EINVAL;
    }
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        gh_issuer_seterr(err, cap, "the manifest is not JSON: %s (line %d, column %d)", je.text,
                         je.line, je.column);
        return json_error_code(&je) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
    }
    if (!json_is_object(doc)) {
        gh_issuer_seterr(err, cap, "the manifest must be a JSON object");
        goto out;
    }
    if ((rc = only_members(doc, known, "the manifest", err, cap)) != 0)
        goto out;
    rc = -EINVAL;
    json_t *v = json_object_get(doc, "version");
    if (!json_is_integer(v) || json_integer_value(v) != GH_ISSUER_MANIFEST_VERSION) {
        gh_issuer_seterr(err, cap, "the manifest's version must be %d", GH_ISSUER_MANIFEST_VERSION);
        goto out;
    }
    if ((rc = get_time(doc, "max_token_ttl", 1, GH_ISSUER_MAX_TTL, &out->max_token_ttl,
                       "the manifest", err, cap)) != 0 ||
        (rc = get_time(doc, "leeway", 0, GH_ISSUER_MAX_LEEWAY, &out->leeway, "the manifest", err,
                       cap)) != 0)
        goto out;
    rc = -EINVAL;
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0 ||
        json_array_size(keys) > GH_ISSUER_KEYS_MAX) {
        gh_issuer_seterr(err, cap, "keys must be an array of 1 to %d keys", GH_ISSUER_KEYS_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(keys); i++) {
        if ((rc = parse_key(json_array_get(keys, i), i, &out->keys[i], err, cap)) != 0)
            goto out;
        out->n++;
    }
    rc = gh_issuer_manifest_check(out, err, cap);
out:
    json_decref(doc);
    return rc;
}

char *gh_issuer_manifest_dump(const gh_issuer_manifest_t *m)
{
    json_t *keys = json_array();
    json_t *doc =
        json_pack("{s:i,s:I,s:I,s:o}", "version", GH_ISSUER_MANIFEST_VERSION, "max_token_ttl",
                  (json_int_t)m->max_token_ttl, "leeway", (json_int_t)m->leeway, "keys", keys);
    char *text = NULL;
    if (doc == NULL)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        const gh_issuer_key_info_t *k = &m->keys[i];
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "kid", k->kid, "alg",
                              gh_jwt_alg_name(k->alg), "created_at", (json_int_t)k->created_at,
                              "publish_at", (json_int_t)k->publish_at, "sign_from",
                              (json_int_t)k->sign_from, "sign_until", (json_int_t)k->sign_until,
                              "retire_at", (json_int_t)k->retire_at);
        if (o == NULL || json_array_append_new(keys, o) != 0)
            goto out;
    }
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        size_t n = strlen(s);
        text = realloc(s, n + 2);
        if (text == NULL) {
            free(s);
        } else {
            text[n] = '\n';
            text[n + 1] = '\0';
        }
    }
out:
    json_decref(doc);
    return text;
}

/* ---- for people: the CLI and the admin API ---- */

static json_t *key_json(const gh_issuer_key_info_t *k, int64_t now)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "kid", k->kid, "alg",
                     gh_jwt_alg_name(k->alg), "state",
                     gh_issuer_key_state_name(gh_issuer_key_state(k, now)), "created_at",
                     (json_int_t)k->created_at, "publish_at", (json_int_t)k->publish_at,
                     "sign_from", (json_int_t)k->sign_from, "sign_until", (json_int_t)k->sign_until,
                     "retire_at", (json_int_t)k->retire_at);
}

json_t *gh_issuer_keys_json(const gh_issuer_manifest_t *m, int64_t now)
{
    json_t *keys = json_array();
    json_t *doc = json_pack("{s:I,s:I,s:o}", "max_token_ttl", (json_int_t)m->max_token_ttl,
                            "leeway", (json_int_t)m->leeway, "keys", keys);
    for (size_t i = 0; doc != NULL && i < m->n; i++) {
        if (json_array_append_new(keys, key_json(&m->keys[i], now)) != 0) {
            json_decref(doc);
            return NULL;
        }
    }
    return doc;
}

json_t *gh_issuer_rotate_json(const gh_issuer_rotate_result_t *r, int64_t now)
{
    return json_pack("{s:o,s:o,s:I}", "added", key_json(&r->added, now), "previous",
                     r->has_previous ? key_json(&r->previous, now) : json_null(), "pruned",
                     (json_int_t)r->pruned);
}
