/*
 * src/store/client.c: OAuth client ids and secrets (form, randomness),
 * the secret comparison at the edges of a rotation grace, and the checks
 * of what a client is registered with (names, scopes, audiences, methods,
 * JWKS), with odd bytes and absurd sizes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/client.h>

static void test_id_and_secret_forms(void **state)
{
    (void)state;
    char id[GH_CLIENT_ID_LEN + 1], other[GH_CLIENT_ID_LEN + 1], s[GH_CLIENT_SECRET_LEN + 1];
    int seen32[256] = {0}, seen62[256] = {0};
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(gh_client_id_generate(id), 0);
        assert_int_equal(strlen(id), GH_CLIENT_ID_LEN);
        assert_true(gh_client_id_valid(id));
        assert_memory_equal(id, "ghc_", 4);
        for (int k = 4; k < GH_CLIENT_ID_LEN; k++)
            seen32[(unsigned char)id[k]]++;
        assert_int_equal(gh_client_secret_generate(s), 0);
        assert_int_equal(strlen(s), GH_CLIENT_SECRET_LEN);
        assert_true(gh_client_secret_valid_n(s, strlen(s)));
        assert_false(gh_client_id_valid(s));
        for (int k = 4; k < GH_CLIENT_SECRET_LEN; k++)
            seen62[(unsigned char)s[k]]++;
    }
    /* every character of each alphabet turns up (a stuck bit would not) */
    const char *b32 = "abcdefghijklmnopqrstuvwxyz234567";
    const char *b62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (const char *p = b32; *p; p++)
        assert_true(seen32[(unsigned char)*p] > 0);
    for (const char *p = b62; *p; p++)
        assert_true(seen62[(unsigned char)*p] > 0);
    assert_int_equal(gh_client_id_generate(other), 0);
    assert_string_not_equal(id, other);

    const char *bad_ids[] = {"",
                             "ghc_",
                             "ghc_aaaaaaaaaaaaaaa",
                             "ghc_aaaaaaaaaaaaaaaaa",
                             "ghc_aaaaaaaaaaaaaaa8",
                             "ghc_AAAAAAAAAAAAAAAA",
                             "ghc-aaaaaaaaaaaaaaaa",
                             "ghc_aaaaaaaaaaaaaaa\x80",
                             NULL};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
        assert_false(gh_client_id_valid(bad_ids[i]));
    assert_true(gh_client_id_valid("ghc_abcdefghijklmn27"));
    /* the _n form: a NUL inside, or extra bytes, is not an id */
    assert_false(gh_client_id_valid_n("ghc_abcdefghij\0lmn27", 20));
    assert_false(gh_client_id_valid_n("ghc_abcdefghijklmn27x", 21));
    assert_true(gh_client_id_valid_n("ghc_abcdefghijklmn27x", 20));
    assert_false(gh_client_secret_valid_n("ghs_", 4));
    memcpy(s + 10, "-", 1);
    assert_false(gh_client_secret_valid_n(s, strlen(s)));
}

