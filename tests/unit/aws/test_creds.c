/*
 * AWS credentials and region (src/aws/creds.c, src/aws/ini.c): precedence
 * between the environment and the shared files, profiles, session tokens,
 * malformed and missing files (errors with FILE:LINE), bounds. The
 * environment (HOME too) is injected: nothing here reads the real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../src/aws/creds.c"

/* ---- an injected environment ---- */

#define MAX_VARS 16

typedef struct {
    const char *k[MAX_VARS], *v[MAX_VARS];
    int n;
} fake_env_t;

static const char *fake_getenv(const char *name, void *arg)
{
    fake_env_t *e = arg;
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->k[i], name) == 0)
            return e->v[i];
    return NULL;
}

static fake_env_t fenv;
static gh_aws_env_t env = {fake_getenv, &fenv};
static char dir[256];
static char errbuf[8192];

static void setv(const char *k, const char *v)
{
    for (int i = 0; i < fenv.n; i++)
        if (strcmp(fenv.k[i], k) == 0) {
            fenv.v[i] = v;
            return;
        }
    assert_true(fenv.n < MAX_VARS);
    fenv.k[fenv.n] = k;
    fenv.v[fenv.n++] = v;
}

static char *path_of(const char *name)
{
    static char bufs[4][512];
    static int i;
    char *b = bufs[i++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static void write_n(const char *name, const char *text, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void write_file(const char *name, const char *text)
{
    write_n(name, text, strlen(text));
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gh-aws-creds-XXXXXX");
    assert_non_null(mkdtemp(dir));
    memset(&fenv, 0, sizeof(fenv));
    /* Defaults under an empty HOME of our own: the real one is never read. */
    static char home[300];
    snprintf(home, sizeof(home), "%s/home", dir);
    assert_int_equal(mkdir(home, 0700), 0);
    assert_int_equal(mkdir(path_of("home/.aws"), 0700), 0);
    setv("HOME", home);
    errbuf[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* Loads and checks the result's keys and source (NULL token: none). */
static void expect_creds(const char *profile, const char *ak, const char *sk, const char *tok,
                         const char *source)
{
    gh_aws_creds_t *c = gh_aws_creds_load(&env, profile, errbuf, sizeof(errbuf));
    if (c == NULL)
        fail_msg("no credentials: %s", errbuf);
    assert_string_equal(gh_aws_creds_access_key_id(c), ak);
    assert_int_equal(c->secret_len, strlen(sk));
    assert_memory_equal(c->secret, sk, strlen(sk));
    if (tok == NULL) {
        assert_null(c->token);
        assert_false(gh_aws_creds_has_session_token(c));
    } else {
        assert_non_null(c->token);
        assert_string_equal(c->token, tok);
        assert_true(gh_aws_creds_has_session_token(c));
    }
    assert_string_equal(gh_aws_creds_source(c), source);
    gh_aws_creds_free(c);
}

/* Loading fails with a message holding each of the given pieces. */
static void expect_error(const char *profile, const char *want1, const char *want2)
{
    errbuf[0] = '\0';
    gh_aws_creds_t *c = gh_aws_creds_load(&env, profile, errbuf, sizeof(errbuf));
    if (c != NULL) {
        gh_aws_creds_free(c);
        fail_msg("loaded, want an error with \"%s\"", want1);
    }
    if (strstr(errbuf, want1) == NULL || (want2 != NULL && strstr(errbuf, want2) == NULL))
        fail_msg("error \"%s\", want \"%s\" and \"%s\"", errbuf, want1, want2 ? want2 : "");
    /* No message quotes a secret. */
    assert_null(strstr(errbuf, "S3CR"));
    assert_null(strstr(errbuf, "TOKEN0"));
}

static const char *source_in(const char *profile, const char *file)
{
    static char b[600];
    snprintf(b, sizeof(b), "profile %s in %s", profile, path_of(file));
    return b;
}

/* ---- environment ---- */

static void test_env(void **state)
{
    (void)state;
    setv("AWS_ACCESS_KEY_ID", "AKIAENV");
    setv("AWS_SECRET_ACCESS_KEY", "S3CRenv/+=");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", NULL, "environment");
    setv("AWS_SESSION_TOKEN", "TOKEN0env");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", "TOKEN0env", "environment");
    /* The older name, alone or agreeing; disagreeing is an error. */
    setv("AWS_SESSION_TOKEN", NULL);
    setv("AWS_SECURITY_TOKEN", "TOKEN0old");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", "TOKEN0old", "environment");
    setv("AWS_SESSION_TOKEN", "TOKEN0old");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", "TOKEN0old", "environment");
    setv("AWS_SESSION_TOKEN", "TOKEN0new");
    expect_error(NULL, "AWS_SESSION_TOKEN and AWS_SECURITY_TOKEN", "different");
    setv("AWS_SECURITY_TOKEN", "");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", "TOKEN0new", "environment");

    /* The environment wins over the files, also when AWS_PROFILE names a
     * profile (botocore keeps its environment provider then). */
    write_file("home/.aws/credentials", "[default]\naws_access_key_id = AKIAFILE\n"
                                        "aws_secret_access_key = S3CRfile\n"
                                        "[p]\naws_access_key_id = AKIAP\n"
                                        "aws_secret_access_key = S3CRp\n");
    setv("AWS_PROFILE", "p");
    expect_creds(NULL, "AKIAENV", "S3CRenv/+=", "TOKEN0new", "environment");
    /* A profile given by the caller wins over the environment's keys. */
    expect_creds("p", "AKIAP", "S3CRp", NULL, source_in("p", "home/.aws/credentials"));
    expect_creds("default", "AKIAFILE", "S3CRfile", NULL,
                 source_in("default", "home/.aws/credentials"));
}

static void test_env_partial(void **state)
{
    (void)state;
    write_file("home/.aws/credentials",
               "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = S3CRfile\n");
    setv("AWS_ACCESS_KEY_ID", "AKIAENV");
    expect_error(NULL, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", NULL);
    setv("AWS_ACCESS_KEY_ID", NULL);
    setv("AWS_SECRET_ACCESS_KEY", "S3CRenv");
    expect_error(NULL, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not", NULL);
    /* Empty is unset, as in the SDKs. */
    setv("AWS_ACCESS_KEY_ID", "");
    setv("AWS_SECRET_ACCESS_KEY", "");
    expect_creds(NULL, "AKIAFILE", "S3CRfile", NULL, source_in("default", "home/.aws/credentials"));
    /* Malformed values are refused by name, never quoted. */
    setv("AWS_ACCESS_KEY_ID", "AKIA ENV");
    setv("AWS_SECRET_ACCESS_KEY", "S3CRenv");
    expect_error(NULL, "AWS_ACCESS_KEY_ID is not an access key id", NULL);
    setv("AWS_ACCESS_KEY_ID", "AKIAENV");
    setv("AWS_SECRET_ACCESS_KEY", "S3CR env");
    expect_error(NULL, "AWS_SECRET_ACCESS_KEY is not a secret key", NULL);
    setv("AWS_SECRET_ACCESS_KEY", "S3CRenv");
    setv("AWS_SESSION_TOKEN", "TOKEN0\x01");
    expect_error(NULL, "AWS_SESSION_TOKEN is not a session token", NULL);
    setv("AWS_SESSION_TOKEN", NULL);
    setv("AWS_SECURITY_TOKEN", "TOKEN0 x");
    expect_error(NULL, "AWS_SECURITY_TOKEN is not a session token", NULL);
}

/* ---- files ---- */

static void test_profiles(void **state)
{
    (void)state;
    write_file("home/.aws/credentials",
               "# written by aws configure\n"
               "[default]\n"
               "aws_access_key_id=AKIADEF\n"
               "aws_secret_access_key=S3CRdef\n"
               "\n"
               "[dev]\r\n"
               "  ; an indented comment\r\n"
               "AWS_ACCESS_KEY_ID = AKIADEV\r\n"
               "Aws_Secret_Access_Key\t=\tS3CRdev\t\r\n"
               "aws_session_token = TOKEN0dev/+=\r\n"
               "[legacy]\n"
               "aws_access_key_id = AKIALEG\n"
               "aws_secret_access_key = S3CRleg\n"
               "aws_security_token = TOKEN0leg\n"
               "[profile dev]\n" /* not a profile in the credentials file */
               "aws_access_key_id = AKIAWRONG\n"
               "aws_secret_access_key = S3CRwrong\n");
    write_file("home/.aws/config", "[default]\n"
                                   "region = eu-west-1\n"
                                   "output = json\n"
                                   "s3 =\n"
                                   "  max_concurrent_requests = 10\n"
                                   "  aws_access_key_id = not-a-key-here\n"
                                   "[profile cfg]\n"
                                   "aws_access_key_id = AKIACFG\n"
                                   "aws_secret_access_key = S3CRcfg\n"
                                   "aws_session_token = TOKEN0cfg\n"
                                   "[profile    spaced]\n"
                                   "aws_access_key_id = AKIASP\n"
                                   "aws_secret_access_key = S3CRsp\n"
                                   "[cfg]\n" /* not a profile in the config file */
                                   "aws_access_key_id = AKIAWRONG\n"
                                   "aws_secret_access_key = S3CRwrong\n");
    const char *cred = "home/.aws/credentials", *conf = "home/.aws/config";
    expect_creds(NULL, "AKIADEF", "S3CRdef", NULL, source_in("default", cred));
    expect_creds("dev", "AKIADEV", "S3CRdev", "TOKEN0dev/+=", source_in("dev", cred));
    expect_creds("legacy", "AKIALEG", "S3CRleg", "TOKEN0leg", source_in("legacy", cred));
    expect_creds("cfg", "AKIACFG", "S3CRcfg", "TOKEN0cfg", source_in("cfg", conf));
    expect_creds("spaced", "AKIASP", "S3CRsp", NULL, source_in("spaced", conf));
    setv("AWS_PROFILE", "dev");
    expect_creds(NULL, "AKIADEV", "S3CRdev", "TOKEN0dev/+=", source_in("dev", cred));
    expect_creds("cfg", "AKIACFG", "S3CRcfg", "TOKEN0cfg", source_in("cfg", conf));
    /* A named profile that is nowhere is an error naming both files. */
    setv("AWS_PROFILE", "nope");
    expect_error(NULL, "AWS profile nope (from AWS_PROFILE) is in neither", path_of(conf));
    setv("AWS_PROFILE", NULL);
    expect_error("nope", "AWS profile nope is in neither", path_of(cred));
    /* A profile found, but without keys anywhere. */
    write_file("home/.aws/config", "[profile bare]\nregion = us-west-2\n");
    expect_error("bare", "no AWS credentials: profile bare has no aws_access_key_id in", NULL);
    setv("AWS_PROFILE", "bad name");
    expect_error(NULL, "AWS profile name in AWS_PROFILE is malformed", NULL);
    expect_error("a]b", "AWS profile name is malformed", NULL);
    expect_error("", "AWS profile name is malformed", NULL);
}

static void test_precedence_files(void **state)
{
    (void)state;
    const char *cred = "home/.aws/credentials", *conf = "home/.aws/config";
    /* The credentials file wins over the config file for one profile. */
    write_file(cred, "[default]\naws_access_key_id = AKIACRED\naws_secret_access_key = S3CRc\n");
    write_file(conf, "[default]\naws_access_key_id = AKIACONF\naws_secret_access_key = S3CRf\n");
    expect_creds(NULL, "AKIACRED", "S3CRc", NULL, source_in("default", cred));
    /* A section without keys in the credentials file: the config's keys. */
    write_file(cred, "[default]\nregion = us-east-2\n");
    expect_creds(NULL, "AKIACONF", "S3CRf", NULL, source_in("default", conf));
    /* No credentials file at all. */
    unlink(path_of(cred));
    expect_creds(NULL, "AKIACONF", "S3CRf", NULL, source_in("default", conf));
    /* [profile default] is the default profile in the config file too; with
     * [default] as well it is ambiguous. */
    write_file(conf, "[profile default]\naws_access_key_id = AKIAPD\n"
                     "aws_secret_access_key = S3CRpd\n");
    expect_creds(NULL, "AKIAPD", "S3CRpd", NULL, source_in("default", conf));
    write_file(conf, "[profile default]\naws_access_key_id = AKIAPD\n"
                     "aws_secret_access_key = S3CRpd\n[default]\n");
    expect_error(NULL, ":4: profile default has a second section (the first is on line 1)", NULL);
    /* Nothing anywhere. */
    unlink(path_of(conf));
    expect_error(NULL, "no AWS credentials: AWS_ACCESS_KEY_ID is not set and profile default",
                 "(missing)");
}

static void test_paths_env(void **state)
{
    (void)state;
    write_file("c1", "[default]\naws_access_key_id = AKIAC1\naws_secret_access_key = S3CR1\n");
    write_file("f1", "[profile x]\naws_access_key_id = AKIAF1\naws_secret_access_key = S3CRf\n");
    write_file("home/.aws/credentials",
               "[default]\naws_access_key_id = AKIAHOME\naws_secret_access_key = S3CRh\n");
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("c1"));
    setv("AWS_CONFIG_FILE", path_of("f1"));
    expect_creds(NULL, "AKIAC1", "S3CR1", NULL, source_in("default", "c1"));
    expect_creds("x", "AKIAF1", "S3CRf", NULL, source_in("x", "f1"));
    /* "~/" means HOME. */
    setv("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials");
    expect_creds(NULL, "AKIAHOME", "S3CRh", NULL, source_in("default", "home/.aws/credentials"));
    /* A file named by the environment that does not exist counts as empty
     * (as botocore), and the final error says it was missing. */
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("nope"));
    expect_error(NULL, "no AWS credentials", "/nope (missing)");
    /* No HOME and no paths: no files, said so. */
    setv("AWS_SHARED_CREDENTIALS_FILE", NULL);
    setv("AWS_CONFIG_FILE", NULL);
    setv("HOME", NULL);
    expect_error(NULL, "no AWS credentials", "HOME is not set");
    /* A path too long for PATH_MAX. */
    static char longp[PATH_MAX + 10];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    setv("AWS_SHARED_CREDENTIALS_FILE", longp);
    expect_error(NULL, "the path of the AWS credentials file is too long", NULL);
}

static void test_file_kinds(void **state)
{
    (void)state;
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("d"));
    assert_int_equal(mkdir(path_of("d"), 0700), 0);
    expect_error(NULL, "/d: not a regular file", NULL);
    /* A FIFO without a writer is refused at once, not waited on. */
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("fifo"));
    assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
    expect_error(NULL, "/fifo: not a regular file", NULL);
    if (geteuid() != 0) { /* root reads anything */
        write_file("noread", "[default]\n");
        chmod(path_of("noread"), 0);
        setv("AWS_SHARED_CREDENTIALS_FILE", path_of("noread"));
        expect_error(NULL, "/noread: Permission denied", NULL);
    }
    /* Larger than 1 MiB. */
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("big"));
    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    write_n("big", big, n);
    expect_error(NULL, "/big: larger than 1048576 bytes", NULL);
    /* Exactly 1 MiB of comments is read (and holds nothing). */
    for (size_t i = 99; i < n; i += 100)
        big[i] = '\n';
    write_n("big", big, n - 1);
    expect_error(NULL, "no AWS credentials", NULL);
    free(big);
}

/* Each malformed file is refused with FILE:LINE and the reason. */
static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        const char *want;
    } cases[] = {
        {"[default\naws_access_key_id = A\n", 0, ":1: section header without ']'"},
        {"[default] x\n", 0, ":1: text after a section header"},
        {"[]\n", 0, ":1: empty section name"},
        {"[ default]\n", 0, ":1: blank inside the brackets"},
        {"[default ]\n", 0, ":1: blank inside the brackets"},
        {"[a[b]\n", 0, ":1: '[' inside a section name"},
        {"aws_access_key_id = A\n[default]\n", 0, ":1: setting before any [section]"},
        {"[default]\n\n\naws_access_key_id\n", 0,
         ":4: expected a [section] or a setting KEY = VALUE"},
        {"[default]\nregion: us-east-1\n", 0, ":2: expected a [section] or a setting"},
        {"[default]\nfoo:bar = 1\n", 0, ":2: malformed setting name"},
        {"[default]\n = 1\n", 0, ":2: malformed setting name"},
        {"[default]\na b = 1\n", 0, ":2: malformed setting name"},
        {"[x]\na = 1\x00\n", 11, ":2: NUL byte"},
        {"[x]\na = 1\rb\n", 0, ":2: carriage return inside a line"},
        {"[x]\na = 1\r\r\n", 0, ":2: carriage return inside a line"},
        {"[x]\na = \x1b[31m\n", 0, ":2: control character 0x1b"},
        {"[x]\na = \x7f\n", 0, ":2: control character 0x7f"},
        {"[default]\naws_access_key_id = AKIA\n  more\n", 0,
         ":3: aws_access_key_id continues on an indented line"},
        {"[default]\naws_access_key_id = AKIA\n\n# c\n  aws_secret_access_key = S3CRx\n", 0,
         ":5: aws_access_key_id continues on an indented line"},
        {"[default]\naws_access_key_id = A1\nAWS_ACCESS_KEY_ID = A2\n", 0,
         ":3: aws_access_key_id set twice (first on line 2)"},
        {"[default]\naws_access_key_id = A1\n[other]\n[default]\n", 0,
         ":4: profile default has a second section (the first is on line 1)"},
        {"[default]\naws_access_key_id = A1\n", 0,
         ":1: profile default has aws_access_key_id but no aws_secret_access_key"},
        {"[default]\naws_secret_access_key = S3CRx\n", 0,
         ":1: profile default has aws_secret_access_key but no aws_access_key_id"},
        {"[default]\naws_session_token = TOKEN0\n", 0,
         ":1: profile default has a session token but no aws_access_key_id"},
        {"[default]\naws_access_key_id = AKIA # mine\naws_secret_access_key = S3CRx\n", 0,
         ":2: aws_access_key_id is not an access key id"},
        {"[default]\naws_access_key_id =\naws_secret_access_key = S3CRx\n", 0,
         ":2: aws_access_key_id is not an access key id"},
        {"[default]\naws_access_key_id = AKIA\naws_secret_access_key = S3CR\xc3\xa9\n", 0,
         ":3: aws_secret_access_key is not a secret key"},
        {"[default]\naws_access_key_id = AKIA\naws_secret_access_key = S3CRx\n"
         "aws_session_token = TOKEN0 a\n",
         0, ":4: aws_session_token is not a session token"},
        {"[default]\naws_access_key_id = AKIA\naws_secret_access_key = S3CRx\n"
         "aws_session_token = TOKEN0a\naws_security_token = TOKEN0b\n",
         0, ":5: profile default sets aws_session_token and aws_security_token"},
    };
    setv("AWS_SHARED_CREDENTIALS_FILE", path_of("bad"));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
        write_n("bad", cases[i].text, n);
        char want[600];
        snprintf(want, sizeof(want), "%s%s", path_of("bad"), cases[i].want);
        errbuf[0] = '\0';
        gh_aws_creds_t *c = gh_aws_creds_load(&env, NULL, errbuf, sizeof(errbuf));
        if (c != NULL || strstr(errbuf, want) == NULL)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, c ? "credentials" : errbuf, want);
        assert_null(strstr(errbuf, "S3CR"));
        assert_null(strstr(errbuf, "TOKEN0"));
        assert_null(strstr(errbuf, "AKIA"));
    }
    /* Errors elsewhere in the file count too: it is one file to trust. */
    write_file("bad", "[default]\naws_access_key_id = AKIA\naws_secret_access_key = S3CRx\n"
                      "[other]\nbroken line\n");
    expect_error(NULL, ":5: expected a [section]", NULL);
    /* A line of the maximum length is fine; one byte more is not. */
    char *line = malloc(GH_AWS_INI_MAX_LINE + 64);
    int k = snprintf(line, 64, "[x]\n# ");
    memset(line + k, 'x', GH_AWS_INI_MAX_LINE - 2);
    k += GH_AWS_INI_MAX_LINE - 2;
    k += snprintf(line + k, 64, "\r\n[default]\n");
    write_n("bad", line, (size_t)k);
    expect_error(NULL, "no AWS credentials", NULL);
    line[4] = '#';
    memmove(line + 5, line + 4, (size_t)k - 4);
    write_n("bad", line, (size_t)k + 1);
    expect_error(NULL, ":2: line longer than 4096 bytes", NULL);
    free(line);
}

