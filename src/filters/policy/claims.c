/*
 * Claims for policies: the path of request.auth.claims[a][b] and a reader
 * that finds it in the verified token's payload without building a tree.
 *
 * The payload was checked by the strict JSON reader (src/jose/json.h)
 * when the token was verified (duplicate member names refused, UTF-8 and
 * escapes checked), and these bytes are that payload: the verified-token
 * cache compares the whole token. The reader still never trusts them: it
 * stays inside the text on any input, never recurses, and bounds its
 * nesting, so that a bug elsewhere cannot turn into a read out of bounds
 * here (tests/fuzz/fuzz_policy_claims.c feeds it anything).
 */
#include <stdlib.h>
#include <string.h>

#include <gatehouse/hex.h>

#include "filters/policy/internal.h"

#define MAX_SEGMENT 256

const char *gh_policy_claim_path_parse(const char *s, size_t n, gh_claim_path_t *p)
{
    char *segs[GH_POL_MAX_CLAIM_DEPTH];
    uint32_t lens[GH_POL_MAX_CLAIM_DEPTH];
    uint32_t k = 0;
    size_t i = 0;
    const char *why = NULL;

    memset(p, 0, sizeof(*p));
    if (n == 0)
        return "needs a claim name in brackets, as request.auth.claims[groups]";
    while (i < n) {
        if (s[i] != '[') {
            why = "needs each claim name in brackets, as request.auth.claims[a][b]";
            goto fail;
        }
        size_t start = ++i;
        while (i < n && s[i] != ']') {
            unsigned char c = (unsigned char)s[i];
            if (c == '[' || c < 0x20 || c == 0x7f) {
                why = "has a claim name with '[' or a control character";
                goto fail;
            }
            i++;
        }
        if (i == n) {
            why = "has a '[' without its ']'";
            goto fail;
        }
        size_t len = i - start;
        i++; /* ']' */
        if (len == 0) {
            why = "has an empty claim name '[]'";
            goto fail;
        }
        if (len > MAX_SEGMENT) {
            why = "has a claim name longer than 256 bytes";
            goto fail;
        }
        if (k == GH_POL_MAX_CLAIM_DEPTH) {
            why = "nests claims deeper than 8 levels";
            goto fail;
        }
        segs[k] = malloc(len + 1);
        if (segs[k] == NULL) {
            why = "out of memory";
            goto fail;
        }
        memcpy(segs[k], s + start, len);
        segs[k][len] = '\0';
        lens[k++] = (uint32_t)len;
    }
    p->segs = malloc(k * sizeof(*p->segs));
    p->lens = malloc(k * sizeof(*p->lens));
    if (p->segs == NULL || p->lens == NULL) {
        free(p->segs);
        free(p->lens);
        p->segs = NULL;
        p->lens = NULL;
        why = "out of memory";
        goto fail;
    }
    memcpy(p->segs, segs, k * sizeof(*segs));
    memcpy(p->lens, lens, k * sizeof(*lens));
    p->n = k;
    p->split = k == 1 && (strcmp(segs[0], "scope") == 0 || strcmp(segs[0], "permission") == 0);
    return NULL;
fail:
    while (k > 0)
        free(segs[--k]);
    return why;
}

void gh_policy_claim_path_dispose(gh_claim_path_t *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        free(p->segs[i]);
    free(p->segs);
    free(p->lens);
    memset(p, 0, sizeof(*p));
}

/* ---- a bounded JSON walk ---- */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at the opening '"': past the closing one, or NULL. *esc: a backslash
 * was seen. */
static const char *skip_string(const char *p, const char *e, int *esc)
{
    for (p++; p < e; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\') {
            *esc = 1;
            if (++p == e)
                return NULL;
        }
    }
    return NULL;
}

/* p at a value: past it, or NULL when the text ends inside it or nests
 * deeper than GH_POL_JSON_MAX_DEPTH. Containers are walked with a depth
 * count, not recursion. */
static const char *skip_value(const char *p, const char *e)
{
    int esc = 0;
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e, &esc);
    if (*p != '{' && *p != '[') {
        while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    int depth = 0;
    while (p < e) {
        char c = *p;
        if (c == '"') {
            if ((p = skip_string(p, e, &esc)) == NULL)
                return NULL;
            continue;
        }
        if (c == '{' || c == '[') {
            if (++depth > GH_POL_JSON_MAX_DEPTH)
                return NULL;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p + 1;
        }
        p++;
    }
    return NULL;
}