static void test_secret_check(void **state)
{
    (void)state;
    char s0[GH_CLIENT_SECRET_LEN + 1], s1[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c = {.has_secret = 1};
    assert_int_equal(gh_client_secret_generate(s0), 0);
    assert_int_equal(gh_client_secret_generate(s1), 0);
    gh_client_secret_hash(s1, strlen(s1), c.secret_hash);
    assert_int_equal(gh_client_secret_check(&c, s1, strlen(s1), 100), 1);
    assert_int_equal(gh_client_secret_check(&c, s0, strlen(s0), 100), 0);
    /* the previous secret: only before prev_valid_until */
    gh_client_secret_hash(s0, strlen(s0), c.prev_secret_hash);
    assert_int_equal(gh_client_secret_check(&c, s0, strlen(s0), 100), 0); /* no end: none */
    c.prev_valid_until = 200;
    assert_int_equal(gh_client_secret_check(&c, s0, strlen(s0), 199), 2);
    assert_int_equal(gh_client_secret_check(&c, s0, strlen(s0), 200), 0);
    assert_int_equal(gh_client_secret_check(&c, s1, strlen(s1), 1000), 1);
    /* a secret of the right hash but not the form of a secret: refused */
    const char odd[] = "not a secret";
    gh_client_secret_hash(odd, strlen(odd), c.secret_hash);
    assert_int_equal(gh_client_secret_check(&c, odd, strlen(odd), 100), 0);
    /* a client without a secret matches nothing, zeros included */
    gh_client_t none = {.has_secret = 0};
    uint8_t zeros[GH_CLIENT_HASH_LEN] = {0};
    assert_int_equal(gh_client_secret_check_hash(&none, zeros, 0), 0);
    /* the whole presented value counts: a longer or cut value differs */
    gh_client_secret_hash(s1, strlen(s1), c.secret_hash);
    char longer[GH_CLIENT_SECRET_LEN + 2];
    snprintf(longer, sizeof(longer), "%sA", s1);
    assert_int_equal(gh_client_secret_check(&c, longer, strlen(longer), 0), 0);
    assert_int_equal(gh_client_secret_check(&c, s1, GH_CLIENT_SECRET_LEN - 1, 0), 0);
}

static void test_lists(void **state)
{
    (void)state;
    const char *why = NULL;
    char *s = gh_client_scopes_normalize("  a,b  c,,d ", &why);
    assert_string_equal(s, "a b c d");
    free(s);
    s = gh_client_scopes_normalize(NULL, &why);
    assert_string_equal(s, "");
    free(s);
    /* RFC 6749's scope-token: %x21 / %x23-5B / %x5D-7E */
    s = gh_client_scopes_normalize("!#[]~", &why);
    assert_string_equal(s, "!#[]~");
    free(s);
    const char *bad_scopes[] = {"a\"", "\\", "a\x01", "\x7f", "caf\xc3\xa9", "a a"};
    for (size_t i = 0; i < sizeof(bad_scopes) / sizeof(bad_scopes[0]); i++) {
        why = NULL;
        assert_null(gh_client_scopes_normalize(bad_scopes[i], &why));
        assert_non_null(why);
    }
    s = gh_client_audiences_normalize("https://a.example/x urn:example:y orders", &why);
    assert_string_equal(s, "https://a.example/x urn:example:y orders");
    free(s);
    const char *bad_auds[] = {"", "https://a/#x", "-x:y", "a:b:c c\"", "a b a", "x\x7f"};
    for (size_t i = 0; i < sizeof(bad_auds) / sizeof(bad_auds[0]); i++) {
        why = NULL;
        assert_null(gh_client_audiences_normalize(bad_auds[i], &why));
        assert_non_null(why);
    }
    assert_true(gh_client_list_has("a bb c", "bb", 2));
    assert_false(gh_client_list_has("a bb c", "b", 1));
    assert_false(gh_client_list_has("a bb c", "bb c", 4));
    assert_false(gh_client_list_has("", "", 0));
    assert_false(gh_client_list_has(NULL, "a", 1));
}

static void test_methods_and_names(void **state)
{
    (void)state;
    unsigned m;
    const char *why;
    char buf[64];
    assert_int_equal(gh_client_auth_parse("private_key_jwt,client_secret_basic", &m, &why), 0);
    assert_int_equal(m, GH_CLIENT_AUTH_PRIVATE_KEY_JWT | GH_CLIENT_AUTH_SECRET_BASIC);
    assert_string_equal(gh_client_auth_format(m, buf, sizeof(buf)),
                        "client_secret_basic private_key_jwt");
    assert_int_equal(gh_client_auth_parse("", &m, &why), 0);
    assert_int_equal(m, 0);
    assert_int_equal(gh_client_auth_parse("client_secret_jwt", &m, &why), -EINVAL);
    assert_int_equal(gh_client_auth_parse("none", &m, &why), -EINVAL);
    assert_int_equal(gh_client_auth_parse("CLIENT_SECRET_BASIC", &m, &why), -EINVAL);
    assert_int_equal(gh_client_auth_parse("client_secret_post client_secret_post", &m, &why),
                     -EINVAL);
    assert_int_equal(gh_client_auth_parse("client_secret_basicx", &m, &why), -EINVAL);
    assert_int_equal(gh_client_auth_default(1), GH_CLIENT_AUTH_PRIVATE_KEY_JWT);
    assert_int_equal(gh_client_auth_default(0), GH_CLIENT_AUTH_SECRET);
    assert_null(gh_client_check_name("Zahlungsdienst \xc3\xbc"));
    assert_non_null(gh_client_check_name("+1"));
    assert_non_null(gh_client_check_name("a\x7f"));
    assert_non_null(gh_client_check_name(NULL));
}

static void test_jwks(void **state)
{
    (void)state;
    char why[256];
    static const char pub[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
                              "\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\",\"y\":"
                              "\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}]}";
    assert_int_equal(gh_client_check_jwks(pub, strlen(pub), why, sizeof(why)), 0);
    /* a point off the curve (y changed) */
    static const char off[] =
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
        "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyA\"}";
    assert_int_equal(gh_client_check_jwks(off, strlen(off), why, sizeof(why)), -EINVAL);
    /* a NUL inside, trailing garbage, duplicate members */
    assert_int_equal(gh_client_check_jwks(pub, strlen(pub) + 1, why, sizeof(why)), -EINVAL);
    static const char dup[] = "{\"keys\":[],\"keys\":[]}";
    assert_int_equal(gh_client_check_jwks(dup, strlen(dup), why, sizeof(why)), -EINVAL);
    char trail[sizeof(pub) + 2];
    snprintf(trail, sizeof(trail), "%s]", pub);
    assert_int_equal(gh_client_check_jwks(trail, strlen(trail), why, sizeof(why)), -EINVAL);
    assert_int_equal(gh_client_check_jwks(NULL, 0, why, sizeof(why)), -EINVAL);
    /* the parser's message quotes the document: what reaches a terminal or
     * a JSON detail is printable ASCII (found by fuzz_admin_clients) */
    static const char odd[] = "{\"name\":\325\236\335\323\"audi\377nces\":[#x y````\"]}";
    assert_int_equal(gh_client_check_jwks(odd, strlen(odd), why, sizeof(why)), -EINVAL);
    for (const char *p = why; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_and_secret_forms),
        cmocka_unit_test(test_secret_check),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_methods_and_names),
        cmocka_unit_test(test_jwks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
