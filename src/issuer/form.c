/*
 * application/x-www-form-urlencoded bodies, decoded once (form.h).
 */
#include <errno.h>
#include <string.h>

#include <gatehouse/hex.h>

#include "issuer/form.h"

long gh_form_decode(const char *raw, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            /* WHATWG keeps a stray '%' as itself; RFC 3986 §2.1 makes it
             * malformed. Refusing leaves one reading for every body. */
            if (n - i < 3)
                return -1;
            int hi = gh_hex_value((unsigned char)raw[i + 1]);
            int lo = gh_hex_value((unsigned char)raw[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        out[o++] = (char)c;
    }
    return (long)o;
}

int gh_form_parse(const char *body, size_t len, char *scratch, size_t cap, gh_form_t *out,
                  const char **why)
{
    static const char empty[1] = "";
    out->n = 0;
    *why = NULL;
    if (cap < GH_FORM_SCRATCH(len)) {
        *why = "no room to decode the body";
        return -E2BIG;
    }
    /* Each pair of r raw bytes decodes to at most r + 1 (two NULs, one
     * '=' less; an empty value is the static ""), and each pair but the
     * last gives back its '&': len + 1 bytes in all. */
    size_t o = 0;
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *pair = p;
        p = amp ? amp + 1 : end;
        if (e == pair)
            continue;
        if (out->n == GH_FORM_MAX_PAIRS) {
            *why = "too many parameters";
            return -E2BIG;
        }
        const char *eq = memchr(pair, '=', (size_t)(e - pair));
        const char *ne = eq ? eq : e;
        gh_form_pair_t *pr = &out->pairs[out->n];
        long nl = gh_form_decode(pair, (size_t)(ne - pair), scratch + o);
        if (nl < 0) {
            *why = "malformed percent-encoding";
            return -EINVAL;
        }
        if ((size_t)nl > GH_FORM_MAX_NAME) {
            *why = "parameter name too long";
            return -E2BIG;
        }
        pr->name = scratch + o;
        pr->name_len = (size_t)nl;
        o += (size_t)nl;
        scratch[o++] = '\0';
        pr->value = empty;
        pr->value_len = 0;
        if (eq != NULL && e - eq > 1) {
            long vl = gh_form_decode(eq + 1, (size_t)(e - eq - 1), scratch + o);
            if (vl < 0) {
                *why = "malformed percent-encoding";
                return -EINVAL;
            }
            if ((size_t)vl > GH_FORM_MAX_VALUE) {
                *why = "parameter value too long";
                return -E2BIG;
            }
            pr->value = scratch + o;
            pr->value_len = (size_t)vl;
            o += (size_t)vl;
            scratch[o++] = '\0';
        }
        out->n++;
    }
    return 0;
}

size_t gh_form_get(const gh_form_t *f, const char *name, const gh_form_pair_t **first)
{
    size_t n = strlen(name), count = 0;
    if (first != NULL)
        *first = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const gh_form_pair_t *pr = &f->pairs[i];
        if (pr->value_len == 0 || pr->name_len != n || memcmp(pr->name, name, n) != 0)
            continue;
        if (count++ == 0 && first != NULL)
            *first = pr;
    }
    return count;
}
