/*
 * Unit tests for path normalization (src/http/path.c).
 *
 * A reference normalizer, written here the slow and obvious way (lex into
 * tokens, validate, split into segments, strip, merge, then a stack for
 * the dot segments, RFC 3986 section 5.2.4), is run on every path made of
 * up to N pieces of an alphabet of troublesome spellings, under every
 * option combination, and must agree with gh_path_normalize on the result
 * code and the output. Every output is also checked for the promises of
 * gatehouse/path.h: it starts with '/', normalizes to itself, and has no
 * segment that any reading (split at '/', '\', %2F, %5C; decode; drop
 * ";params") takes for "." or "..".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/path.h>

#define MAXP 256

/* ---- the reference ------------------------------------------------------ */

typedef struct {
    unsigned char v;
    int esc; /* came from %XX */
} tok_t;

typedef struct {
    size_t b, e; /* token range */
} range_t;

static int ref_hex(char c)
{
    const char *d = "0123456789abcdef", *u = "0123456789ABCDEF";
    for (int i = 0; i < 16; i++)
        if (c == d[i] || c == u[i])
            return i;
    return -1;
}

/* Decodes code points the long way and checks each is minimal, not a
 * surrogate and at most U+10FFFF. */
static int ref_utf8_ok(const tok_t *t, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = t[i].v;
        size_t len;
        unsigned long cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((t[i + k].v & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (t[i + k].v & 0x3F);
        }
        unsigned long min = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static int is_slash_tok(tok_t t)
{
    return (t.esc && (t.v == '/' || t.v == '\\')) || (!t.esc && t.v == '\\');
}

static int is_boundary(tok_t t, const gh_path_opts_t *o)
{
    return (!t.esc && t.v == '/') ||
           (o->escaped_slashes == GH_PATH_SLASHES_REDIRECT && is_slash_tok(t));
}

/* Decoded bytes of the range, cut at the first ';' (raw or escaped): "."
 * or ".."? */
static int ref_dotty(const tok_t *t, range_t r)
{
    char buf[MAXP];
    size_t n = 0;
    for (size_t i = r.b; i < r.e && t[i].v != ';'; i++)
        buf[n++] = (char)t[i].v;
    return (n == 1 && buf[0] == '.') || (n == 2 && buf[0] == '.' && buf[1] == '.');
}

static size_t ref_render(const tok_t *t, range_t r, char *o)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = r.b; i < r.e; i++) {
        unsigned char v = t[i].v;
        int unreserved = (v >= 'a' && v <= 'z') || (v >= 'A' && v <= 'Z') ||
                         (v >= '0' && v <= '9') || v == '-' || v == '.' || v == '_' || v == '~';
        if (!t[i].esc || unreserved) {
            o[n++] = (char)v;
        } else {
            o[n++] = '%';
            o[n++] = hex[v >> 4];
            o[n++] = hex[v & 15];
        }
    }
    return n;
}