static void test_unsupported(void **state)
{
    (void)state;
    const char *cred = "home/.aws/credentials", *conf = "home/.aws/config";
    write_file(cred, "[default]\naws_access_key_id = AKIAC\naws_secret_access_key = S3CRc\n");
    /* Assume-role and SSO come before static keys in the SDKs' chain:
     * signing with the keys would be another identity. Refused. */
    write_file(conf, "[default]\nregion = us-east-1\nrole_arn = arn:aws:iam::1:role/r\n"
                     "source_profile = default\n");
    expect_error(NULL, ":3: profile default uses role_arn, a credential provider gatehouse",
                 path_of(conf));
    write_file(conf, "[default]\nsso_account_id = 1\nsso_role_name = r\n");
    expect_error(NULL, ":2: profile default uses sso_account_id", NULL);
    /* credential_process comes after the credentials file's keys. */
    write_file(conf, "[default]\ncredential_process = /bin/creds\n");
    expect_creds(NULL, "AKIAC", "S3CRc", NULL, source_in("default", cred));
    write_file(cred, "[default]\n");
    expect_error(NULL, ":2: profile default uses credential_process", NULL);
    /* Web identity from the environment comes before every profile, unless
     * the caller names one (botocore then ignores the environment). */
    setv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
    expect_error(NULL, "uses credential_process", NULL); /* the role alone is not enough */
    setv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token");
    expect_error(NULL, "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE ask for web identity", NULL);
    write_file(cred, "[default]\naws_access_key_id = AKIAC\naws_secret_access_key = S3CRc\n");
    expect_error(NULL, "ask for web identity", NULL);
    expect_creds("default", "AKIAC", "S3CRc", NULL, source_in("default", cred));
    setv("AWS_ACCESS_KEY_ID", "AKIAENV");
    setv("AWS_SECRET_ACCESS_KEY", "S3CRenv");
    expect_creds(NULL, "AKIAENV", "S3CRenv", NULL, "environment");
    setv("AWS_ACCESS_KEY_ID", NULL);
    setv("AWS_SECRET_ACCESS_KEY", NULL);
    setv("AWS_ROLE_ARN", NULL);
    setv("AWS_WEB_IDENTITY_TOKEN_FILE", NULL);
    write_file(cred, "[default]\n");
    /* Other profiles' settings do not matter. */
    write_file(conf, "[profile other]\nrole_arn = x\n[default]\naws_access_key_id = AKIAF\n"
                     "aws_secret_access_key = S3CRf\n");
    expect_creds(NULL, "AKIAF", "S3CRf", NULL, source_in("default", conf));
}

