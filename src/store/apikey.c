/*
 * API key format, hashing and metadata checks (gatehouse/apikey.h).
 *
 * Why a plain SHA-256 and not a password hash (scrypt, argon2): a key
 * gatehouse makes carries 256 random bits, so no guess of its preimage is
 * feasible whatever the hash costs; a slow hash only protects secrets of
 * low entropy (passwords), and would cost every request that misses the
 * cache milliseconds of CPU on a worker. Imported keys are AWS API Gateway
 * keys: AWS generates 40 random characters (about 238 bits); a key a user
 * chose there and imported has the entropy the user gave it (at least 20
 * characters are required), which docs/api-keys.md says.
 */
#include <gatehouse/apikey.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Domain separation: an imported key's id is not a prefix of its hash. */
static const char id_domain[] = "gatehouse api key id";

static int is_b32(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
}

static int is_b62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

const char *gh_apikey_check(const char *key, size_t len)
{
    if (key == NULL || len == 0)
        return "empty";
    /* Bytes first: a key cut short at a NUL or a line break is reported as
     * what it is, not as "too short". */
    for (size_t i = 0; i < len && i <= GH_APIKEY_MAX_LEN; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7e)
            return "holds a space, control or non-ASCII byte";
    }
    if (len < GH_APIKEY_MIN_LEN)
        return "shorter than 20 characters";
    if (len > GH_APIKEY_MAX_LEN)
        return "longer than 128 characters";
    return NULL;
}

int gh_apikey_is_native(const char *key, size_t len)
{
    if (len != GH_APIKEY_LEN || memcmp(key, GH_APIKEY_PREFIX, GH_APIKEY_PREFIX_LEN) != 0)
        return 0;
    const char *id = key + GH_APIKEY_PREFIX_LEN;
    for (size_t i = 0; i < GH_APIKEY_ID_LEN; i++)
        if (!is_b32(id[i]))
            return 0;
    if (id[GH_APIKEY_ID_LEN] != '_')
        return 0;
    const char *secret = id + GH_APIKEY_ID_LEN + 1;
    for (size_t i = 0; i < GH_APIKEY_SECRET_LEN; i++)
        if (!is_b62(secret[i]))
            return 0;
    return 1;
}

int gh_apikey_id_valid(const char *id)
{
    if (id == NULL)
        return 0;
    for (size_t i = 0; i < GH_APIKEY_ID_LEN; i++)
        if (!is_b32(id[i]))
            return 0;
    return id[GH_APIKEY_ID_LEN] == '\0';
}

/* 60 bits, big-endian from bytes, as 12 base32 characters. */
static void encode_id(const unsigned char *bytes, char out[GH_APIKEY_ID_LEN + 1])
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | bytes[i];
    for (size_t i = 0; i < GH_APIKEY_ID_LEN; i++)
        out[i] = b32[(v >> (59 - 5 * i)) & 31];
    out[GH_APIKEY_ID_LEN] = '\0';
}

int gh_apikey_present(const char *key, size_t len, gh_apikey_presented_t *out, const char **why)
{
    const char *bad = gh_apikey_check(key, len);
    if (bad != NULL) {
        if (why != NULL)
            *why = bad;
        return -EINVAL;
    }
    if (gh_apikey_is_native(key, len)) {
        memcpy(out->id, key + GH_APIKEY_PREFIX_LEN, GH_APIKEY_ID_LEN);
        out->id[GH_APIKEY_ID_LEN] = '\0';
    } else {
        unsigned char buf[sizeof(id_domain) + GH_APIKEY_MAX_LEN];
        unsigned char md[SHA256_DIGEST_LENGTH];
        memcpy(buf, id_domain, sizeof(id_domain)); /* with its NUL */
        memcpy(buf + sizeof(id_domain), key, len);
        SHA256(buf, sizeof(id_domain) + len, md);
        encode_id(md, out->id);
    }
    SHA256((const unsigned char *)key, len, out->hash);
    return 0;
}