static gh_path_result_t ref_normalize(const char *in, size_t len, const gh_path_opts_t *o,
                                      char *out, size_t *out_len)
{
    tok_t t[MAXP];
    size_t nt = 0;
    if (len == 0) {
        memcpy(out, "/", 1);
        *out_len = 1;
        return GH_PATH_OK;
    }
    if (!o->normalize) {
        memcpy(out, in, len);
        *out_len = len;
        return GH_PATH_OK;
    }
    if (in[0] != '/')
        return GH_PATH_REFUSE;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len || ref_hex(in[i + 1]) < 0 || ref_hex(in[i + 2]) < 0)
                return GH_PATH_REFUSE;
            unsigned char v = (unsigned char)(ref_hex(in[i + 1]) * 16 + ref_hex(in[i + 2]));
            if (v < 0x20 || v == 0x7f)
                return GH_PATH_REFUSE;
            t[nt++] = (tok_t){v, 1};
            i += 2;
        } else {
            if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
                return GH_PATH_REFUSE;
            t[nt++] = (tok_t){c, 0};
        }
    }
    if (!ref_utf8_ok(t, nt))
        return GH_PATH_REFUSE;
    int any_slash = 0;
    for (size_t i = 0; i < nt; i++) {
        if (is_slash_tok(t[i]))
            any_slash = 1;
        if (!t[i].esc && t[i].v == ';' && o->params == GH_PATH_PARAMS_REJECT)
            return GH_PATH_REFUSE;
    }
    if (any_slash && o->escaped_slashes == GH_PATH_SLASHES_REJECT)
        return GH_PATH_REFUSE;

    /* Segments: whole (for the dot test) and kept (after stripping). */
    range_t whole[MAXP], kept[MAXP];
    size_t ns = 0, b = 1;
    for (size_t i = 1; i <= nt; i++) {
        if (i < nt && !is_boundary(t[i], o))
            continue;
        whole[ns] = (range_t){b, i};
        kept[ns] = whole[ns];
        if (o->params == GH_PATH_PARAMS_STRIP)
            for (size_t k = b; k < i; k++)
                if (!t[k].esc && t[k].v == ';') {
                    kept[ns].e = k;
                    break;
                }
        ns++;
        b = i + 1;
    }

    /* Kept escaped slashes: no part between them may be a dot segment. */
    for (size_t s = 0; s < ns; s++) {
        if (ref_dotty(t, whole[s]))
            continue;
        size_t pb = kept[s].b;
        int has = 0, dot = 0;
        for (size_t k = kept[s].b; k <= kept[s].e; k++) {
            if (k < kept[s].e && !is_slash_tok(t[k]))
                continue;
            if (k < kept[s].e)
                has = 1;
            dot |= ref_dotty(t, (range_t){pb, k});
            pb = k + 1;
        }
        if (has && dot)
            return GH_PATH_REFUSE;
    }

    /* Merge, then the dot segments on a stack of rendered segments. */
    static char stack[MAXP][3 * MAXP];
    size_t slen[MAXP], depth = 0;
    for (size_t s = 0; s < ns; s++) {
        int last = s + 1 == ns;
        int dotty = ref_dotty(t, whole[s]);
        if (!dotty && kept[s].e == kept[s].b && o->merge_slashes && !last)
            continue;
        if (!dotty) {
            slen[depth] = ref_render(t, kept[s], stack[depth]);
            depth++;
            continue;
        }
        size_t dots = 0;
        for (size_t k = whole[s].b; k < whole[s].e && t[k].v == '.'; k++)
            dots++;
        if (dots == 2 && depth > 0)
            depth--;
        if (last)
            slen[depth++] = 0;
    }
    size_t n = 0;
    for (size_t d = 0; d < depth; d++) {
        out[n++] = '/';
        memcpy(out + n, stack[d], slen[d]);
        n += slen[d];
    }
    if (n == 0)
        out[n++] = '/';
    *out_len = n;
    if (!any_slash || o->escaped_slashes != GH_PATH_SLASHES_REDIRECT)
        return GH_PATH_OK;
    /* A Location of "//host" (or "///host") leaves for another host. */
    return n >= 2 && out[1] == '/' ? GH_PATH_REFUSE : GH_PATH_REDIRECT;
}

/* ---- invariants of an output ------------------------------------------- */

/* No piece between '/', '\', %2F, %5C decodes (cut at ';') to "." or "..". */
static int has_dot_reading(const char *p, size_t n)
{
    size_t i = 0;
    while (i <= n) {
        char piece[3 * MAXP];
        size_t k = 0;
        int cut = 0;
        while (i < n) {
            unsigned char v = (unsigned char)p[i];
            size_t step = 1;
            if (v == '%' && i + 2 < n) {
                v = (unsigned char)(ref_hex(p[i + 1]) * 16 + ref_hex(p[i + 2]));
                step = 3;
            }
            if (v == '/' || v == '\\')
                break;
            if (v == ';')
                cut = 1;
            if (!cut)
                piece[k++] = (char)v;
            i += step;
        }
        if ((k == 1 && piece[0] == '.') || (k == 2 && piece[0] == '.' && piece[1] == '.'))
            return 1;
        if (i >= n)
            break;
        i += p[i] == '%' ? 3 : 1;
    }
    return 0;
}

static void check_output(const char *in, size_t len, const gh_path_opts_t *o, const char *out,
                         size_t n, gh_path_result_t r)
{
    (void)in;
    assert_true(n >= 1 && n <= GH_PATH_OUT_MAX(len));
    if (!o->normalize)
        return;
    assert_int_equal(out[0], '/');
    assert_false(has_dot_reading(out, n));
    for (size_t i = 0; i < n; i++)
        if (out[i] == '%') {
            assert_true(i + 2 < n);
            assert_true(strchr("0123456789ABCDEF", out[i + 1]) != NULL);
            assert_true(strchr("0123456789ABCDEF", out[i + 2]) != NULL);
        }
    /* Idempotent; a redirect's Location is itself a path that passes. */
    char again[3 * MAXP];
    size_t n2 = 0;
    const char *why = NULL;
    gh_path_result_t r2 = gh_path_normalize(out, n, o, again, &n2, &why);
    assert_int_equal(r2, GH_PATH_OK);
    assert_int_equal(n2, n);
    assert_memory_equal(again, out, n);
    if (r == GH_PATH_REDIRECT) {
        assert_true(memchr(out, '\\', n) == NULL);
        assert_false(n >= 2 && out[1] == '/');
    }
}

