/*
 * Head-end scanning (src/proxy/headscan.c): the full parser runs only when
 * the new bytes can complete or refuse a head, and each byte is looked at a
 * bounded number of times however the head is split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/headscan.h"

/* Counts the reads of a byte by wrapping memchr: each call of the scanner's
 * memchr is charged with the bytes it may look at. */
static size_t examined;
#define memchr counting_memchr
static void *counting_memchr(const void *s, int c, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++) {
        examined++;
        if (p[i] == (unsigned char)c)
            return (void *)(p + i);
    }
    return NULL;
}
#include "../../../src/proxy/headscan.c"
#undef memchr

/* A 64 KiB head sent a byte at a time: every split position of the blank
 * line is found, only at its last byte, and the scanning stays linear. */
static void test_byte_at_a_time_is_linear(void **state)
{
    (void)state;
    size_t n = 65536;
    char *head = malloc(n);
    memcpy(head, "GET / HTTP/1.1\r\n", 16);
    size_t i = 16;
    while (i + 2 < n - 2) { /* header lines of 100 bytes */
        size_t line = n - 2 - i < 100 ? n - 2 - i : 100;
        memset(head + i, 'a', line - 2);
        head[i] = 'X';
        head[i + 1] = ':';
        head[i + line - 2] = '\r';
        head[i + line - 1] = '\n';
        i += line;
    }
    head[n - 2] = '\r';
    head[n - 1] = '\n';
    assert_memory_equal(head + n - 4, "\r\n\r\n", 4);
    size_t scanned = 0;
    examined = 0;
    for (size_t len = 1; len < n; len++) {
        if (gh_head_scan(head, len, &scanned) != 0)
            fail_msg("head end reported at %zu of %zu", len, n);
        assert_int_equal(scanned, len);
    }
    assert_int_equal(gh_head_scan(head, n, &scanned), 1);
    /* each byte at most 4 times (3 bytes of overlap per call) */
    if (examined > 4 * n)
        fail_msg("%zu bytes examined for a %zu-byte head", examined, n);
    free(head);
}

/* The blank line cut across two reads at each of its positions. */
static void test_blank_line_split(void **state)
{
    (void)state;
    static const char h[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t n = sizeof(h) - 1;
    for (size_t cut = 1; cut < n; cut++) {
        size_t scanned = 0;
        assert_int_equal(gh_head_scan(h, cut, &scanned), 0);
        assert_int_equal(gh_head_scan(h, n, &scanned), 1);
    }
}

/* Bytes already scanned are not looked at again (beyond the 3 of overlap):
 * a blank line planted there is not seen. */
static void test_old_bytes_not_rescanned(void **state)
{
    (void)state;
    char buf[64];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "\r\n\r\n", 4);
    size_t scanned = 40;
    examined = 0;
    assert_int_equal(gh_head_scan(buf, 50, &scanned), 0);
    assert_int_equal(scanned, 50);
    assert_true(examined <= 13);
}

static void test_bare_lf_goes_to_the_parser(void **state)
{
    (void)state;
    size_t scanned = 0;
    assert_int_equal(gh_head_scan("GET / HTTP/1.1\n", 15, &scanned), 1);
    scanned = 0;
    assert_int_equal(gh_head_scan("\n", 1, &scanned), 1);
    scanned = 0;
    assert_int_equal(gh_head_scan("GET / HTTP/1.1\r\nA: b\r\n", 23, &scanned), 0);
    /* a shrunk buffer starts over rather than skipping bytes */
    scanned = 100;
    assert_int_equal(gh_head_scan("A\r\n\r\n", 5, &scanned), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_at_a_time_is_linear),
        cmocka_unit_test(test_blank_line_split),
        cmocka_unit_test(test_old_bytes_not_rescanned),
        cmocka_unit_test(test_bare_lf_goes_to_the_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
