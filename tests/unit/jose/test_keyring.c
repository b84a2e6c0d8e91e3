/*
 * Keyrings (src/jose/keyring.c), the parts that need no network: which
 * jwks_uri a metadata document may name, Cache-Control max-age parsing, and
 * gh_keyring_check (the side-effect-free load check a reload and `validate --apply-checks` use
 * (gh_apply_check_jwks)).
 *
 * Includes the .c to reach its statics, as H2O's unit tests do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../src/jose/keyring.c"

static void test_jwks_uri_from_metadata(void **state)
{
    (void)state;
    char err[256];
    /* https document: only an https jwks_uri, insecure_http or not. */
    assert_int_equal(jwks_uri_usable("https://as/.well-known/x", "https://as/k", 0, err, 256), 0);
    assert_int_equal(jwks_uri_usable("https://as/.well-known/x", "https://as/k", 1, err, 256), 0);
    assert_int_equal(jwks_uri_usable("https://as/.well-known/x", "http://as/k", 0, err, 256), -1);
    assert_int_equal(jwks_uri_usable("https://as/.well-known/x", "http://as/k", 1, err, 256), -1);
    assert_non_null(strstr(err, "in an https document"));
    /* http document (insecure_http set to fetch it at all). */
    assert_int_equal(jwks_uri_usable("http://as/.well-known/x", "http://as/k", 1, err, 256), 0);
    assert_int_equal(jwks_uri_usable("http://as/.well-known/x", "http://as/k", 0, err, 256), -1);
    assert_non_null(strstr(err, "insecure_http"));
    /* Neither. */
    assert_int_equal(jwks_uri_usable("https://as/x", "ftp://as/k", 1, err, 256), -1);
    assert_int_equal(jwks_uri_usable("https://as/x", "HTTP://as/k", 1, err, 256), -1);
    assert_int_equal(jwks_uri_usable("https://as/x", NULL, 1, err, 256), -1);
}

static long max_age_of(const char *line)
{
    long v = -1;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", line);
    on_header(buf, 1, strlen(buf), &v);
    return v;
}

/* Seconds from the header become milliseconds in a uint64_t: a value past
 * 2^64/1000 used to wrap around to a small interval. */
static void test_max_age_parse(void **state)
{
    (void)state;
    assert_int_equal(max_age_of("Cache-Control: max-age=300\r\n"), 300);
    assert_int_equal(max_age_of("cache-control: public, MAX-AGE=60\r\n"), 60);
    assert_int_equal(max_age_of("Cache-Control: max-age=18446744073709552\r\n"), 31536000);
    assert_int_equal(max_age_of("Cache-Control: max-age=99999999999999999999999\r\n"), 31536000);
    assert_int_equal(max_age_of("Cache-Control: max-age=-5\r\n"), -1);
    assert_int_equal(max_age_of("Cache-Control: no-store, max-age=60\r\n"), -1);
    assert_int_equal(max_age_of("Expires: 0\r\n"), -1);
}

static const char jwks_es256[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\",\"kid\":\"k\"}]}";

static void test_keyring_check(void **state)
{
    (void)state;
    char err[512];
    char name[] = "corp", inline_doc[sizeof(jwks_es256)], empty[] = "{\"keys\":[]}",
         uri[] = "https://127.0.0.1:9/jwks.json";
    memcpy(inline_doc, jwks_es256, sizeof(jwks_es256));
    gh_jwt_provider_conf_t p;
    memset(&p, 0, sizeof(p));
    p.name = name;
    p.jwks_source = GH_JWKS_INLINE;
    p.jwks_inline = inline_doc;
    assert_int_equal(gh_keyring_check(&p, err, sizeof(err)), 0);
    p.jwks_inline = empty;
    assert_int_equal(gh_keyring_check(&p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "provider 'corp'"));

    char path[] = "/tmp/gh-test-keyring-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, jwks_es256, strlen(jwks_es256)), (ssize_t)strlen(jwks_es256));
    close(fd);
    p.jwks_source = GH_JWKS_FILE;
    p.jwks_file = path;
    assert_int_equal(gh_keyring_check(&p, err, sizeof(err)), 0);
    unlink(path);
    assert_int_equal(gh_keyring_check(&p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));

    /* Fetched sets are never checked here: a reload must not wait on them. */
    p.jwks_source = GH_JWKS_URI;
    p.jwks_uri = uri;
    assert_int_equal(gh_keyring_check(&p, err, sizeof(err)), 0);
    /* No keyring was created. */
    assert_null(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwks_uri_from_metadata),
        cmocka_unit_test(test_max_age_parse),
        cmocka_unit_test(test_keyring_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