static void compare(const char *in, size_t len, const gh_path_opts_t *o)
{
    char want[3 * MAXP + 1];
    size_t wn = 0, gn = 0;
    const char *why = NULL;
    /* A buffer of exactly the promised size, so ASan sees a write past it. */
    char *exact = malloc(GH_PATH_OUT_MAX(len));
    char *copy = malloc(len ? len : 1);
    assert_non_null(exact);
    assert_non_null(copy);
    memcpy(copy, in, len);
    gh_path_result_t wr = ref_normalize(in, len, o, want, &wn);
    gh_path_result_t gr = gh_path_normalize(copy, len, o, exact, &gn, &why);
    if (gr != wr || (gr != GH_PATH_REFUSE && (gn != wn || memcmp(exact, want, gn) != 0))) {
        print_error("path '%.*s' opts {%d,%d,%d,%d}: want %d '%.*s', got %d '%.*s' (%s)\n",
                    (int)len, in, o->normalize, o->merge_slashes, (int)o->escaped_slashes,
                    (int)o->params, (int)wr, (int)wn, want, (int)gr, (int)gn, exact,
                    why ? why : "");
        fail();
    }
    if (gr == GH_PATH_REFUSE) {
        assert_non_null(why);
    } else {
        check_output(in, len, o, exact, gn, gr);
    }
    free(exact);
    free(copy);
}

/* ---- exhaustive --------------------------------------------------------- */

static const char *const alphabet[] = {"/",   ".",  "..", "%2e", "%2E", "%2f", "%5c",
                                       "\\",  ";",  "a",  "%61", "//",  "%3b", "%C0",
                                       "%AE", ";x", "%",  "%00", "%41", "b;"};
#define NALPHA (sizeof(alphabet) / sizeof(alphabet[0]))

static size_t count;

static void walk(char *buf, size_t len, size_t depth, size_t max, size_t nalpha,
                 const gh_path_opts_t *o)
{
    compare(buf, len, o);
    count++;
    if (depth == max)
        return;
    for (size_t i = 0; i < nalpha; i++) {
        size_t k = strlen(alphabet[i]);
        memcpy(buf + len, alphabet[i], k);
        walk(buf, len + k, depth + 1, max, nalpha, o);
    }
}

static void each_opts(size_t max, size_t nalpha, int all)
{
    char buf[MAXP];
    for (int merge = 0; merge <= 1; merge++)
        for (int sl = 0; sl <= 2; sl++)
            for (int pa = 0; pa <= 2; pa++) {
                gh_path_opts_t o = {1, merge, (gh_path_slashes_t)sl, (gh_path_params_t)pa};
                if (!all && !(merge == 1 && sl == 0 && pa == 0))
                    continue;
                /* Paths start with '/' (one more piece), plus the bare ones. */
                buf[0] = '/';
                walk(buf, 1, 0, max, nalpha, &o);
                walk(buf, 0, 0, 1, nalpha, &o);
            }
}

/* The first 12 pieces (the alphabet), 5 deep, every option set. */
static void test_exhaustive_all_options(void **state)
{
    (void)state;
    count = 0;
    each_opts(5, 12, 1);
    assert_true(count > 4000000);
}

/* The whole alphabet, 4 deep, every option set. */
static void test_exhaustive_wide(void **state)
{
    (void)state;
    count = 0;
    each_opts(4, NALPHA, 1);
    assert_true(count > 3000000);
}

/* ---- handwritten -------------------------------------------------------- */

typedef struct {
    const char *in;
    gh_path_result_t r;
    const char *out; /* when not refused */
} case_t;

