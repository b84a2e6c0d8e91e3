/* libFuzzer target: the policies' claim paths and claims reader
 * (src/filters/policy/claims.c). The input is a claim path ("[a][b]", up
 * to the first newline) and a JSON text (the rest). Checks that the path
 * parser and the reader stay inside the input, that a found value lies in
 * the text and decodes to no more bytes than it has, that array walks
 * stay inside their array, and, when jansson accepts the text as an object
 * without duplicate names (and it is shallow enough for the reader's
 * bound), that both find the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "filters/policy/internal.h"

typedef struct {
    const char *lo, *hi;
    int n;
} span_t;

static int in_span(void *arg, const gh_jv_t *e)
{
    span_t *s = arg;
    if (e->p < s->lo || e->p + e->n > s->hi)
        abort();
    if (e->kind == GH_JV_STRING) {
        char *out = malloc(e->n ? e->n : 1);
        if (out != NULL) {
            long dn = gh_policy_json_unescape(e->p, e->n, out);
            if (dn > (long)e->n)
                abort();
            free(out);
        }
    }
    if (++s->n > s->hi - s->lo + 1)
        abort(); /* more elements than bytes: the walk does not advance */
    return 0;
}

static void compare_with_jansson(const char *text, size_t n, const gh_claim_path_t *p,
                                 const gh_jv_t *got)
{
    size_t opens = 0;
    /* jansson reads past a raw NUL after a number or a literal (see
     * src/jose/json.h): not an oracle for those texts. */
    if (memchr(text, '\0', n) != NULL)
        return;
    for (size_t i = 0; i < n; i++)
        opens += text[i] == '{' || text[i] == '[';
    if (opens > 60)
        return;
    json_error_t err;
    json_t *doc = json_loadb(text, n, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL)
        return;
    json_t *v = doc;
    for (uint32_t i = 0; v != NULL && i < p->n; i++)
        v = json_is_object(v) ? json_object_get(v, p->segs[i]) : NULL;
    if (!json_is_object(doc))
        v = NULL;
    if (v == NULL) {
        if (got->kind != GH_JV_ABSENT)
            abort();
    } else if (json_is_string(v)) {
        if (got->kind != GH_JV_STRING)
            abort();
        char *out = malloc(got->n ? got->n : 1);
        if (out == NULL)
            abort();
        long dn = gh_policy_json_unescape(got->p, got->n, out);
        if (dn < 0 || (size_t)dn != json_string_length(v) ||
            memcmp(out, json_string_value(v), (size_t)dn) != 0)
            abort();
        free(out);
    } else if (json_is_array(v)) {
        if (got->kind != GH_JV_ARRAY)
            abort();
    } else if (got->kind != GH_JV_OTHER) {
        abort();
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies, so ASan sees any read past either part. */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t pl = nl != NULL ? (size_t)(nl - data) : size;
    size_t tl = nl != NULL ? size - pl - 1 : 0;
    char *path = malloc(pl ? pl : 1), *text = malloc(tl ? tl : 1);
    if (path == NULL || text == NULL) {
        free(path);
        free(text);
        return 0;
    }
    memcpy(path, data, pl);
    if (tl > 0)
        memcpy(text, nl + 1, tl);

    gh_claim_path_t p;
    if (gh_policy_claim_path_parse(path, pl, &p) == NULL) {
        if (p.n == 0 || p.n > GH_POL_MAX_CLAIM_DEPTH)
            abort();
        for (uint32_t i = 0; i < p.n; i++)
            if (p.lens[i] == 0 || strlen(p.segs[i]) != p.lens[i])
                abort();
        gh_jv_t v = gh_policy_claim_find(text, tl, &p);
        if (v.kind != GH_JV_ABSENT) {
            if (v.p < text || v.p + v.n > text + tl)
                abort();
            span_t s = {v.p, v.p + v.n, 0};
            if (v.kind == GH_JV_ARRAY)
                gh_policy_json_each(v.p, v.n, in_span, &s);
            else if (v.kind == GH_JV_STRING)
                in_span(&s, &v);
        }
        compare_with_jansson(text, tl, &p, &v);
        gh_policy_claim_path_dispose(&p);
    }
    free(path);
    free(text);
    return 0;
}
