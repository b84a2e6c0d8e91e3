/* The differential oracle for src/jose/json.c: jansson (json_loadb with
 * JSON_REJECT_DUPLICATES, as gatehouse used it before) on the same bytes.
 * Shared by tests/unit/jose/test_json.c and tests/fuzz/fuzz_jwt.c. */
#ifndef GATEHOUSE_TEST_JSON_DIFF_H
#define GATEHOUSE_TEST_JSON_DIFF_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jose/json.h"

static inline int json_diff_depth(const json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            int x = json_diff_depth(e);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            int x = json_diff_depth(e);
            d = x > d ? x : d;
        }
        return d + 1;
    }
    return 0;
}

static inline int json_diff_same(const gh_jose_json_rec_t *r, const json_t *v)
{
    switch (r->type) {
    case GH_JOSE_JSON_STRING:
        return json_is_string(v) && json_string_length(v) == r->val_len &&
               memcmp(json_string_value(v), r->val, r->val_len) == 0 && r->val[r->val_len] == '\0';
    case GH_JOSE_JSON_NUMBER: {
        double d = gh_jose_json_number(r);
        return json_is_number(v) && (d == json_number_value(v));
    }
    case GH_JOSE_JSON_TRUE:
        return json_is_true(v);
    case GH_JOSE_JSON_FALSE:
        return json_is_false(v);
    case GH_JOSE_JSON_NULL:
        return json_is_null(v);
    case GH_JOSE_JSON_OBJECT:
        return json_is_object(v) && r->val[0] == '{' && r->val[r->val_len - 1] == '}';
    case GH_JOSE_JSON_ARRAY:
        if (!json_is_array(v) || r->val[0] != '[' || r->val[r->val_len - 1] != ']')
            return 0;
        if (r->name == NULL) /* an element: its own elements are not indexed */
            return r->nelem == 0;
        if (json_array_size(v) != r->nelem)
            return 0;
        for (uint32_t i = 0; i < r->nelem; i++)
            if (r[1 + i].name != NULL || !json_diff_same(&r[1 + i], json_array_get(v, i)))
                return 0;
        return 1;
    }
    return 0;
}

static inline const char *json_diff(const char *text, size_t len);

/* jansson reads one byte past a number or a literal and puts it back; a
 * NUL put back is lost (its stream takes NUL for "buffer empty"), so
 * "{\"a\":1\0}" passes as {"a":1}. The reader refuses every NUL. Such a
 * text must read as jansson reads it once its NULs are gone. */
static inline const char *json_diff_without_nul(const char *text, size_t len)
{
    char *t = malloc(len + 1);
    size_t o = 0;
    if (t == NULL)
        abort();
    for (size_t i = 0; i < len; i++)
        if (text[i] != '\0')
            t[o++] = text[i];
    const char *why = json_diff(t, o);
    if (why == NULL) {
        gh_jose_json_rec_t *recs = malloc(GH_JOSE_JSON_RECS(o) * sizeof(*recs));
        if (recs == NULL)
            abort();
        t[o] = '\0';
        if (gh_jose_json_index(t, o, recs) < 0)
            why = "jansson accepts what the reader refuses (with NULs taken out)";
        free(recs);
    }
    free(t);
    return why;
}

/* Reads text[0..len) with both; NULL when they agree, else what differs.
 * They agree when both refuse, or both accept and the reader's records
 * hold the top level jansson built; the reader may refuse only what
 * nests deeper than GH_JOSE_JSON_MAX_DEPTH, or a NUL byte (above). */
static inline const char *json_diff(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    gh_jose_json_rec_t *recs = malloc(GH_JOSE_JSON_RECS(len) * sizeof(*recs));
    const char *why = NULL;
    if (copy == NULL || recs == NULL)
        abort();
    memcpy(copy, text, len);
    copy[len] = '\0';
    long n = gh_jose_json_index(copy, len, recs);
    json_error_t jerr;
    json_t *tree = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (tree != NULL && !json_is_object(tree)) {
        json_decref(tree);
        tree = NULL;
    }
    if (n < 0 && tree != NULL && memchr(text, '\0', len) != NULL)
        why = json_diff_without_nul(text, len);
    else if (n < 0 && tree != NULL && json_diff_depth(tree) <= GH_JOSE_JSON_MAX_DEPTH)
        why = "jansson accepts what the reader refuses";
    else if (n >= 0 && tree == NULL)
        why = "the reader accepts what jansson refuses";
    else if (n >= 0) {
        size_t members = 0;
        for (long i = 0; i < n && why == NULL; i += 1 + recs[i].nelem) {
            members++;
            json_t *v =
                recs[i].name ? json_object_getn(tree, recs[i].name, recs[i].name_len) : NULL;
            if (v == NULL || recs[i].name[recs[i].name_len] != '\0')
                why = "a member's name differs";
            else if (!json_diff_same(&recs[i], v))
                why = "a member's value differs";
            else if (gh_jose_json_get(recs, (size_t)n, recs[i].name) != &recs[i])
                why = "gh_jose_json_get does not find a member";
        }
        if (why == NULL && members != json_object_size(tree))
            why = "the member count differs";
    }
    json_decref(tree);
    free(copy);
    free(recs);
    return why;
}

#endif