/* ---- region ---- */

static void expect_region(const char *profile, const char *want)
{
    char r[64];
    errbuf[0] = '\0';
    int rc = gh_aws_region_load(&env, profile, r, sizeof(r), errbuf, sizeof(errbuf));
    if (rc != 0)
        fail_msg("region: %d %s", rc, errbuf);
    assert_string_equal(r, want);
}

static void test_region(void **state)
{
    (void)state;
    const char *cred = "home/.aws/credentials", *conf = "home/.aws/config";
    char r[64];
    assert_int_equal(gh_aws_region_load(&env, NULL, r, sizeof(r), errbuf, sizeof(errbuf)), -ENOENT);
    assert_non_null(strstr(errbuf, "no AWS region: AWS_REGION and AWS_DEFAULT_REGION are not set "
                                   "and profile default has no region in"));
    write_file(conf, "[default]\nregion = eu-west-1\n[profile p]\nregion = ap-south-1\n");
    expect_region(NULL, "eu-west-1");
    expect_region("p", "ap-south-1");
    setv("AWS_PROFILE", "p");
    expect_region(NULL, "ap-south-1");
    /* The credentials file's value wins for its profile. */
    write_file(cred, "[p]\nregion = us-west-2\n");
    expect_region(NULL, "us-west-2");
    expect_region("default", "eu-west-1");
    setv("AWS_DEFAULT_REGION", "ca-central-1");
    expect_region(NULL, "ca-central-1");
    setv("AWS_REGION", "sa-east-1");
    expect_region(NULL, "sa-east-1");
    expect_region("default", "sa-east-1");
    setv("AWS_REGION", "SA-EAST-1");
    assert_int_equal(gh_aws_region_load(&env, NULL, r, sizeof(r), errbuf, sizeof(errbuf)), -EINVAL);
    assert_non_null(strstr(errbuf, "AWS_REGION is not a region name"));
    setv("AWS_REGION", "");
    setv("AWS_DEFAULT_REGION", NULL);
    write_file(cred, "[p]\nregion = us west\n");
    assert_int_equal(gh_aws_region_load(&env, NULL, r, sizeof(r), errbuf, sizeof(errbuf)), -EINVAL);
    assert_non_null(strstr(errbuf, ":2: region is not a region name"));
    write_file(cred, "[p]\nregion = us-west-2\n");
    assert_int_equal(gh_aws_region_load(&env, NULL, r, 9, errbuf, sizeof(errbuf)), -ENOSPC);
    assert_int_equal(gh_aws_region_load(&env, NULL, r, 10, errbuf, sizeof(errbuf)), 0);
    /* A malformed file is an error for the region too. */
    write_file(conf, "[default\n");
    assert_int_equal(gh_aws_region_load(&env, NULL, r, sizeof(r), errbuf, sizeof(errbuf)), -EINVAL);
    assert_non_null(strstr(errbuf, "config:1: section header without ']'"));
}

