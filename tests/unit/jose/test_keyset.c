/* JWK sets: the RFC 7517 Appendix A and B examples, what a set refuses
 * (and whether it skips the key or the whole document), limits and refcounts. */
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

#define A1_RSA_N                                                                                   \
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"      \
    "BJECPebW"                                                                                     \
    "KRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"             \
    "FDW2QvzqY368QQM"                                                                              \
    "icAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"                           \
    "bFTWhAI4vMQFh6WeZu0fM4lFd2NcR"                                                                \
    "wr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
#define A1_EC                                                                                      \
    "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","      \
    "\"y\":\""                                                                                     \
    "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\""

/* RFC 7517 Appendix A.1: an EC key for encryption and an RSA signing key. */
static const char a1[] = "{\"keys\":[{" A1_EC ",\"use\":\"enc\",\"kid\":\"1\"},"
                         "{\"kty\":\"RSA\",\"n\":\"" A1_RSA_N "\",\"e\":\"AQAB\",\"alg\":\"RS256\","
                         "\"kid\":\"2011-04-29\"}]}";

/* RFC 7517 Appendix A.2: the same keys with their private members (the RSA
 * key's p, q, dp, dq, qi left out: d alone is enough to be refused). */
static const char a2[] =
    "{\"keys\":[{" A1_EC ",\"d\":\"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE\""
    ",\"use\":\"enc\",\"kid\":\"1\"},{\"kty\":\"RSA\",\"n\":\"" A1_RSA_N
    "\",\"e\":\"AQAB\",\"d\":\"X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HL"
    "LKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTz"
    "lBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6"
    "TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBznbJSzFHK66jT8bgkuqsk0GjskD"
    "Jk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q"
    "\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}]}";

/* RFC 7517 Appendix A.3: an AES key-wrap key and the HMAC key of RFC 7515 A.1. */
static const char a3[] =
    "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"A128KW\",\"k\":\"GawgguFyGrWKav7AX4VKUg\"},"
    "{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0g"
    "ZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\",\"kid\":\"HMAC key used in JWS spec "
    "Appendix A.1 example\"}]}";

/* RFC 7517 Appendix B: an RSA key with an x5c chain (shortened here: gatehouse
 * never reads x5c, and the test shows it does not need to). */
static const char b[] = "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"1b94c\",\"n\":"
                        "\"vrjOfz9Ccdgx5nQudyhdoR17V-IubWMeOZCw"
                        "X_jj0hgAsz2J_pqYW08PLbK_PdiVGKPrqzmDIsLI7sA25VEnHU1uCLNwBuUiCO11_-"
                        "7dYbsr4iJmG0Qu2j8DsVyT1azpJC_"
                        "NG84Ty5KKthuCaPod7iI7w0LK9orSMhBEwwZDCxTWq4aYWAchc8t-"
                        "emd9qOvWtVMDC2BXksRngh6X5bUYLy6AyHKvj-nUy1w"
                        "gzjYQDwHMTplCoLtU-o-8SNnZ1tmRoGE9uJkBLdh5gFENabWnU5m1ZqZPdwS-qo-"
                        "meMvVfJb6jJVWRpl2SUtCnYG2C32qvbW"
                        "bjZ_jBPD5eunqsIo1vQ\",\"e\":\"AQAB\",\"x5c\":[\"MIIDQjCCAiqgAwIBAgIGATz/"
                        "FuLiMA0GCSqGSIb3DQEBBQUA"
                        "MGIxCzAJBgNVBAYTAlVTMQswCQYDVQQIEwJDTzEPMA0GA1UEBxMGRGVudmVy\"]}";

static gh_jwks_t *parse(const char *doc, int sym, char *err, size_t cap)
{
    gh_jwks_opts_t o = {.allow_symmetric = sym};
    return gh_jwks_parse(doc, strlen(doc), &o, err, cap);
}

