/* libFuzzer target: the query/cookie pair iterator (src/http/pairs.c).
 * Checks that every slice lies inside the input, that name and value
 * partition the raw pair around '=', and that the walk ends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/pairs.h>

static void walk(const char *s, size_t n, char sep)
{
    gh_pairs_t it;
    gh_pair_t pr;
    size_t count = 0;
    gh_pairs_init(&it, s, n, sep);
    while (gh_pairs_next(&it, &pr)) {
        if (pr.raw < s || pr.raw + pr.raw_len > s + n || pr.raw_len == 0)
            abort();
        if (pr.name != pr.raw || pr.name_len > pr.raw_len)
            abort();
        if (memchr(pr.raw, sep, pr.raw_len) != NULL)
            abort();
        if (pr.has_value) {
            if (pr.value != pr.name + pr.name_len + 1 ||
                pr.name_len + 1 + pr.value_len != pr.raw_len)
                abort();
            if (memchr(pr.name, '=', pr.name_len) != NULL)
                abort();
        } else if (pr.name_len != pr.raw_len || pr.value_len != 0) {
            abort();
        }
        if (++count > n)
            abort(); /* more pairs than bytes: the walk does not advance */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    char *s = malloc(size ? size : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    walk(s, size, '&');
    walk(s, size, ';');
    free(s);
    return 0;
}
