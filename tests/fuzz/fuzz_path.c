/* libFuzzer target: path normalization (src/http/path.c). The first byte
 * picks the options, the rest is the path. Checks that the output fits the
 * promised size, starts with '/', has only upper-case escapes, has no
 * segment that any reading (split at '/', '\', %2F, %5C; decoded; cut at
 * ';') takes for "." or "..", and normalizes to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/path.h>

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void check_escapes(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '%' && (i + 2 >= n || hexv(p[i + 1]) < 0 || hexv(p[i + 2]) < 0))
            abort();
}

static int is_dot(const char *piece, size_t k)
{
    return (k == 1 && piece[0] == '.') || (k == 2 && piece[0] == '.' && piece[1] == '.');
}

static void check_no_dot_reading(const char *p, size_t n)
{
    char piece[8];
    size_t k = 0;
    int cut = 0;
    for (size_t i = 0; i <= n;) {
        unsigned char v = 0;
        size_t step = 1;
        if (i < n) {
            v = (unsigned char)p[i];
            if (v == '%') {
                v = (unsigned char)(hexv(p[i + 1]) * 16 + hexv(p[i + 2]));
                step = 3;
            }
        }
        if (i == n || v == '/' || v == '\\') {
            if (is_dot(piece, k))
                abort();
            k = 0;
            cut = 0;
            i += step;
            continue;
        }
        if (v == ';')
            cut = 1;
        if (!cut && k < sizeof(piece))
            piece[k++] = (char)v;
        else if (!cut)
            piece[0] = 'x'; /* long: not a dot segment */
        i += step;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    gh_path_opts_t o = {1, data[0] & 1, (gh_path_slashes_t)((data[0] >> 1) % 3),
                        (gh_path_params_t)((data[0] >> 3) % 3)};
    size_t len = size - 1;
    /* Exact sizes, so ASan sees any access past either end. */
    char *in = malloc(len ? len : 1), *out = malloc(GH_PATH_OUT_MAX(len));
    char *again = malloc(GH_PATH_OUT_MAX(len));
    if (in == NULL || out == NULL || again == NULL)
        abort();
    memcpy(in, data + 1, len);
    size_t n = 0, n2 = 0;
    const char *why = NULL;
    gh_path_result_t r = gh_path_normalize(in, len, &o, out, &n, &why);
    if (r == GH_PATH_REFUSE) {
        if (why == NULL)
            abort();
    } else {
        if (n == 0 || n > GH_PATH_OUT_MAX(len) || out[0] != '/')
            abort();
        check_escapes(out, n);
        check_no_dot_reading(out, n);
        if (gh_path_normalize(out, n, &o, again, &n2, &why) != GH_PATH_OK || n2 != n ||
            memcmp(again, out, n) != 0)
            abort();
        if (r == GH_PATH_REDIRECT && o.escaped_slashes != GH_PATH_SLASHES_REDIRECT)
            abort();
        if (r == GH_PATH_REDIRECT && n > 1 && out[1] == '/')
            abort(); /* a Location that leaves for another host */
    }
    free(in);
    free(out);
    free(again);
    return 0;
}