/* ---- explicit credentials and names ---- */

static void test_new(void **state)
{
    (void)state;
    char err[256];
    gh_aws_creds_t *c = gh_aws_creds_new("AKID_1", "s/+=", "", err, sizeof(err));
    assert_non_null(c);
    assert_null(c->token);
    assert_string_equal(gh_aws_creds_source(c), "explicit");
    gh_aws_creds_free(c);
    gh_aws_creds_free(NULL);
    static char longer[GH_AWS_TOKEN_MAX + 2];
    memset(longer, 't', sizeof(longer) - 1);
    static const struct {
        const char *ak, *sk, *tok;
    } bad[] = {{NULL, "s", NULL},  {"", "s", NULL},    {"AK-1", "s", NULL}, {"AK 1", "s", NULL},
               {"AK", NULL, NULL}, {"AK", "", NULL},   {"AK", "a b", NULL}, {"AK", "\x80", NULL},
               {"AK", "s", "t t"}, {"AK", "s", longer}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_null(gh_aws_creds_new(bad[i].ak, bad[i].sk, bad[i].tok, err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
    longer[GH_AWS_TOKEN_MAX] = '\0';
    c = gh_aws_creds_new("AK", "s", longer, err, sizeof(err));
    assert_non_null(c);
    gh_aws_creds_free(c);
    char ak[GH_AWS_ACCESS_KEY_ID_MAX + 2];
    memset(ak, 'A', sizeof(ak) - 1);
    ak[sizeof(ak) - 1] = '\0';
    assert_null(gh_aws_creds_new(ak, "s", NULL, err, sizeof(err)));
    ak[GH_AWS_ACCESS_KEY_ID_MAX] = '\0';
    c = gh_aws_creds_new(ak, "s", NULL, err, sizeof(err));
    assert_non_null(c);
    gh_aws_creds_free(c);

    assert_true(gh_aws_name_is_valid("us-east-1"));
    assert_true(gh_aws_name_is_valid("lambda"));
    assert_false(gh_aws_name_is_valid(NULL));
    assert_false(gh_aws_name_is_valid(""));
    assert_false(gh_aws_name_is_valid("Lambda"));
    assert_false(gh_aws_name_is_valid("a.b"));
    char n[70];
    memset(n, 'a', 63);
    n[63] = '\0';
    assert_true(gh_aws_name_is_valid(n));
    n[63] = 'a';
    n[64] = '\0';
    assert_false(gh_aws_name_is_valid(n));
}

/* A tiny error buffer truncates; a zero-sized one is left alone. */
static void test_small_err(void **state)
{
    (void)state;
    char e[8];
    assert_null(gh_aws_creds_load(&env, "nope", e, sizeof(e)));
    assert_int_equal(strlen(e), 7);
    assert_null(gh_aws_creds_load(&env, "nope", NULL, 0));
    write_file("home/.aws/credentials", "[x\n");
    assert_null(gh_aws_creds_load(&env, NULL, e, 3));
    assert_int_equal(strlen(e), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_region, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_err, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