static void test_rfc7517_a1(void **state)
{
    (void)state;
    char err[256];
    gh_jwks_t *s = parse(a1, 0, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(gh_jwks_count(s), 1);
    gh_jwk_info_t in;
    assert_int_equal(gh_jwks_key_info(s, 0, &in), 0);
    assert_string_equal(in.kid, "2011-04-29");
    assert_string_equal(in.kty, "RSA");
    assert_string_equal(in.alg, "RS256");
    assert_null(in.crv);
    assert_int_equal(in.bits, 2048);
    assert_int_equal(gh_jwks_key_info(s, 1, &in), -ERANGE);
    assert_int_equal(gh_jwks_warning_count(s), 1);
    assert_string_equal(gh_jwks_warning(s, 0), "key 0 (kid \"1\"): \"use\" is not \"sig\"");
    assert_null(gh_jwks_warning(s, 1));
    gh_jwks_unref(s);
}

static void test_rfc7517_a2_private_refused(void **state)
{
    (void)state;
    char err[256];
    assert_null(parse(a2, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "no usable key"));
    /* The EC key goes for "use":"enc"; the RSA key for its private members. */
    const char *rsa = strstr(a2, "{\"kty\":\"RSA\"");
    char one[2048];
    snprintf(one, sizeof(one), "%.*s", (int)(strlen(rsa) - 2), rsa);
    assert_null(parse(one, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "private key material"));
}

static void test_rfc7517_a3_symmetric(void **state)
{
    (void)state;
    char err[256];
    gh_jwks_t *s = parse(a3, 1, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(gh_jwks_count(s), 1);
    gh_jwk_info_t in;
    gh_jwks_key_info(s, 0, &in);
    assert_string_equal(in.kty, "oct");
    assert_int_equal(in.bits, 512);
    assert_non_null(strstr(gh_jwks_warning(s, 0), "not a supported signature algorithm"));
    gh_jwks_unref(s);
    assert_null(parse(a3, 0, err, sizeof(err)));
}

static void test_rfc7517_b_x5c_ignored(void **state)
{
    (void)state;
    char err[256];
    gh_jwks_t *s = parse(b, 0, err, sizeof(err));
    assert_non_null(s);
    gh_jwk_info_t in;
    gh_jwks_key_info(s, 0, &in);
    assert_string_equal(in.kid, "1b94c");
    assert_int_equal(in.bits, 2048);
    assert_int_equal(gh_jwks_warning_count(s), 0);
    gh_jwks_unref(s);
}

/* A set built from one good key plus one under test: returns the warning for
 * the second key, or NULL when it was accepted. */
static char *second_key(const char *key, int sym)
{
    static char warn[256];
    char doc[4096], err[256];
    snprintf(doc, sizeof(doc), "{\"keys\":[{%s,\"kid\":\"good\"},%s]}", A1_EC, key);
    gh_jwks_t *s = parse(doc, sym, err, sizeof(err));
    if (s == NULL)
        print_error("%s\n", err);
    assert_non_null(s);
    char *r = NULL;
    if (gh_jwks_count(s) == 1) {
        assert_int_equal(gh_jwks_warning_count(s), 1);
        snprintf(warn, sizeof(warn), "%s", gh_jwks_warning(s, 0));
        r = warn;
    } else {
        assert_int_equal(gh_jwks_count(s), 2);
    }
    gh_jwks_unref(s);
    return r;
}

static void test_key_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *key, *why; /* why NULL: accepted */
        int sym;
    } cases[] = {
        /* RSA 1024 bits (RFC 7515 A.2's modulus cut to 128 bytes). */
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_"
         "wWJcyQoTbji9k0l8W26mP"
         "ddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_"
         "YpRPEwOWvG6b32690r2jZ47soMZo"
         "9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXA\"}",
         "under 2048", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\"}", "valid \"n\"", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AA\",\"n\":\"" A1_RSA_N "\"}", "exponent", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQ\",\"n\":\"" A1_RSA_N "\"}", "exponent", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "\",\"p\":\"AQAB\"}", "private", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "\",\"alg\":\"ES256\"}",
         "does not fit", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "\",\"alg\":\"PS512\"}", NULL, 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N
         "\",\"use\":\"sig\",\"key_ops\":[\"verify\"]}",
         NULL, 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "\",\"key_ops\":[\"sign\"]}",
         "key_ops", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "\",\"key_ops\":\"verify\"}",
         "key_ops", 0},
        {"{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":\"" A1_RSA_N "=\"}", "valid", 0},
        /* EC: x with its last bit flipped is off the curve. */
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D8\","
         "\"y\":\""
         "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
         "not on the curve", 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}", "valid", 0},
        {"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
         "\"y\":\""
         "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
         "valid", 0},
        {"{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
         "unsupported curve", 0},
        {"{" A1_EC ",\"alg\":\"ES384\"}", "does not fit", 0},
        {"{" A1_EC ",\"use\":\"sig\",\"alg\":\"ES256\"}", NULL, 0},
        {"{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"11qYAYKxCrfVS_"
         "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
         "signature curve", 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
         "7TyWQHOg7hcvPapiMlrwIaaPcHUR\"}",
         "valid", 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
         "7TyWQHOg7hcvPapiMlrwIaaPcHURo\","
         "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}",
         "private", 0},
        {"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
         "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
         NULL, 0},
        {"{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr8\"}", "symmetric", 0},
        {"{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr8\"}", NULL, 1},
        {"{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ\"}", "32 to 1024", 1},
        {"{\"kty\":\"oct\",\"alg\":\"HS512\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-"
         "EstJQLr8\"}",
         "does not fit", 1},
        {"{\"kty\":\"RSA-PSS\"}", "unsupported \"kty\"", 0},
        {"{\"n\":\"AQAB\"}", "no \"kty\"", 0},
        {"[1]", "not a JSON object", 0},
        {"{" A1_EC ",\"kid\":7}", "not a string", 0},
        {"{" A1_EC ",\"alg\":\"none\"}", "not a supported", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *w = second_key(cases[i].key, cases[i].sym);
        if ((w == NULL) != (cases[i].why == NULL) ||
            (w != NULL && strstr(w, cases[i].why) == NULL)) {
            print_error("case %zu: got \"%s\", want \"%s\"\n", i, w ? w : "(accepted)",
                        cases[i].why ? cases[i].why : "(accepted)");
            fail();
        }
    }
}

