/* Base64url: strict decoding (no padding, alphabet, trailing bits). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/jwt.h>

#include "jose/b64url.h"

/* ---- base64url ---- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char out[16];
    char enc[16];
    assert_int_equal(gh_b64url_encode("f", 1, enc), 2);
    assert_string_equal(enc, "Zg");
    assert_int_equal(gh_b64url_encode("\xfb\xff", 2, enc), 3);
    assert_string_equal(enc, "-_8");
    assert_int_equal(gh_b64url_decode("-_8", 3, out), 2);
    assert_int_equal(gh_b64url_decode("Zm9v", 4, out), 3);
    assert_int_equal(gh_b64url_decode("", 0, out), 0);
    assert_int_equal(gh_b64url_decode("Zg==", 4, out), -1); /* padding */
    assert_int_equal(gh_b64url_decode("+/8", 3, out), -1);  /* standard alphabet */
    assert_int_equal(gh_b64url_decode("Zm 9", 4, out), -1); /* whitespace */
    assert_int_equal(gh_b64url_decode("Zh", 2, out), -1);   /* non-zero trailing bits */
    assert_int_equal(gh_b64url_decode("Zm8", 3, out), 2);
    assert_memory_equal(out, "fo", 2);
    assert_int_equal(gh_b64url_decode("Zm9", 3, out), -1);   /* '9' ends in 01: loose bits */
    assert_int_equal(gh_b64url_decode("Zm9vY", 5, out), -1); /* 4k+1 */
    assert_int_equal(gh_b64url_decode("Zm\0v", 4, out), -1);
}

/* Every length round-trips (the decoder takes eight characters a step, then
 * four, then the tail), and a bad character anywhere is refused. */
static void test_b64url_every_length_and_position(void **state)
{
    (void)state;
    unsigned char in[64], out[64];
    char enc[GH_B64URL_ENC_LEN(64) + 1];
    for (size_t n = 0; n <= sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 37 + n);
        size_t el = gh_b64url_encode(in, n, enc);
        assert_int_equal(gh_b64url_decode(enc, el, out), (long)n);
        assert_memory_equal(out, in, n);
        for (size_t at = 0; at < el; at++) {
            char keep = enc[at];
            enc[at] = at % 2 ? '=' : '+';
            assert_int_equal(gh_b64url_decode(enc, el, out), -1);
            enc[at] = keep;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_b64url_every_length_and_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