static void run_cases(const case_t *cs, size_t n, const gh_path_opts_t *o)
{
    for (size_t i = 0; i < n; i++) {
        char out[3 * MAXP];
        size_t on = 0;
        const char *why = NULL;
        size_t len = strlen(cs[i].in);
        gh_path_result_t r = gh_path_normalize(cs[i].in, len, o, out, &on, &why);
        if (r != cs[i].r ||
            (r != GH_PATH_REFUSE && (on != strlen(cs[i].out) || memcmp(out, cs[i].out, on)))) {
            print_error("'%s': want %d '%s', got %d '%.*s' (%s)\n", cs[i].in, (int)cs[i].r,
                        cs[i].out ? cs[i].out : "", (int)r, (int)on, out, why ? why : "");
            fail();
        }
        compare(cs[i].in, len, o);
    }
}

#define OK(in, out)                                                                                \
    {                                                                                              \
        in, GH_PATH_OK, out                                                                        \
    }
#define NO(in)                                                                                     \
    {                                                                                              \
        in, GH_PATH_REFUSE, NULL                                                                   \
    }
#define RD(in, out)                                                                                \
    {                                                                                              \
        in, GH_PATH_REDIRECT, out                                                                  \
    }

static void test_defaults(void **state)
{
    (void)state;
    static const case_t cs[] = {
        OK("", "/"),
        OK("/", "/"),
        OK("/public/../admin", "/admin"),
        OK("/public/%2e%2e/admin", "/admin"),
        OK("/public/%2E%2E/admin", "/admin"),
        OK("/public/.%2e/admin", "/admin"),
        OK("/public/..;/admin", "/admin"),
        OK("/public/..;x=1/admin", "/admin"),
        OK("/public/.;x/admin", "/public/admin"),
        OK("/public/..%3b/admin", "/admin"),
        OK("/public/%2e%2e%3Bx/admin", "/admin"),
        OK("/%61dmin", "/admin"),
        OK("/%41%7a%30-%5f.%7E", "/Az0-_.~"),
        OK("//admin", "/admin"),
        OK("///admin//x//", "/admin/x/"),
        OK("/a/b/c/./../../g", "/a/g"),
        OK("/mid/content=5/../6", "/mid/6"),
        OK("/a/b/..", "/a/"),
        OK("/a/b/.", "/a/b/"),
        OK("/..", "/"),
        OK("/../../..", "/"),
        OK("/...", "/..."),
        OK("/..a/a..", "/..a/a.."),
        OK("/admin;jsessionid=1", "/admin"),
        OK("/admin;x/secret", "/admin/secret"),
        OK("/a;b;c/d", "/a/d"),
        OK("/%3b/x", "/%3B/x"),
        OK("/a%3bb", "/a%3Bb"),
        OK("/%c3%a9t%C3%A9", "/%C3%A9t%C3%A9"),
        OK("/%25%32%65", "/%252e"),
        OK("/a%20b", "/a%20b"),
        OK("/:@!$&'()*+,=", "/:@!$&'()*+,="),
        NO("/public/..%2fadmin"),
        NO("/public/..%2Fadmin"),
        NO("/public/%2e%2e%5cadmin"),
        NO("/public/..\\admin"),
        NO("/a%2fb"),
        NO("/a\\b"),
        NO("/%"),
        NO("/%2"),
        NO("/%zz"),
        NO("/%2g"),
        NO("/a%00b"),
        NO("/%0a"),
        NO("/%1F"),
        NO("/%7f"),
        NO("/%c0%ae%c0%ae/admin"),
        NO("/%e0%80%ae"),
        NO("/%ed%a0%80"),
        NO("/%f4%90%80%80"),
        NO("/%c3"),
        NO("/%c3/"),
        NO("/%80"),
        NO("/%ff"),
        NO("/a b"),
        NO("/a?b"),
        NO("/a#b"),
        NO("*"),
        NO("admin"),
        NO("http://x/"),
    };
    gh_path_opts_t o = GH_PATH_OPTS_DEFAULT;
    run_cases(cs, sizeof(cs) / sizeof(cs[0]), &o);
}