static void test_document_errors(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        const char *doc, *why;
    } cases[] = {
        {"", "not valid JSON"},
        {"{\"keys\":[", "not valid JSON"},
        {"[]", "not a JSON object"},
        {"{\"keys\":{}}", "not an array"},
        {"{\"foo\":1}", "neither"},
        {"{\"keys\":[]}", "no usable key"},
        {"{\"keys\":[],\"keys\":[]}", "not valid JSON"}, /* duplicate member */
        {"{\"keys\":[{\"kty\":\"EC\",\"kty\":\"RSA\"}]}", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        assert_null(parse(cases[i].doc, 1, err, sizeof(err)));
        if (strstr(err, cases[i].why) == NULL)
            print_error("case %zu: %s\n", i, err);
        assert_non_null(strstr(err, cases[i].why));
    }
    /* A small err buffer is truncated, not overrun. */
    char tiny[8];
    assert_null(parse("{\"keys\":[]}", 1, tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), 7);
    assert_null(parse("{\"keys\":[]}", 1, NULL, 0));
}

static void test_limits(void **state)
{
    (void)state;
    char err[256];
    /* 100 keys are fine; 101 are refused whole. */
    size_t cap = 200 * 160;
    char *doc = malloc(cap);
    for (int n = 100; n <= 101; n++) {
        size_t o = (size_t)snprintf(doc, cap, "{\"keys\":[");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(doc + o, cap - o, "%s{%s,\"kid\":\"k%d\"}", i ? "," : "", A1_EC,
                                  i);
        snprintf(doc + o, cap - o, "]}");
        gh_jwks_t *s = parse(doc, 0, err, sizeof(err));
        if (n == 100) {
            assert_non_null(s);
            assert_int_equal(gh_jwks_count(s), 100);
            gh_jwks_unref(s);
        } else {
            assert_null(s);
            assert_non_null(strstr(err, "over the limit"));
        }
    }
    free(doc);
    /* Over 1 MiB, refused before parsing. */
    size_t big = GH_JWKS_MAX_DOC + 1;
    doc = malloc(big);
    memset(doc, ' ', big);
    memcpy(doc, "{\"keys\":[]}", 11);
    gh_jwks_opts_t o = {0};
    assert_null(gh_jwks_parse(doc, big, &o, err, sizeof(err)));
    assert_non_null(strstr(err, "over the limit"));
    free(doc);
    /* kid: 256 bytes accepted, 257 skipped. */
    char kdoc[1024];
    snprintf(kdoc, sizeof(kdoc), "{\"keys\":[{%s,\"kid\":\"%0256d\"},{%s,\"kid\":\"%0257d\"}]}",
             A1_EC, 0, A1_EC, 0);
    gh_jwks_t *s = parse(kdoc, 0, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(gh_jwks_count(s), 1);
    assert_non_null(strstr(gh_jwks_warning(s, 0), "over 256"));
    gh_jwks_unref(s);
}

static void test_single_jwk_refs_generation(void **state)
{
    (void)state;
    char err[256];
    gh_jwks_t *s = parse("{" A1_EC ",\"kid\":\"bad\\u0001kid\\\"\"}", 0, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(gh_jwks_count(s), 1);
    assert_int_equal(gh_jwks_generation(s), 0);
    gh_jwks_set_generation(s, 42);
    assert_int_equal(gh_jwks_generation(s), 42);
    gh_jwk_info_t in;
    gh_jwks_key_info(s, 0, &in);
    assert_string_equal(in.crv, "P-256");
    assert_int_equal(in.bits, 256);
    assert_ptr_equal(gh_jwks_ref(s), s);
    gh_jwks_unref(s);
    assert_int_equal(gh_jwks_count(s), 1); /* still alive: ASan would say otherwise */
    gh_jwks_unref(s);
    gh_jwks_unref(NULL);
    /* Warnings never carry raw control bytes from a kid. */
    s = parse("{\"keys\":[{" A1_EC "},{\"kty\":\"x\",\"kid\":\"a\\r\\nb\"}]}", 0, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(gh_jwks_warning(s, 0), "key 1 (kid \"a??b\"): unsupported \"kty\"");
    gh_jwks_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7517_a1),
        cmocka_unit_test(test_rfc7517_a2_private_refused),
        cmocka_unit_test(test_rfc7517_a3_symmetric),
        cmocka_unit_test(test_rfc7517_b_x5c_ignored),
        cmocka_unit_test(test_key_refusals),
        cmocka_unit_test(test_document_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_single_jwk_refs_generation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