int gh_apikey_generate(char out[GH_APIKEY_LEN + 1])
{
    unsigned char rnd[64];
    size_t used = sizeof(rnd);
    char *p = out;
    memcpy(p, GH_APIKEY_PREFIX, GH_APIKEY_PREFIX_LEN);
    p += GH_APIKEY_PREFIX_LEN;
    if (RAND_bytes(rnd, 8) != 1)
        return -EIO;
    encode_id(rnd, p);
    p += GH_APIKEY_ID_LEN;
    *p++ = '_';
    /* Uniform base62 by rejection: a byte below 248 (4 * 62) maps to
     * byte % 62 without bias; 43 characters carry 43 * log2(62) = 256.03
     * bits. */
    for (size_t i = 0; i < GH_APIKEY_SECRET_LEN;) {
        if (used == sizeof(rnd)) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                OPENSSL_cleanse(rnd, sizeof(rnd));
                return -EIO;
            }
            used = 0;
        }
        unsigned char b = rnd[used++];
        if (b < 248)
            p[i++] = b62[b % 62];
    }
    p[GH_APIKEY_SECRET_LEN] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

/* = + - @ at the start of a cell make spreadsheets evaluate it (and a
 * tab or CR there is how the same is smuggled past naive filters). */
static int formula_start(const char *s)
{
    return s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
}

const char *gh_apikey_check_consumer(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return "must not be empty";
    if (n > GH_APIKEY_CONSUMER_MAX)
        return "must be at most 256 characters";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return "must be printable ASCII";
    if (s[0] == ' ' || s[n - 1] == ' ')
        return "must not start or end with a space";
    if (formula_start(s))
        return "must not start with = + - or @ (spreadsheets run such a cell as a formula)";
    return NULL;
}

const char *gh_apikey_check_plan(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return "must not be empty";
    if (n > GH_APIKEY_PLAN_MAX)
        return "must be at most 64 characters";
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return "must be letters, digits, '.', '_' or '-', starting with a letter or digit";
    }
    return NULL;
}

/* Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)
 * and no control character (C0, DEL, C1). */
static const char *utf8_text_refused(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return "must not contain control characters";
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return "must be UTF-8";
        }
        if (i + len > n)
            return "must be UTF-8";
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return "must be UTF-8";
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return "must be UTF-8";
        if (cp >= 0x80 && cp <= 0x9f)
            return "must not contain control characters";
        i += len;
    }
    return NULL;
}

const char *gh_apikey_check_description(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return NULL;
    if (n > GH_APIKEY_DESCRIPTION_MAX)
        return "must be at most 1024 bytes";
    const char *why = utf8_text_refused((const unsigned char *)s, n);
    if (why != NULL)
        return why;
    if (formula_start(s))
        return "must not start with = + - or @ (spreadsheets run such a cell as a formula)";
    return NULL;
}

char *gh_apikey_scopes_normalize(const char *in, const char **why)
{
    size_t n = in ? strlen(in) : 0;
    char *out = malloc(n + 1);
    size_t o = 0, count = 0;
    if (out == NULL) {
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < n;) {
        if (in[i] == ',' || in[i] == ' ') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && in[i] != ',' && in[i] != ' ')
            i++;
        size_t len = i - start;
        const char *bad = NULL;
        if (len > GH_APIKEY_SCOPE_MAX)
            bad = "a scope is longer than 128 characters";
        for (size_t k = start; bad == NULL && k < i; k++) {
            unsigned char c = (unsigned char)in[k];
            if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
                bad = "a scope must be printable ASCII without spaces, '\"' or '\\'";
        }
        if (bad == NULL && ++count > GH_APIKEY_SCOPES_MAX)
            bad = "more than 64 scopes";
        /* the same scope twice: compare with those already out */
        for (size_t k = 0; bad == NULL && k < o;) {
            size_t e = k;
            while (e < o && out[e] != ' ')
                e++;
            if (e - k == len && memcmp(out + k, in + start, len) == 0)
                bad = "a scope is listed twice";
            k = e + 1;
        }
        if (bad != NULL) {
            free(out);
            *why = bad;
            return NULL;
        }
        if (o > 0)
            out[o++] = ' ';
        memcpy(out + o, in + start, len);
        o += len;
    }
    out[o] = '\0';
    return out;
}