static void test_keep_slashes(void **state)
{
    (void)state;
    static const case_t cs[] = {
        OK("/a%2fb", "/a%2Fb"),
        OK("/a\\b", "/a\\b"),
        OK("/a%5cb/../c", "/c"),
        OK("/group%2Fproject/x", "/group%2Fproject/x"),
        OK("/a%2F/b", "/a%2F/b"),
        NO("/public/..%2fadmin"),
        NO("/public/%2e%2e%5cadmin"),
        NO("/public/..\\admin"),
        NO("/public%2f..%2fadmin"),
        NO("/x%2f."),
        NO("/x\\.;p"),
        NO("/x%2F..;p"),
        OK("/x;p%2F..", "/x"),   /* stripped with the params */
        OK("/..;p%2Fx/a", "/a"), /* a dot segment, params and all */
        OK("/%2f%2f", "/%2F%2F"),
    };
    gh_path_opts_t o = {1, 1, GH_PATH_SLASHES_KEEP, GH_PATH_PARAMS_STRIP};
    run_cases(cs, sizeof(cs) / sizeof(cs[0]), &o);
    static const case_t kp[] = {
        NO("/x;p%2F.."),
        OK("/x;p%2Fy", "/x;p%2Fy"),
        OK("/a;b/c", "/a;b/c"),
        OK("/a/..;b/c", "/c"),
    };
    o.params = GH_PATH_PARAMS_KEEP;
    run_cases(kp, sizeof(kp) / sizeof(kp[0]), &o);
}

static void test_redirect(void **state)
{
    (void)state;
    static const case_t cs[] = {
        RD("/public/..%2fadmin", "/admin"),
        RD("/public/%2e%2e%5cadmin", "/admin"),
        RD("/public/..\\admin", "/admin"),
        RD("/a%2Fb", "/a/b"),
        RD("/a%2F%2Fb", "/a/b"),
        RD("/a%2F", "/a/"),
        OK("/a/b", "/a/b"),
        NO("/a%2F%00"),
    };
    gh_path_opts_t o = {1, 1, GH_PATH_SLASHES_REDIRECT, GH_PATH_PARAMS_STRIP};
    run_cases(cs, sizeof(cs) / sizeof(cs[0]), &o);
}

static void test_no_merge(void **state)
{
    (void)state;
    static const case_t cs[] = {
        OK("//admin", "//admin"), OK("/a//b/", "/a//b/"), OK("/a//..", "/a/"),
        OK("/a//.", "/a//"),      OK("/a/..//b", "//b"),
    };
    gh_path_opts_t o = {1, 0, GH_PATH_SLASHES_REJECT, GH_PATH_PARAMS_STRIP};
    run_cases(cs, sizeof(cs) / sizeof(cs[0]), &o);
    /* A redirect to "//evil.example" would be an open redirect. */
    static const case_t rd[] = {
        NO("/%2F%2Fevil.example"), NO("/%5c%5cevil.example"),     NO("//%2Fevil.example"),
        NO("/\\\\evil.example"),   NO("/a/..%2F%2Fevil.example"), RD("/a%2F%2Fb", "/a//b"),
    };
    o.escaped_slashes = GH_PATH_SLASHES_REDIRECT;
    run_cases(rd, sizeof(rd) / sizeof(rd[0]), &o);
}

static void test_params(void **state)
{
    (void)state;
    static const case_t keep[] = {
        OK("/a;b=1/c", "/a;b=1/c"),
        OK("/a/..;/b", "/b"),
        OK("/;x/b", "/;x/b"),
    };
    gh_path_opts_t o = {1, 1, GH_PATH_SLASHES_REJECT, GH_PATH_PARAMS_KEEP};
    run_cases(keep, sizeof(keep) / sizeof(keep[0]), &o);
    static const case_t reject[] = {
        NO("/a;b"),
        NO("/..;/admin"),
        OK("/a%3bb", "/a%3Bb"),
    };
    o.params = GH_PATH_PARAMS_REJECT;
    run_cases(reject, sizeof(reject) / sizeof(reject[0]), &o);
    static const case_t strip[] = {
        OK("/;x/b", "/b"),
        OK("/a/;x", "/a/"),
    };
    o.params = GH_PATH_PARAMS_STRIP;
    run_cases(strip, sizeof(strip) / sizeof(strip[0]), &o);
}

static void test_off(void **state)
{
    (void)state;
    gh_path_opts_t o = {0, 1, GH_PATH_SLASHES_REJECT, GH_PATH_PARAMS_STRIP};
    char out[64];
    size_t n = 0;
    const char *why = NULL;
    assert_int_equal(gh_path_normalize("/a/../%2f%zz", 12, &o, out, &n, &why), GH_PATH_OK);
    assert_int_equal(n, 12);
    assert_memory_equal(out, "/a/../%2f%zz", 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_keep_slashes),
        cmocka_unit_test(test_redirect),
        cmocka_unit_test(test_no_merge),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_off),
        cmocka_unit_test(test_exhaustive_all_options),
        cmocka_unit_test(test_exhaustive_wide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
