/*
 * name=value pairs in a query string ("a=1&b&c=3", separator '&') or a
 * Cookie field ("a=1; b=2", separator ';', spaces after it skipped). Raw:
 * nothing is percent-decoded, so every caller sees the bytes the upstream
 * will see. Borrowed slices, no allocation.
 */
#ifndef GATEHOUSE_PAIRS_H
#define GATEHOUSE_PAIRS_H

#include <stddef.h>

typedef struct {
    const char *p, *end;
    char sep;
} gh_pairs_t;

typedef struct {
    const char *name;
    size_t name_len;
    const char *value; /* after '='; empty (not NULL) when there is none */
    size_t value_len;
    int has_value;   /* an '=' was there */
    const char *raw; /* the whole pair */
    size_t raw_len;
} gh_pair_t;

static inline void gh_pairs_init(gh_pairs_t *it, const char *s, size_t n, char sep)
{
    it->p = s;
    it->end = s != NULL ? s + n : NULL;
    it->sep = sep;
}

/* The next non-empty pair: 1, or 0 at the end. */
int gh_pairs_next(gh_pairs_t *it, gh_pair_t *out);

/* Whether the pair's name is exactly name[0..n). */
int gh_pair_name_is(const gh_pair_t *pr, const char *name, size_t n);

/* Whether a query parameter's name reads as name[0..n) once decoded the
 * way applications decode it: percent escapes (RFC 3986 section 2.1; a '%'
 * without two hex digits stands for itself) and '+' as a space (HTML form
 * encoding), ASCII case ignored (nginx's $arg_NAME ignores it).
 * "access%5Ftoken" and "ACCESS_TOKEN" are "access_token". Token lookups and the
 * access log's secret_query both compare names this way, so a name only
 * the upstream decodes can neither hide a token nor a secret. */
int gh_pair_name_decoded_is(const gh_pair_t *pr, const char *name, size_t n);

#endif
