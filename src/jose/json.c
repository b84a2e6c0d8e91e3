/*
 * The strict JSON reader of jose/json.h: one pass over the text with an
 * explicit stack (no recursion), records for the top level only.
 *
 * Why not jansson here: a token's header and claims are a few hundred
 * bytes read once, and gatehouse reads a handful of top-level members of
 * them. Building, hashing and freeing a tree for that cost more than the
 * rest of a fresh token's handling outside OpenSSL. jansson remains for
 * what needs a tree (claims_to_headers and required claims on nested or
 * non-string values, `token inspect`), built from the same text only after
 * this reader has accepted it.
 */
#include "jose/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A member name of an open object, decoded, for the duplicate check. */
typedef struct {
    const char *p;
    uint32_t len;
    uint32_t hash;
} name_t;

typedef struct {
    uint8_t array;
    size_t names; /* objects: first of this object's names in the names list */
    long rec;     /* this container's record (to set its length at the end), or -1 */
    long owner;   /* arrays that are top-level members: their record, or -1 */
} level_t;

#define NAMES_INLINE 64

typedef struct {
    char *p, *end;
    gh_jose_json_rec_t *recs;
    size_t nrec;
    name_t *names;
    size_t nnames, names_cap;
    name_t inline_names[NAMES_INLINE];
} scan_t;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Four hex digits at q (end e) as a code unit, or -1. */
static long hex4(const unsigned char *q, const unsigned char *e)
{
    if (e - q < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(q[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Length of the UTF-8 sequence at q, or 0 when it is not one jansson
 * accepts: no overlong forms, no surrogates, nothing past U+10FFFF
 * (RFC 3629 section 4). */
static int utf8_len(const unsigned char *q, const unsigned char *e)
{
    unsigned c = q[0];
    int n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (e - q < n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((q[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (q[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

/* Whether any of the 8 bytes is '"', '\\', a control character or not
 * ASCII: the bytes a string scan must stop at. */
static int special8(uint64_t v)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    uint64_t zq = (q - ones) & ~q, zb = (b - ones) & ~b;
    uint64_t ctl = (v - ones * 0x20) & ~v; /* a byte < 0x20 (or >= 0x80: caught below) */
    return ((zq | zb | ctl) & high) != 0 || (v & high) != 0;
}

/*
 * The string whose opening quote is at sc->p: checked, and left at
 * *raw and *rawlen (between the quotes). *esc says whether it holds escapes.
 * sc->p moves past the closing quote. Returns 0 or -1.
 */
static int scan_string(scan_t *sc, char **raw, size_t *rawlen, int *esc)
{
    const unsigned char *q = (const unsigned char *)sc->p + 1;
    const unsigned char *e = (const unsigned char *)sc->end;
    *esc = 0;
    for (;;) {
        while (e - q >= 8) {
            uint64_t v;
            memcpy(&v, q, 8);
            if (special8(v))
                break;
            q += 8;
        }
        if (q >= e)
            return -1;
        unsigned c = *q;
        if (c == '"')
            break;
        if (c == '\\') {
            *esc = 1;
            if (++q >= e)
                return -1;
            switch (*q) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                q++;
                continue;
            case 'u':
                break;
            default:
                return -1;
            }
            long u = hex4(q + 1, e);
            q += 5;
            /* \u0000 would put a NUL inside a C string (a kid, a sub)
             * that ends it early: refused, as jansson does. */
            if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF))
                return -1;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (e - q < 6 || q[0] != '\\' || q[1] != 'u')
                    return -1;
                long lo = hex4(q + 2, e);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                q += 6;
            }
            continue;
        }
        if (c < 0x20)
            return -1;
        if (c < 0x80) {
            q++;
            continue;
        }
        int n = utf8_len(q, e);
        if (n == 0)
            return -1;
        q += n;
    }
    *raw = sc->p + 1;
    *rawlen = (size_t)((const char *)q - *raw);
    sc->p = (char *)q + 1;
    return 0;
}

static size_t put_utf8(char *d, uint32_t v)
{
    unsigned char *o = (unsigned char *)d;
    if (v < 0x80) {
        o[0] = (unsigned char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (unsigned char)(0xC0 | v >> 6);
        o[1] = (unsigned char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (unsigned char)(0xE0 | v >> 12);
        o[1] = (unsigned char)(0x80 | (v >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (v & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | v >> 18);
    o[1] = (unsigned char)(0x80 | (v >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (v >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (v & 0x3F));
    return 4;
}

/* Decodes the checked string body s[0..n) in place (the output is never
 * longer than what it has read); returns the decoded length. */
static size_t decode(char *s, size_t n)
{
    size_t i = 0, o = 0;
    while (i < n) {
        char c = s[i];
        if (c != '\\') {
            s[o++] = c;
            i++;
            continue;
        }
        c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b':
            s[o++] = '\b';
            break;
        case 'f':
            s[o++] = '\f';
            break;
        case 'n':
            s[o++] = '\n';
            break;
        case 'r':
            s[o++] = '\r';
            break;
        case 't':
            s[o++] = '\t';
            break;
        case 'u': {
            uint32_t v = (uint32_t)hex4((const unsigned char *)s + i, (const unsigned char *)s + n);
            i += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                uint32_t lo =
                    (uint32_t)hex4((const unsigned char *)s + i + 2, (const unsigned char *)s + n);
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            o += put_utf8(s + o, v);
            break;
        }
        default: /* '"', '\\', '/' */
            s[o++] = c;
            break;
        }
    }
    return o;
}

static int is_digit(const char *p, const char *e)
{
    return p < e && *p >= '0' && *p <= '9';
}

/* The number at sc->p (RFC 8259 section 6), refused where jansson refuses
 * it: an integer outside int64, a real that overflows a double. The text
 * is followed by a NUL or a delimiter, so strtod/strtoll stop at its end. */
static int scan_number(scan_t *sc)
{
    const char *p = sc->p, *e = sc->end, *start = p;
    int real = 0;
    if (*p == '-')
        p++;
    const char *digits = p;
    if (p < e && *p == '0')
        p++;
    else if (is_digit(p, e))
        while (is_digit(p, e))
            p++;
    else
        return -1;
    size_t ndigits = (size_t)(p - digits);
    if (p < e && *p == '.') {
        real = 1;
        if (!is_digit(++p, e))
            return -1;
        while (is_digit(p, e))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, e))
            return -1;
        while (is_digit(p, e))
            p++;
    }
    if (real || ndigits > 18) {
        /* Rare in a JWT: NumericDates are integers of 10 digits. */
        char buf[64], *copy = buf, *endp;
        size_t n = (size_t)(p - start);
        if (n >= sizeof(buf) && (copy = malloc(n + 1)) == NULL)
            return -ENOMEM;
        memcpy(copy, start, n);
        copy[n] = '\0';
        errno = 0;
        int bad;
        if (real) {
            double d = strtod(copy, &endp);
            bad = isinf(d) && errno == ERANGE;
        } else {
            (void)strtoll(copy, &endp, 10);
            bad = errno == ERANGE;
        }
        if (copy != buf)
            free(copy);
        if (bad)
            return -1;
    }
    sc->p = (char *)p;
    return 0;
}

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int name_cmp(const void *a, const void *b)
{
    const name_t *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

/* Whether names[from..nnames) holds a name twice. RFC 8725 section 3.9's
 * smuggling: two "sub" read differently by two parsers. Small objects
 * pairwise; large ones sorted, so a hostile object of thousands of names
 * costs n log n. */
static int has_duplicate(scan_t *sc, size_t from)
{
    name_t *v = sc->names + from;
    size_t n = sc->nnames - from;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (v[i].hash == v[j].hash && v[i].len == v[j].len &&
                    memcmp(v[i].p, v[j].p, v[i].len) == 0)
                    return 1;
        return 0;
    }
    qsort(v, n, sizeof(*v), name_cmp);
    for (size_t i = 1; i < n; i++)
        if (name_cmp(&v[i - 1], &v[i]) == 0)
            return 1;
    return 0;
}

static int push_name(scan_t *sc, const char *p, size_t len)
{
    if (sc->nnames == sc->names_cap) {
        size_t cap = sc->names_cap * 2;
        name_t *n = malloc(cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        memcpy(n, sc->names, sc->nnames * sizeof(*n));
        if (sc->names != sc->inline_names)
            free(sc->names);
        sc->names = n;
        sc->names_cap = cap;
    }
    name_t *nm = &sc->names[sc->nnames++];
    nm->p = p;
    nm->len = (uint32_t)len;
    nm->hash = fnv1a(p, len);
    return 0;
}

static void skip_ws(scan_t *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
        sc->p++;
}

static int literal(scan_t *sc, const char *word, size_t n)
{
    if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
        return -1;
    sc->p += n;
    return 0;
}

static long run(scan_t *sc)
{
    level_t lv[GH_JOSE_JSON_MAX_DEPTH + 1];
    int depth = 0;
    long rec = -1; /* the record the next value fills, or -1 */
    int rc;

    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '{')
        return -1;
    sc->p++;
    lv[1] = (level_t){0, 0, -1, -1};
    depth = 1;
    goto key_or_close;

value:
    skip_ws(sc);
    if (sc->p >= sc->end)
        return -1;
    {
        char *start = sc->p;
        gh_jose_json_rec_t *r = rec >= 0 ? &sc->recs[rec] : NULL;
        switch (*sc->p) {
        case '{':
        case '[': {
            if (depth == GH_JOSE_JSON_MAX_DEPTH)
                return -1;
            int array = *sc->p == '[';
            sc->p++;
            depth++;
            lv[depth].array = (uint8_t)array;
            lv[depth].names = sc->nnames;
            lv[depth].rec = rec;
            lv[depth].owner = array && depth == 2 ? rec : -1;
            if (r != NULL) {
                r->type = array ? GH_JOSE_JSON_ARRAY : GH_JOSE_JSON_OBJECT;
                r->val = start;
            }
            rec = -1;
            if (!array)
                goto key_or_close;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == ']')
                goto close;
            goto element;
        }
        case '"': {
            char *raw;
            size_t n;
            int esc;
            if (scan_string(sc, &raw, &n, &esc) < 0)
                return -1;
            if (r != NULL) {
                if (esc)
                    n = decode(raw, n);
                raw[n] = '\0';
                r->type = GH_JOSE_JSON_STRING;
                r->val = raw;
                r->val_len = (uint32_t)n;
            }
            break;
        }
        case 't':
        case 'f':
        case 'n': {
            static const char *const words[] = {"true", "false", "null"};
            static const uint8_t types[] = {GH_JOSE_JSON_TRUE, GH_JOSE_JSON_FALSE,
                                            GH_JOSE_JSON_NULL};
            int w = *sc->p == 't' ? 0 : *sc->p == 'f' ? 1 : 2;
            if (literal(sc, words[w], w == 1 ? 5 : 4) < 0)
                return -1;
            if (r != NULL) {
                r->type = types[w];
                r->val = start;
                r->val_len = (uint32_t)(sc->p - start);
            }
            break;
        }
        default:
            if ((rc = scan_number(sc)) < 0)
                return rc;
            if (r != NULL) {
                r->type = GH_JOSE_JSON_NUMBER;
                r->val = start;
                r->val_len = (uint32_t)(sc->p - start);
            }
            break;
        }
        rec = -1;
    }

after_value:
    skip_ws(sc);
    if (sc->p >= sc->end)
        return -1;
    if (*sc->p == ',') {
        sc->p++;
        if (lv[depth].array)
            goto element;
        skip_ws(sc);
        goto key;
    }
    if (*sc->p != (lv[depth].array ? ']' : '}'))
        return -1;

close:
    sc->p++;
    if (!lv[depth].array) {
        if (has_duplicate(sc, lv[depth].names))
            return -1;
        sc->nnames = lv[depth].names;
    }
    if (lv[depth].rec >= 0) {
        gh_jose_json_rec_t *r = &sc->recs[lv[depth].rec];
        r->val_len = (uint32_t)(sc->p - r->val);
    }
    if (--depth == 0) {
        skip_ws(sc);
        return sc->p == sc->end ? (long)sc->nrec : -1;
    }
    goto after_value;

element:
    if (lv[depth].owner >= 0) {
        rec = (long)sc->nrec++;
        memset(&sc->recs[rec], 0, sizeof(sc->recs[rec]));
        sc->recs[lv[depth].owner].nelem++;
    }
    goto value;

key_or_close:
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '}')
        goto close;

key:
    if (sc->p >= sc->end || *sc->p != '"')
        return -1;
    {
        char *raw;
        size_t n;
        int esc;
        if (scan_string(sc, &raw, &n, &esc) < 0)
            return -1;
        if (esc)
            n = decode(raw, n);
        if ((rc = push_name(sc, raw, n)) < 0)
            return rc;
        if (depth == 1) {
            raw[n] = '\0';
            rec = (long)sc->nrec++;
            gh_jose_json_rec_t *r = &sc->recs[rec];
            memset(r, 0, sizeof(*r));
            r->name = raw;
            r->name_len = (uint32_t)n;
        }
    }
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != ':')
        return -1;
    sc->p++;
    goto value;
}

long gh_jose_json_index(char *text, size_t len, gh_jose_json_rec_t *recs)
{
    scan_t sc;
    sc.p = text;
    sc.end = text + len;
    sc.recs = recs;
    sc.nrec = 0;
    sc.names = sc.inline_names;
    sc.nnames = 0;
    sc.names_cap = NAMES_INLINE;
    long rc = run(&sc);
    if (sc.names != sc.inline_names)
        free(sc.names);
    return rc;
}

const gh_jose_json_rec_t *gh_jose_json_get(const gh_jose_json_rec_t *recs, size_t n,
                                           const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < n; i += 1 + recs[i].nelem)
        if (recs[i].name_len == nl && (nl == 0 || recs[i].name[0] == name[0]) &&
            memcmp(recs[i].name, name, nl) == 0)
            return &recs[i];
    return NULL;
}

double gh_jose_json_number(const gh_jose_json_rec_t *r)
{
    /* NumericDates are integers of about ten digits: under 2^53 an integer
     * converts exactly, as strtod would round it. */
    const char *p = r->val, *e = r->val + r->val_len;
    int neg = p < e && *p == '-';
    p += neg;
    if (e - p > 0 && e - p <= 15) {
        int64_t v = 0;
        while (p < e && *p >= '0' && *p <= '9')
            v = v * 10 + (*p++ - '0');
        if (p == e)
            return neg ? -(double)v : (double)v;
    }
    char buf[64], *copy = buf;
    if (r->val_len >= sizeof(buf) && (copy = malloc(r->val_len + 1)) == NULL)
        return NAN;
    memcpy(copy, r->val, r->val_len);
    copy[r->val_len] = '\0';
    double d = strtod(copy, NULL);
    if (copy != buf)
        free(copy);
    return d;
}
