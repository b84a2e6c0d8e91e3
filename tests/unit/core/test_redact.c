/*
 * URLs without their credentials (src/core/redact.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../src/core/redact.c"

static void test_cases(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"},
        {"http://user:pw@127.0.0.1:4318/v1/traces", "http://[redacted]@127.0.0.1:4318/v1/traces"},
        {"https://tok@collector.example.com", "https://[redacted]@collector.example.com"},
        {"http://u:p@ss@h:1/x", "http://[redacted]@h:1/x"},
        {"http://h:1/path@not-userinfo", "http://h:1/path@not-userinfo"},
        {"http://:@h/", "http://[redacted]@h/"},
        {"http://user:secret@127.0.0.1:9/jwks?key=querysecret",
         "http://[redacted]@127.0.0.1:9/jwks?key=[redacted]"},
        {"http://h:1/?q=a@b", "http://h:1/?q=[redacted]"},
        {"http://h/j?a=1&b&c=&d=x=y", "http://h/j?a=[redacted]&b&c=[redacted]&d=[redacted]"},
        {"http://h/j?", "http://h/j?"},
        {"http://h/j?&&", "http://h/j?&&"},
        {"http://h?k=v", "http://h?k=[redacted]"},
        {"http://h/j?k=v#frag", "http://h/j?k=[redacted]#frag"},
        {"http://h/j#f?k=v", "http://h/j#f?k=v"},
        {"http://h:1#frag@x", "http://h:1#frag@x"},
        {"u:p@h/x?k=v", "[redacted]@h/x?k=[redacted]"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = gh_url_redact(cases[i].in);
        assert_non_null(got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: want %s, got %s", cases[i].in, cases[i].want, got);
        free(got);
    }
}

/* Every combination of the pieces below: before the fragment, no byte of a
 * secret (userinfo, query values) is left, and the output fits what was
 * allocated (ASan checks the latter). */
static void test_no_secret_left(void **state)
{
    (void)state;
    static const char *const head[] = {"http://", "s3cr:s3cr@", "h:1", "/p", "/a@b"};
    static const char *const query[] = {"k=s3cr",    "&",      "=s3cr", "&x",
                                        "&k=s3cr@x", "==s3cr", "#s3cr"};
    enum { NH = sizeof(head) / sizeof(head[0]), NQ = sizeof(query) / sizeof(query[0]) };
    char url[256];
    for (unsigned m = 0; m < (1u << (NH + NQ)); m++) {
        url[0] = '\0';
        for (unsigned i = 0; i < NH; i++)
            if (m & (1u << i))
                strcat(url, head[i]);
        strcat(url, "?");
        for (unsigned i = 0; i < NQ; i++)
            if (m & (1u << (NH + i)))
                strcat(url, query[i]);
        char *got = gh_url_redact(url);
        assert_non_null(got);
        const char *s = strstr(got, "s3cr");
        const char *frag = strchr(got, '#');
        if (s != NULL && (frag == NULL || s < frag))
            fail_msg("%s -> %s", url, got);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_no_secret_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
