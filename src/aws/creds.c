/*
 * Static AWS credentials and the region, from the environment and the shared
 * credentials and config files (docs/internals/aws.md has the precedence and
 * the sources it was taken from: the AWS SDKs and Tools reference guide and
 * botocore, the AWS CLI's core).
 *
 * Secrets: file contents are read into one buffer that is wiped before it
 * is freed (never grown with realloc, which would leave copies behind);
 * credentials live in one allocation wiped by gh_aws_creds_free. Error
 * messages name files, lines and keys, never values.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <gatehouse/aws.h>
#include <gatehouse/file.h>

#include "aws/creds.h"
#include "aws/ini.h"

/* A credentials or config file is a few hundred bytes; a larger one than
 * this is not one (or is something to refuse rather than hold). */
#define FILE_MAX (1024 * 1024)
#define PROFILE_MAX 64

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t cap, const char *fmt,
                                                         ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ---- values ---- */

static int access_key_is_valid(const char *s, size_t n)
{
    if (n == 0 || n > GH_AWS_ACCESS_KEY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* Visible ASCII only: a secret goes into an HMAC key, a token into a header
 * value; neither may hold a blank, a control byte or a byte past ASCII. */
static int visible_is_valid(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

static int name_is_valid(const char *s, size_t n)
{
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

int gh_aws_name_is_valid(const char *s)
{
    return s != NULL && name_is_valid(s, strlen(s));
}

static const char *const bad_key_id = "is not an access key id (1-128 letters, digits or '_')";
static const char *const bad_secret = "is not a secret key (1-256 visible ASCII characters)";
static const char *const bad_token = "is not a session token (1-16384 visible ASCII characters)";

/* ---- the record ---- */

static gh_aws_creds_t *creds_make(const char *ak, size_t akn, const char *sk, size_t skn,
                                  const char *tok, size_t tokn, const char *source)
{
    size_t srcn = strlen(source);
    size_t size = sizeof(gh_aws_creds_t) + akn + 1 + skn + 1 + (tok ? tokn + 1 : 0) + srcn + 1;
    gh_aws_creds_t *c = calloc(1, size);
    if (c == NULL)
        return NULL;
    char *p = (char *)(c + 1);
    c->size = size;
    c->access_key_id = memcpy(p, ak, akn);
    c->access_key_id_len = akn;
    p += akn + 1;
    c->secret = memcpy(p, sk, skn);
    c->secret_len = skn;
    p += skn + 1;
    if (tok != NULL) {
        c->token = memcpy(p, tok, tokn);
        c->token_len = tokn;
        p += tokn + 1;
    }
    c->source = memcpy(p, source, srcn);
    return c;
}

gh_aws_creds_t *gh_aws_creds_new(const char *access_key_id, const char *secret_access_key,
                                 const char *session_token, char *err, size_t errcap)
{
    size_t akn = access_key_id ? strlen(access_key_id) : 0;
    size_t skn = secret_access_key ? strlen(secret_access_key) : 0;
    size_t tokn = session_token ? strlen(session_token) : 0;
    if (!access_key_is_valid(access_key_id, akn)) {
        seterr(err, errcap, "the access key id %s", bad_key_id);
        return NULL;
    }
    if (!visible_is_valid(secret_access_key, skn, GH_AWS_SECRET_MAX)) {
        seterr(err, errcap, "the secret access key %s", bad_secret);
        return NULL;
    }
    if (tokn > 0 && !visible_is_valid(session_token, tokn, GH_AWS_TOKEN_MAX)) {
        seterr(err, errcap, "the session token %s", bad_token);
        return NULL;
    }
    gh_aws_creds_t *c = creds_make(access_key_id, akn, secret_access_key, skn,
                                   tokn > 0 ? session_token : NULL, tokn, "explicit");
    if (c == NULL)
        seterr(err, errcap, "out of memory");
    return c;
}

void gh_aws_creds_free(gh_aws_creds_t *c)
{
    if (c != NULL)
        OPENSSL_clear_free(c, c->size);
}

const char *gh_aws_creds_access_key_id(const gh_aws_creds_t *c)
{
    return c->access_key_id;
}

const char *gh_aws_creds_source(const gh_aws_creds_t *c)
{
    return c->source;
}

int gh_aws_creds_has_session_token(const gh_aws_creds_t *c)
{
    return c->token != NULL;
}

/* ---- the environment ---- */

/* A variable's value, NULL when unset or empty: the SDKs treat an empty
 * AWS_ACCESS_KEY_ID, AWS_PROFILE ... as unset. */
static const char *env_get(const gh_aws_env_t *env, const char *name)
{
    const char *v = env != NULL ? env->getenv(name, env->arg) : getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The home directory: HOME, else (process environment only) the passwd
 * entry, as Python's expanduser does for botocore. NULL when neither. */
static const char *home_dir(const gh_aws_env_t *env, char *buf, size_t cap)
{
    const char *h = env_get(env, "HOME");
    if (h != NULL || env != NULL)
        return h;
    struct passwd pw, *res = NULL;
    if (getpwuid_r(getuid(), &pw, buf, cap, &res) != 0 || res == NULL || pw.pw_dir == NULL ||
        pw.pw_dir[0] == '\0')
        return NULL;
    return pw.pw_dir;
}

/* The path of a shared file: $var (a leading "~/" expanded), else
 * ~/.aws/<name>. Returns 1 with path set, 0 when there is no home to put
 * the default under, -ENAMETOOLONG. */
static int file_path(const gh_aws_env_t *env, const char *var, const char *name, char *path,
                     size_t cap, char *err, size_t errcap)
{
    const char *v = env_get(env, var);
    int n;
    if (v != NULL && !(v[0] == '~' && (v[1] == '/' || v[1] == '\0'))) {
        n = snprintf(path, cap, "%s", v);
    } else {
        char pwbuf[4096];
        const char *home = home_dir(env, pwbuf, sizeof(pwbuf));
        if (home == NULL)
            return 0;
        n = v != NULL ? snprintf(path, cap, "%s%s", home, v + 1)
                      : snprintf(path, cap, "%s/.aws/%s", home, name);
    }
    if (n < 0 || (size_t)n >= cap) {
        seterr(err, errcap, "the path of the AWS %s file is too long (from %s)", name,
               v != NULL ? var : "HOME");
        return -ENAMETOOLONG;
    }
    return 1;
}

/* Reads a whole file into one exact-size buffer (caller wipes and frees).
 * Returns 0, 1 when the file does not exist, or a negative errno with err. */
static int read_file(const char *path, char **text, size_t *len, char *err, size_t errcap)
{
    *text = NULL;
    *len = 0;
    int fd = gh_file_open(path);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        int e = errno;
        seterr(err, errcap, "%s: %s", path, gh_file_strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        seterr(err, errcap, "%s: %s", path, strerror(e));
        return -e;
    }
    if (st.st_size > FILE_MAX) {
        close(fd);
        seterr(err, errcap, "%s: larger than %d bytes", path, FILE_MAX);
        return -EFBIG;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        seterr(err, errcap, "%s: out of memory", path);
        return -ENOMEM;
    }
    /* One byte more than the size: a file that grew meanwhile is refused
     * rather than read in part. */
    for (;;) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            OPENSSL_clear_free(buf, cap);
            seterr(err, errcap, "%s: %s", path, strerror(e));
            return -e;
        }
        if (k == 0)
            break;
        n += (size_t)k;
        if (n == cap) {
            close(fd);
            OPENSSL_clear_free(buf, cap);
            seterr(err, errcap, "%s: changed while being read", path);
            return -EAGAIN;
        }
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* ---- profiles ---- */

typedef struct {
    char path[PATH_MAX];
    int has_path; /* a path was known (else no HOME for the default) */
    int exists;
    char *text; /* the file, wiped at close */
    size_t size;
    gh_aws_ini_profile_t pf;
} shared_file_t;

typedef struct {
    char name[PROFILE_MAX + 1];
    int named; /* chosen by the caller or AWS_PROFILE, not "default" by default */
    shared_file_t creds, config;
} profile_t;

static void profile_close(profile_t *pr)
{
    shared_file_t *fs[2] = {&pr->creds, &pr->config};
    for (int i = 0; i < 2; i++)
        if (fs[i]->text != NULL)
            OPENSSL_clear_free(fs[i]->text, fs[i]->size + 1);
}

static int profile_name_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PROFILE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '[' ||
            s[i] == ']')
            return 0;
    return 1;
}

static int file_open(const gh_aws_env_t *env, const char *var, const char *name,
                     gh_aws_ini_kind_t kind, const char *profile, shared_file_t *f, char *err,
                     size_t errcap)
{
    int r = file_path(env, var, name, f->path, sizeof(f->path), err, errcap);
    if (r <= 0)
        return r;
    f->has_path = 1;
    r = read_file(f->path, &f->text, &f->size, err, errcap);
    if (r != 0)
        return r > 0 ? 0 : r;
    f->exists = 1;
    return gh_aws_ini_read(f->text, f->size, f->path, kind, profile, &f->pf, err, errcap);
}

/* Chooses the profile (profile, else AWS_PROFILE, else "default") and reads
 * its sections of both files. profile_close after, whatever it returns. */
static int profile_open(const gh_aws_env_t *env, const char *profile, profile_t *pr, char *err,
                        size_t errcap)
{
    memset(pr, 0, sizeof(*pr));
    const char *name = profile != NULL ? profile : env_get(env, "AWS_PROFILE");
    pr->named = name != NULL;
    if (name == NULL)
        name = "default";
    if (!profile_name_is_valid(name)) {
        seterr(err, errcap,
               "AWS profile name%s is malformed (1-%d visible ASCII characters but '[' ']')",
               profile != NULL ? "" : " in AWS_PROFILE", PROFILE_MAX);
        return -EINVAL;
    }
    memcpy(pr->name, name, strlen(name) + 1);
    int r = file_open(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials", GH_AWS_INI_CREDENTIALS,
                      pr->name, &pr->creds, err, errcap);
    if (r == 0)
        r = file_open(env, "AWS_CONFIG_FILE", "config", GH_AWS_INI_CONFIG, pr->name, &pr->config,
                      err, errcap);
    return r;
}

/* "PATH" or "PATH (missing)" or "(no HOME)": where a file was looked for. */
static const char *where(const shared_file_t *f, char *buf, size_t cap)
{
    if (!f->has_path)
        return "(no file: HOME is not set)";
    snprintf(buf, cap, "%s%s", f->path, f->exists ? "" : " (missing)");
    return buf;
}

/* Credentials from one file's section, when it has any key. Returns 1 with
 * *out set, 0 when the section has no key, negative with err. */
static int profile_keys(const profile_t *pr, const shared_file_t *f, gh_aws_creds_t **out,
                        char *err, size_t errcap)
{
    const gh_aws_ini_profile_t *pf = &f->pf;
    const gh_aws_ini_val_t *ak = &pf->v[GH_AWS_INI_ACCESS_KEY_ID];
    const gh_aws_ini_val_t *sk = &pf->v[GH_AWS_INI_SECRET_ACCESS_KEY];
    const gh_aws_ini_val_t *st = &pf->v[GH_AWS_INI_SESSION_TOKEN];
    const gh_aws_ini_val_t *lt = &pf->v[GH_AWS_INI_SECURITY_TOKEN];
    if (pf->section_line == 0 || (ak->p == NULL && sk->p == NULL && st->p == NULL && lt->p == NULL))
        return 0;
    if (ak->p == NULL || sk->p == NULL) {
        seterr(err, errcap, "%s:%u: profile %s has %s but no %s", f->path, pf->section_line,
               pr->name,
               ak->p != NULL   ? "aws_access_key_id"
               : sk->p != NULL ? "aws_secret_access_key"
                               : "a session token",
               ak->p != NULL ? "aws_secret_access_key" : "aws_access_key_id");
        return -EINVAL;
    }
    if (!access_key_is_valid(ak->p, ak->len)) {
        seterr(err, errcap, "%s:%u: aws_access_key_id %s", f->path, ak->line, bad_key_id);
        return -EINVAL;
    }
    if (!visible_is_valid(sk->p, sk->len, GH_AWS_SECRET_MAX)) {
        seterr(err, errcap, "%s:%u: aws_secret_access_key %s", f->path, sk->line, bad_secret);
        return -EINVAL;
    }
    const gh_aws_ini_val_t *tok = st->p != NULL ? st : lt->p != NULL ? lt : NULL;
    if (st->p != NULL && lt->p != NULL &&
        (st->len != lt->len || memcmp(st->p, lt->p, st->len) != 0)) {
        seterr(err, errcap,
               "%s:%u: profile %s sets aws_session_token and aws_security_token (the older "
               "name) to different values",
               f->path, lt->line, pr->name);
        return -EINVAL;
    }
    if (tok != NULL && !visible_is_valid(tok->p, tok->len, GH_AWS_TOKEN_MAX)) {
        seterr(err, errcap, "%s:%u: %s %s", f->path, tok->line,
               tok == st ? "aws_session_token" : "aws_security_token", bad_token);
        return -EINVAL;
    }
    char source[PROFILE_MAX + PATH_MAX + 16];
    snprintf(source, sizeof(source), "profile %s in %s", pr->name, f->path);
    *out =
        creds_make(ak->p, ak->len, sk->p, sk->len, tok ? tok->p : NULL, tok ? tok->len : 0, source);
    if (*out == NULL) {
        seterr(err, errcap, "out of memory");
        return -ENOMEM;
    }
    return 1;
}

static int unsupported(const profile_t *pr, int before, char *err, size_t errcap)
{
    const shared_file_t *fs[2] = {&pr->creds, &pr->config};
    for (int i = 0; i < 2; i++) {
        const gh_aws_ini_profile_t *pf = &fs[i]->pf;
        const char *key = before ? pf->unsupported_before : pf->unsupported_after;
        unsigned line = before ? pf->unsupported_before_line : pf->unsupported_after_line;
        if (key == NULL)
            continue;
        seterr(err, errcap,
               "%s:%u: profile %s uses %s, a credential provider gatehouse does not support "
               "(only static keys: aws_access_key_id, aws_secret_access_key, aws_session_token)",
               fs[i]->path, line, pr->name, key);
        return -ENOTSUP;
    }
    return 0;
}

static gh_aws_creds_t *creds_from_env(const gh_aws_env_t *env, int *done, char *err, size_t errcap)
{
    const char *ak = env_get(env, "AWS_ACCESS_KEY_ID");
    const char *sk = env_get(env, "AWS_SECRET_ACCESS_KEY");
    const char *st = env_get(env, "AWS_SESSION_TOKEN");
    const char *lt = env_get(env, "AWS_SECURITY_TOKEN");
    *done = 0;
    if (ak == NULL && sk == NULL)
        return NULL;
    *done = 1;
    /* botocore reads a lone secret as "no environment credentials" and
     * moves on to the files; a half-set pair is a mistake to report, not
     * to sign around. */
    if (ak == NULL || sk == NULL) {
        seterr(err, errcap, "%s is set but %s is not",
               ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
               ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return NULL;
    }
    if (st != NULL && lt != NULL && strcmp(st, lt) != 0) {
        seterr(err, errcap,
               "AWS_SESSION_TOKEN and AWS_SECURITY_TOKEN (the older name) are set to different "
               "values");
        return NULL;
    }
    const char *tok = st != NULL ? st : lt;
    if (!access_key_is_valid(ak, strlen(ak))) {
        seterr(err, errcap, "AWS_ACCESS_KEY_ID %s", bad_key_id);
        return NULL;
    }
    if (!visible_is_valid(sk, strlen(sk), GH_AWS_SECRET_MAX)) {
        seterr(err, errcap, "AWS_SECRET_ACCESS_KEY %s", bad_secret);
        return NULL;
    }
    if (tok != NULL && !visible_is_valid(tok, strlen(tok), GH_AWS_TOKEN_MAX)) {
        seterr(err, errcap, "%s %s", st ? "AWS_SESSION_TOKEN" : "AWS_SECURITY_TOKEN", bad_token);
        return NULL;
    }
    gh_aws_creds_t *c = creds_make(ak, strlen(ak), sk, strlen(sk), tok,
                                   tok != NULL ? strlen(tok) : 0, "environment");
    if (c == NULL)
        seterr(err, errcap, "out of memory");
    return c;
}

gh_aws_creds_t *gh_aws_creds_load(const gh_aws_env_t *env, const char *profile, char *err,
                                  size_t errcap)
{
    /* An explicit profile wins over the environment's keys (botocore drops
     * its environment provider then); AWS_PROFILE does not. */
    if (profile == NULL) {
        int done;
        gh_aws_creds_t *c = creds_from_env(env, &done, err, errcap);
        if (done)
            return c;
        /* EKS and other web identity setups: botocore assumes that role
         * before it looks at any profile, so the files' keys would be
         * another identity. */
        if (env_get(env, "AWS_ROLE_ARN") != NULL &&
            env_get(env, "AWS_WEB_IDENTITY_TOKEN_FILE") != NULL) {
            seterr(err, errcap,
                   "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE ask for web identity "
                   "credentials, which gatehouse does not support (only static keys)");
            return NULL;
        }
    }
    profile_t *pr = malloc(sizeof(*pr));
    if (pr == NULL) {
        seterr(err, errcap, "out of memory");
        return NULL;
    }
    gh_aws_creds_t *c = NULL;
    int r = profile_open(env, profile, pr, err, errcap);
    if (r == 0)
        r = unsupported(pr, 1, err, errcap);
    if (r == 0)
        r = profile_keys(pr, &pr->creds, &c, err, errcap);
    if (r == 0)
        r = unsupported(pr, 0, err, errcap);
    if (r == 0)
        r = profile_keys(pr, &pr->config, &c, err, errcap);
    if (r == 0) {
        char w1[PATH_MAX + 16], w2[PATH_MAX + 16];
        const char *a = where(&pr->creds, w1, sizeof(w1)), *b = where(&pr->config, w2, sizeof(w2));
        if (pr->named && pr->creds.pf.section_line == 0 && pr->config.pf.section_line == 0)
            seterr(err, errcap, "AWS profile %s%s is in neither %s nor %s", pr->name,
                   profile != NULL ? "" : " (from AWS_PROFILE)", a, b);
        else
            seterr(err, errcap,
                   "no AWS credentials: %sprofile %s has no aws_access_key_id in %s or %s",
                   profile != NULL ? "" : "AWS_ACCESS_KEY_ID is not set and ", pr->name, a, b);
    }
    profile_close(pr);
    free(pr);
    return c;
}

int gh_aws_region_load(const gh_aws_env_t *env, const char *profile, char *region, size_t cap,
                       char *err, size_t errcap)
{
    /* AWS_REGION is the SDKs' name and wins; AWS_DEFAULT_REGION is the
     * CLI's (botocore reads only it). */
    static const char *const vars[] = {"AWS_REGION", "AWS_DEFAULT_REGION"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = env_get(env, vars[i]);
        if (v == NULL)
            continue;
        size_t n = strlen(v);
        if (!name_is_valid(v, n)) {
            seterr(err, errcap, "%s is not a region name (1-63 of a-z, 0-9, '-')", vars[i]);
            return -EINVAL;
        }
        if (n >= cap) {
            seterr(err, errcap, "region buffer too small");
            return -ENOSPC;
        }
        memcpy(region, v, n + 1);
        return 0;
    }
    profile_t *pr = malloc(sizeof(*pr));
    if (pr == NULL) {
        seterr(err, errcap, "out of memory");
        return -ENOMEM;
    }
    int r = profile_open(env, profile, pr, err, errcap);
    if (r == 0) {
        /* The credentials file's profile overrides the config's, key by key
         * (botocore merges them so; the reference guide says the same). */
        const shared_file_t *f =
            pr->creds.pf.v[GH_AWS_INI_REGION].p != NULL ? &pr->creds : &pr->config;
        const gh_aws_ini_val_t *v = &f->pf.v[GH_AWS_INI_REGION];
        if (v->p == NULL) {
            char w1[PATH_MAX + 16], w2[PATH_MAX + 16];
            seterr(err, errcap,
                   "no AWS region: AWS_REGION and AWS_DEFAULT_REGION are not set and profile %s "
                   "has no region in %s or %s",
                   pr->name, where(&pr->creds, w1, sizeof(w1)), where(&pr->config, w2, sizeof(w2)));
            r = -ENOENT;
        } else if (!name_is_valid(v->p, v->len)) {
            seterr(err, errcap, "%s:%u: region is not a region name (1-63 of a-z, 0-9, '-')",
                   f->path, v->line);
            r = -EINVAL;
        } else if (v->len >= cap) {
            seterr(err, errcap, "region buffer too small");
            r = -ENOSPC;
        } else {
            memcpy(region, v->p, v->len);
            region[v->len] = '\0';
        }
    }
    profile_close(pr);
    free(pr);
    return r;
}
