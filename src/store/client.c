/*
 * OAuth client formats, hashing and registration checks
 * (gatehouse/client.h). Why SHA-256 and not a password hash: the header
 * says; in short, a secret of 256 random bits needs no stretching.
 */
#include <gatehouse/client.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <gatehouse/apikey.h>
#include <gatehouse/jwt.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int is_b32(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

static int is_b62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

void gh_client_dispose(gh_client_t *c)
{
    if (c == NULL)
        return;
    free(c->name);
    free(c->scopes);
    free(c->audiences);
    free(c->jwks);
    c->name = c->scopes = c->audiences = c->jwks = NULL;
    OPENSSL_cleanse(c->secret_hash, sizeof(c->secret_hash));
    OPENSSL_cleanse(c->prev_secret_hash, sizeof(c->prev_secret_hash));
}

void gh_client_list_free(gh_client_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gh_client_dispose(&c[i]);
    free(c);
}

int gh_client_id_valid_n(const char *id, size_t len)
{
    if (id == NULL || len != GH_CLIENT_ID_LEN ||
        memcmp(id, GH_CLIENT_ID_PREFIX, GH_CLIENT_ID_PREFIX_LEN) != 0)
        return 0;
    for (size_t i = GH_CLIENT_ID_PREFIX_LEN; i < GH_CLIENT_ID_LEN; i++)
        if (!is_b32(id[i]))
            return 0;
    return 1;
}

int gh_client_id_valid(const char *id)
{
    if (id == NULL)
        return 0;
    /* strnlen: an over-long string is not read past what could match */
    return gh_client_id_valid_n(id, strnlen(id, GH_CLIENT_ID_LEN + 1));
}

int gh_client_secret_valid_n(const char *s, size_t len)
{
    if (s == NULL || len != GH_CLIENT_SECRET_LEN ||
        memcmp(s, GH_CLIENT_SECRET_PREFIX, GH_CLIENT_SECRET_PREFIX_LEN) != 0)
        return 0;
    for (size_t i = GH_CLIENT_SECRET_PREFIX_LEN; i < GH_CLIENT_SECRET_LEN; i++)
        if (!is_b62(s[i]))
            return 0;
    return 1;
}

int gh_client_id_generate(char out[GH_CLIENT_ID_LEN + 1])
{
    unsigned char rnd[10]; /* 80 bits: 16 base32 characters */
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return -EIO;
    memcpy(out, GH_CLIENT_ID_PREFIX, GH_CLIENT_ID_PREFIX_LEN);
    char *p = out + GH_CLIENT_ID_PREFIX_LEN;
    for (size_t i = 0; i < GH_CLIENT_ID_RAND_LEN; i++) {
        size_t bit = i * 5, byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)rnd[byte] << 8 | (byte + 1 < sizeof(rnd) ? rnd[byte + 1] : 0);
        p[i] = b32[(v >> (11 - shift)) & 31];
    }
    out[GH_CLIENT_ID_LEN] = '\0';
    return 0;
}

int gh_client_secret_generate(char out[GH_CLIENT_SECRET_LEN + 1])
{
    unsigned char rnd[64];
    size_t used = sizeof(rnd);
    memcpy(out, GH_CLIENT_SECRET_PREFIX, GH_CLIENT_SECRET_PREFIX_LEN);
    char *p = out + GH_CLIENT_SECRET_PREFIX_LEN;
    /* Uniform base62 by rejection (a byte below 248 = 4 * 62 maps to byte
     * % 62 without bias): 43 characters carry 256.03 bits. */
    for (size_t i = 0; i < GH_CLIENT_SECRET_RAND_LEN;) {
        if (used == sizeof(rnd)) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                OPENSSL_cleanse(rnd, sizeof(rnd));
                OPENSSL_cleanse(out, GH_CLIENT_SECRET_LEN + 1);
                return -EIO;
            }
            used = 0;
        }
        unsigned char b = rnd[used++];
        if (b < 248)
            p[i++] = b62[b % 62];
    }
    out[GH_CLIENT_SECRET_LEN] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

void gh_client_secret_hash(const char *s, size_t len, uint8_t out[GH_CLIENT_HASH_LEN])
{
    SHA256((const unsigned char *)s, len, out);
}

