#include <gatehouse/hex.h>
#include <gatehouse/pairs.h>

#include <string.h>

int gh_pairs_next(gh_pairs_t *it, gh_pair_t *out)
{
    while (it->p != NULL && it->p < it->end) {
        const char *p = it->p;
        if (it->sep == ';')
            while (p < it->end && *p == ' ')
                p++;
        const char *sep = memchr(p, it->sep, (size_t)(it->end - p));
        const char *e = sep ? sep : it->end;
        it->p = sep ? sep + 1 : it->end;
        if (e == p)
            continue;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        out->raw = p;
        out->raw_len = (size_t)(e - p);
        out->name = p;
        out->name_len = (size_t)((eq ? eq : e) - p);
        out->has_value = eq != NULL;
        out->value = eq ? eq + 1 : e;
        out->value_len = eq ? (size_t)(e - eq - 1) : 0;
        return 1;
    }
    return 0;
}

int gh_pair_name_is(const gh_pair_t *pr, const char *name, size_t n)
{
    return pr->name_len == n && memcmp(pr->name, name, n) == 0;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
}

/* One byte of a name as the laxest common reader folds it: ASCII case,
 * and PHP's mangling of ' ', '.' and '[' into '_'. */
static char name_fold(char c)
{
    c = ascii_lower(c);
    return c == ' ' || c == '.' || c == '[' ? '_' : c;
}

/* The next byte of a name, decoded (percent escapes, '+' as space) from
 * raw[*i]; *i moves past it. */
static char name_next(const char *raw, size_t len, size_t *i)
{
    char c = raw[*i];
    if (c == '+') {
        c = ' ';
    } else if (c == '%' && *i + 2 < len) {
        int hi = gh_hex_value((unsigned char)raw[*i + 1]),
            lo = gh_hex_value((unsigned char)raw[*i + 2]);
        if (hi >= 0 && lo >= 0) {
            c = (char)(hi * 16 + lo);
            *i += 2;
        }
    }
    (*i)++;
    return c;
}

int gh_pair_name_decoded_is(const gh_pair_t *pr, const char *name, size_t n)
{
    const char *raw = pr->name;
    size_t len = pr->name_len, i = 0, j = 0;
    /* PHP drops leading spaces, ends a name at NUL, and reads "a[...]" as
     * the array "a": the name is what precedes them. */
    while (i < len) {
        size_t at = i;
        if (name_next(raw, len, &at) != ' ')
            break;
        i = at;
    }
    while (i < len) {
        size_t at = i;
        char c = name_next(raw, len, &at);
        if (c == '\0' || (c == '[' && j > 0 && memchr(raw + at, ']', len - at) != NULL))
            break;
        if (j >= n || name_fold(name[j]) != name_fold(c))
            return 0;
        i = at;
        j++;
    }
    return j == n;
}