static gh_jv_t value_at(const char *p, const char *end)
{
    gh_jv_t v = {GH_JV_OTHER, 0, p, (size_t)(end - p)};
    if (*p == '"') {
        v.kind = GH_JV_STRING;
        v.p = p + 1;
        v.n = (size_t)(end - p) - 2;
        v.escaped = memchr(v.p, '\\', v.n) != NULL;
    } else if (*p == '[') {
        v.kind = GH_JV_ARRAY;
    }
    return v;
}

static long hex4(const char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = gh_hex_value((unsigned char)s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

long gh_policy_json_unescape(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        char c = s[i];
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        if (i + 1 >= n)
            return -1;
        char k = s[i + 1];
        i += 2;
        switch (k) {
        case '"':
        case '\\':
        case '/':
            out[o++] = k;
            continue;
        case 'b':
            out[o++] = '\b';
            continue;
        case 'f':
            out[o++] = '\f';
            continue;
        case 'n':
            out[o++] = '\n';
            continue;
        case 'r':
            out[o++] = '\r';
            continue;
        case 't':
            out[o++] = '\t';
            continue;
        case 'u':
            break;
        default:
            return -1;
        }
        if (i + 4 > n)
            return -1;
        long cp = hex4(s + i);
        if (cp < 0)
            return -1;
        i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            /* A high surrogate: its low half must follow (12 bytes in, 4 out). */
            if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
                return -1;
            long lo = hex4(s + i + 2);
            if (lo < 0xdc00 || lo > 0xdfff)
                return -1;
            i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return -1;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xc0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xe0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    return (long)o;
}

/* Whether the member name k[0..kn) (a string body, escapes in when esc)
 * is want[0..wn). */
static int name_is(const char *k, size_t kn, int esc, const char *want, size_t wn)
{
    if (!esc)
        return kn == wn && memcmp(k, want, wn) == 0;
    /* Six bytes of text decode to one at the least ("\u0061"), so a name
     * whose text is longer than 6 * MAX_SEGMENT cannot be a segment. */
    char buf[6 * MAX_SEGMENT];
    if (kn > sizeof(buf))
        return 0;
    long dn = gh_policy_json_unescape(k, kn, buf);
    return dn >= 0 && (size_t)dn == wn && memcmp(buf, want, wn) == 0;
}

/* The member called want of the object at p ('{'), its value's start and
 * end in *vs, *ve; 0 when absent or when the text is not an object. */
static int member(const char *p, const char *e, const char *want, size_t wn, const char **vs,
                  const char **ve)
{
    if (p >= e || *p != '{')
        return 0;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        return 0;
    while (p < e && *p == '"') {
        int esc = 0;
        const char *ks = p + 1, *ke = skip_string(p, e, &esc);
        if (ke == NULL)
            return 0;
        p = skip_ws(ke, e);
        if (p >= e || *p != ':')
            return 0;
        p = skip_ws(p + 1, e);
        const char *v = p, *end = skip_value(p, e);
        if (end == NULL || end == v)
            return 0;
        if (name_is(ks, (size_t)(ke - 1 - ks), esc, want, wn)) {
            *vs = v;
            *ve = end;
            return 1;
        }
        p = skip_ws(end, e);
        if (p >= e || *p != ',')
            return 0;
        p = skip_ws(p + 1, e);
    }
    return 0;
}

gh_jv_t gh_policy_claim_find(const char *text, size_t len, const gh_claim_path_t *path)
{
    gh_jv_t none = {GH_JV_ABSENT, 0, NULL, 0};
    const char *e = text + len, *p = skip_ws(text, e), *vs = NULL, *ve = NULL;
    for (uint32_t i = 0; i < path->n; i++) {
        if (!member(p, e, path->segs[i], path->lens[i], &vs, &ve))
            return none;
        p = vs;
    }
    return path->n > 0 ? value_at(vs, ve) : none;
}

int gh_policy_json_each(const char *a, size_t n, int (*fn)(void *arg, const gh_jv_t *el), void *arg)
{
    const char *e = a + n, *p;
    if (n < 2 || a[0] != '[')
        return 0;
    p = skip_ws(a + 1, e);
    if (p < e && *p == ']')
        return 0;
    while (p < e) {
        const char *end = skip_value(p, e);
        if (end == NULL || end == p)
            return 0;
        gh_jv_t v = value_at(p, end);
        int r = fn(arg, &v);
        if (r != 0)
            return r;
        p = skip_ws(end, e);
        if (p >= e || *p != ',')
            return 0;
        p = skip_ws(p + 1, e);
    }
    return 0;
}