int gh_client_secret_check_hash(const gh_client_t *c, const uint8_t hash[GH_CLIENT_HASH_LEN],
                                int64_t now)
{
    /* Both comparisons always run, and their results are combined without
     * a branch on the first: which secret matched is not in the timing. */
    int cur = CRYPTO_memcmp(c->secret_hash, hash, GH_CLIENT_HASH_LEN) == 0;
    int prev = CRYPTO_memcmp(c->prev_secret_hash, hash, GH_CLIENT_HASH_LEN) == 0;
    if (!c->has_secret)
        return 0;
    if (cur)
        return 1;
    if (prev && c->prev_valid_until != 0 && now < c->prev_valid_until)
        return 2;
    return 0;
}

int gh_client_secret_check(const gh_client_t *c, const char *s, size_t len, int64_t now)
{
    uint8_t h[GH_CLIENT_HASH_LEN];
    /* Not the form of a secret: hashed all the same, so a malformed
     * secret costs what a wrong one does; it never matches. */
    int form = gh_client_secret_valid_n(s, len);
    gh_client_secret_hash(s ? s : "", s ? len : 0, h);
    int r = gh_client_secret_check_hash(c, h, now);
    OPENSSL_cleanse(h, sizeof(h));
    return form ? r : 0;
}

gh_client_state_t gh_client_state(const gh_client_t *c, int64_t now)
{
    (void)now; /* revoked whatever the time: see gh_apikey_state */
    return c->revoked_at != 0 ? GH_CLIENT_REVOKED : GH_CLIENT_ACTIVE;
}

const char *gh_client_state_name(gh_client_state_t s)
{
    return s == GH_CLIENT_REVOKED ? "revoked" : "active";
}

/* ---- registration checks ---- */

const char *gh_client_check_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return "must not be empty";
    if (n > GH_CLIENT_NAME_MAX)
        return "must be at most 128 bytes";
    if (s[0] == ' ' || s[n - 1] == ' ')
        return "must not start or end with a space";
    /* UTF-8 without control characters, not a spreadsheet formula: the
     * description's rules */
    return gh_apikey_check_description(s);
}

/* One token of a list: NULL when acceptable. */
typedef const char *(*token_check_fn)(const char *t, size_t len);

static const char *scope_refused(const char *t, size_t len)
{
    if (len > GH_CLIENT_SCOPE_MAX)
        return "a scope is longer than 128 characters";
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)t[k];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return "a scope must be printable ASCII without spaces, '\"' or '\\' (RFC 6749 "
                   "section 3.3)";
    }
    return NULL;
}

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const char *audience_refused(const char *t, size_t len)
{
    if (len > GH_CLIENT_AUDIENCE_MAX)
        return "an audience is longer than 256 characters";
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)t[k];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return "an audience must be printable ASCII without spaces, '\"' or '\\'";
        if (c == '#')
            return "an audience must not hold a '#' (a resource URI has no fragment, RFC 8707)";
    }
    const char *colon = memchr(t, ':', len);
    if (colon != NULL) {
        /* RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
        size_t sl = (size_t)(colon - t);
        int ok = sl > 0 && is_alpha((unsigned char)t[0]);
        for (size_t k = 1; ok && k < sl; k++) {
            unsigned char c = (unsigned char)t[k];
            ok = is_alpha(c) || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        }
        if (!ok)
            return "an audience with a ':' must be an absolute URI (scheme:...)";
    }
    return NULL;
}

/* A list separated by spaces and/or commas into "a b c": checked tokens,
 * at most max, none twice. */
static char *list_normalize(const char *in, token_check_fn check, size_t max, const char *too_many,
                            const char *twice, const char **why)
{
    size_t n = in ? strlen(in) : 0;
    char *out = malloc(n + 1);
    size_t o = 0, count = 0;
    if (out == NULL) {
        *why = "out of memory";
        return NULL;
    }
    out[0] = '\0'; /* the items so far, searched for repeats */
    for (size_t i = 0; i < n;) {
        if (in[i] == ',' || in[i] == ' ') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && in[i] != ',' && in[i] != ' ')
            i++;
        size_t len = i - start;
        const char *bad = check(in + start, len);
        if (bad == NULL && ++count > max)
            bad = too_many;
        if (bad == NULL && gh_client_list_has(out, in + start, len))
            bad = twice;
        if (bad != NULL) {
            free(out);
            *why = bad;
            return NULL;
        }
        if (o > 0)
            out[o++] = ' ';
        memcpy(out + o, in + start, len);
        o += len;
        out[o] = '\0';
    }
    out[o] = '\0';
    return out;
}

