/*
 * The head parser's bulk scan of field values (src/http/h1.c skip_value:
 * SSE2 16 bytes a step, AVX2 64 bytes a step, and a last vector that
 * overlaps bytes already checked) against a byte-at-a-time reference taken
 * from RFC 9110 section 5.5, over every byte value at every position of
 * values of many lengths, at several alignments, on three backgrounds, with
 * the AVX2 path on (where the CPU has it) and off.
 *
 * Each value sits in a buffer of exactly its size, and the bytes before it
 * are poisoned under AddressSanitizer, so a scan that reads one byte
 * outside [p, end) fails the ASan build.
 *
 * Includes the .c to reach its statics, as H2O's unit tests do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Before cmocka.h, whose fail() macro would take over h1.c's fail(). */
#include "../../../src/http/h1.c"

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* RFC 9110 section 5.5: field-value bytes are SP, HTAB, VCHAR, obs-text. */
static int ref_field_byte(unsigned char b)
{
    return b == '\t' || b == ' ' || (b >= 0x21 && b <= 0x7e) || b >= 0x80;
}

static const char *ref_skip_value(const char *p, const char *end)
{
    while (p < end && ref_field_byte((unsigned char)*p))
        p++;
    return p;
}

/* Background byte i: 0 plain ASCII, 1 ASCII with obs-text, HTAB and SP
 * mixed in (each stops the bulk scan), 2 obs-text only. */
static char background(int kind, size_t i)
{
    switch (kind) {
    case 0:
        return (char)('a' + i % 26);
    case 1:
        return (char)(i % 5 == 4 ? 0xe9 : i % 7 == 6 ? '\t' : i % 11 == 10 ? ' ' : 'A' + i % 26);
    default:
        return (char)(0x80 + i % 128);
    }
}

/* Every byte value at every position of a value of len bytes starting
 * align bytes into an exactly sized buffer. */
static void check_len(size_t len, size_t align, int kind)
{
    char *buf = malloc(align + len + 1);
    assert_non_null(buf);
    char *p = buf + align, *end = p + len;
    POISON(buf, align);
    for (size_t i = 0; i < len; i++)
        p[i] = background(kind, i);
    /* Every background byte is a field byte, so with byte b at pos the
     * reference stops at pos when b is not one, else at end. */
    assert_ptr_equal(ref_skip_value(p, end), end);
    assert_ptr_equal(skip_value(p, end), end);
    for (size_t pos = 0; pos < len; pos++) {
        char keep = p[pos];
        for (int b = 0; b < 256; b++) {
            p[pos] = (char)b;
            const char *got = skip_value(p, end);
            const char *want = ref_field_byte((unsigned char)b) ? end : p + pos;
            if (got != want)
                fail_msg("len %zu align %zu background %d: 0x%02x at %zu: stop at %td, want %td",
                         len, align, kind, b, pos, got - p, want - p);
        }
        p[pos] = keep;
    }
    UNPOISON(buf, align);
    free(buf);
}

static void run_all(void)
{
    /* Short values through the SSE2 steps, the 64- and 128-byte AVX2 steps
     * and the overlapping last vectors: every length to 160, at 4
     * alignments on the plain background, 1 on the others. */
    for (size_t len = 0; len <= 160; len++)
        for (int kind = 0; kind < 3; kind++)
            for (size_t align = 0; align < (kind == 0 ? 4u : 1u); align++)
                check_len(len, align + (size_t)kind, kind);
    /* Long values (a bearer token is 400 to 1,500 bytes). */
    static const size_t longer[] = {191, 192, 193, 255, 256, 257, 402, 658, 700};
    for (size_t i = 0; i < sizeof(longer) / sizeof(longer[0]); i++)
        for (int kind = 0; kind < 3; kind++)
            check_len(longer[i], i % 4, kind);
}

static void test_skip_value_bytes(void **state)
{
    (void)state;
    run_all();
}

/* The same with the AVX2 path off: SSE2 only (on a CPU without AVX2 both
 * runs take this path). */
static void test_skip_value_bytes_sse2(void **state)
{
    (void)state;
#ifdef HAVE_AVX2_PATH
    avx2_off = 1;
#endif
    run_all();
#ifdef HAVE_AVX2_PATH
    avx2_off = 0;
#endif
}

/* Two bytes that stop the scan, or a HTAB that only pauses it and a bad
 * byte after it: random pairs over long values. */
static void test_skip_value_pairs(void **state)
{
    (void)state;
    uint64_t r = 0x9e3779b97f4a7c15ull;
    static const unsigned char stops[] = {0x00, 0x01, '\t', '\n', '\r',
                                          0x1f, 0x7f, 0x80, 0xff, ' '};
    for (int avx = 0; avx < 2; avx++) {
#ifdef HAVE_AVX2_PATH
        avx2_off = avx;
#endif
        for (int n = 0; n < 50000; n++) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            size_t len = 1 + (size_t)(r % 720), align = (size_t)(r >> 12) % 32;
            size_t a = (size_t)(r >> 20) % len, b = (size_t)(r >> 32) % len;
            char *buf = malloc(align + len);
            assert_non_null(buf);
            char *p = buf + align, *end = p + len;
            for (size_t i = 0; i < len; i++)
                p[i] = background((int)(r >> 40) % 3, i);
            p[a] = (char)stops[(r >> 48) % sizeof(stops)];
            p[b] = (char)stops[(r >> 56) % sizeof(stops)];
            POISON(buf, align);
            if (skip_value(p, end) != ref_skip_value(p, end))
                fail_msg("len %zu: bytes 0x%02x at %zu and 0x%02x at %zu: stop at %td, want %td",
                         len, (unsigned char)p[a], a, (unsigned char)p[b], b,
                         skip_value(p, end) - p, ref_skip_value(p, end) - p);
            UNPOISON(buf, align);
            free(buf);
        }
    }
#ifdef HAVE_AVX2_PATH
    avx2_off = 0;
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skip_value_bytes),
        cmocka_unit_test(test_skip_value_bytes_sse2),
        cmocka_unit_test(test_skip_value_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