char *gh_client_scopes_normalize(const char *in, const char **why)
{
    return list_normalize(in, scope_refused, GH_CLIENT_SCOPES_MAX, "more than 64 scopes",
                          "a scope is listed twice", why);
}

char *gh_client_audiences_normalize(const char *in, const char **why)
{
    char *out = list_normalize(in, audience_refused, GH_CLIENT_AUDIENCES_MAX,
                               "more than 32 audiences", "an audience is listed twice", why);
    if (out != NULL && out[0] == '\0') {
        free(out);
        *why = "at least one audience is required (the token's aud)";
        return NULL;
    }
    return out;
}

int gh_client_list_has(const char *set, const char *tok, size_t len)
{
    if (set == NULL || len == 0)
        return 0;
    for (const char *p = set; *p != '\0';) {
        size_t n = strcspn(p, " ");
        if (n == len && memcmp(p, tok, len) == 0)
            return 1;
        p += n;
        while (*p == ' ')
            p++;
    }
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"client_secret_basic", GH_CLIENT_AUTH_SECRET_BASIC},
    {"client_secret_post", GH_CLIENT_AUTH_SECRET_POST},
    {"private_key_jwt", GH_CLIENT_AUTH_PRIVATE_KEY_JWT},
};

int gh_client_auth_parse(const char *in, unsigned *out, const char **why)
{
    *out = 0;
    for (const char *p = in ? in : ""; *p != '\0';) {
        if (*p == ' ' || *p == ',') {
            p++;
            continue;
        }
        size_t n = strcspn(p, " ,");
        unsigned bit = 0;
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
            if (strlen(methods[i].name) == n && memcmp(methods[i].name, p, n) == 0)
                bit = methods[i].bit;
        if (bit == 0) {
            *why = "an authentication method is not one of client_secret_basic, "
                   "client_secret_post, private_key_jwt";
            return -EINVAL;
        }
        if (*out & bit) {
            *why = "an authentication method is listed twice";
            return -EINVAL;
        }
        *out |= bit;
        p += n;
    }
    return 0;
}

unsigned gh_client_auth_default(int has_jwks)
{
    return has_jwks ? GH_CLIENT_AUTH_PRIVATE_KEY_JWT : GH_CLIENT_AUTH_SECRET;
}

char *gh_client_auth_format(unsigned bits, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (!(bits & methods[i].bit))
            continue;
        int w = snprintf(buf + o, cap - o, "%s%s", o ? " " : "", methods[i].name);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
    return buf;
}

/* The parser's messages may quote the document (a member name, a value):
 * the sentence goes to terminals and JSON details, so it is made printable
 * ASCII here. */
static void printable(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}

int gh_client_check_jwks(const char *jwks, size_t len, char *why, size_t cap)
{
    char err[256];
    if (jwks == NULL || len == 0) {
        snprintf(why, cap, "the JWKS is empty");
        return -EINVAL;
    }
    if (len > GH_CLIENT_JWKS_MAX) {
        snprintf(why, cap, "the JWKS is larger than %u bytes", GH_CLIENT_JWKS_MAX);
        return -EINVAL;
    }
    if (memchr(jwks, '\0', len) != NULL) {
        snprintf(why, cap, "the JWKS holds a NUL byte");
        return -EINVAL;
    }
    gh_jwks_opts_t opts = {.allow_symmetric = 0};
    gh_jwks_t *set = gh_jwks_parse(jwks, len, &opts, err, sizeof(err));
    if (set == NULL) {
        snprintf(why, cap, "the JWKS is refused: %s", err);
        printable(why);
        return -EINVAL;
    }
    int rc = 0;
    if (gh_jwks_warning_count(set) > 0) {
        snprintf(why, cap, "the JWKS has a key that cannot verify a client assertion: %s",
                 gh_jwks_warning(set, 0));
        printable(why);
        rc = -EINVAL;
    }
    gh_jwks_unref(set);
    return rc;
}
