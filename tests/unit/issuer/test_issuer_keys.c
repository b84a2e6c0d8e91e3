/*
 * The issuer's signing keys (src/issuer/keydir.c, keyset.c, manifest.c):
 * the whole rotation timeline with an injected clock, what a token signed
 * at each instant meets at every later one, the directory's refusals
 * (permissions, corrupt manifests, swapped and missing key files), and
 * processes racing on one directory (fork).
 */
#include <dirent.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/issuer_keys.h>

#include "issuer/keys_internal.h"

#define T0 1700000000LL

static char root[64];

/* A fresh state directory per test: <root>/state, keys in state/issuer. */
static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/gh_ikeys_XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static gh_issuer_keys_conf_t conf(void)
{
    char sd[96];
    gh_issuer_keys_conf_t c;
    snprintf(sd, sizeof(sd), "%s/state", root);
    assert_int_equal(gh_issuer_keys_conf_init(&c, sd), 0);
    return c;
}

static void path_of(char *out, size_t cap, const gh_issuer_keys_conf_t *c, const char *name)
{
    snprintf(out, cap, "%s/%s", c->dir, name);
}

static void key_path(char *out, size_t cap, const gh_issuer_keys_conf_t *c, const char *kid)
{
    snprintf(out, cap, "%s/%s.pem", c->dir, kid);
}

static gh_issuer_keyset_t *load_ok(const gh_issuer_keys_conf_t *c, int64_t now)
{
    char err[512] = "";
    int rc = 0;
    gh_issuer_keyset_t *s = gh_issuer_keyset_load(c->dir, now, NULL, &rc, err, sizeof(err));
    if (s == NULL)
        fail_msg("load failed (%d): %s", rc, err);
    return s;
}

static int load_fails(const gh_issuer_keys_conf_t *c, int64_t now, const char *needle)
{
    char err[512] = "";
    int rc = 0;
    gh_issuer_keyset_t *s = gh_issuer_keyset_load(c->dir, now, NULL, &rc, err, sizeof(err));
    if (s != NULL)
        fail_msg("loaded a directory that should be refused (%s)", needle);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not say '%s'", err, needle);
    return rc;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (l >= s && strcmp(e->d_name + l - s, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static gh_issuer_rotate_result_t rotate_ok(const gh_issuer_keys_conf_t *c, unsigned flags,
                                           int64_t now)
{
    gh_issuer_rotate_result_t r;
    char err[512] = "";
    int rc = gh_issuer_keys_rotate(c, flags, now, &r, err, sizeof(err));
    if (rc != 0)
        fail_msg("rotate failed (%d): %s", rc, err);
    return r;
}

/* A token signed by set at now, living ttl (capped by the signer's bound). */
static char *mint(const gh_issuer_keyset_t *set, int64_t now, int64_t ttl, char *kid_out,
                  int64_t *exp_out)
{
    gh_issuer_signer_t s;
    char payload[160], err[200];
    if (gh_issuer_keyset_signer(set, now, &s) != 0)
        fail_msg("no signer at %lld", (long long)now);
    int64_t exp = now + ttl;
    if (s.max_exp != 0 && exp > s.max_exp)
        exp = s.max_exp;
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"https://gh.test\",\"sub\":\"svc\",\"iat\":%lld,\"exp\":%lld}",
             (long long)now, (long long)exp);
    char *tok = gh_issuer_signer_sign(&s, "at+jwt", payload, strlen(payload), err, sizeof(err));
    if (tok == NULL)
        fail_msg("sign: %s", err);
    if (kid_out != NULL)
        snprintf(kid_out, GH_ISSUER_KID_LEN + 1, "%s", s.kid);
    *exp_out = exp;
    return tok;
}

/* 0 when set verifies tok (signature and claims) at now; the reason's code
 * otherwise. */
static int verify_at(const gh_issuer_keyset_t *set, const char *tok, int64_t now, int64_t skew)
{
    gh_jwt_t t;
    gh_jwt_reason_t why;
    gh_jwks_t *keys = gh_issuer_keyset_jwks(set, now);
    if (keys == NULL)
        return -ENOKEY;
    assert_int_equal(gh_jwt_parse(tok, strlen(tok), &t, &why), 0);
    int rc = gh_jwt_verify(&t, keys, &why);
    gh_jwt_claims_policy_t p = {.issuer = "https://gh.test", .skew = skew, .typ = "at+jwt"};
    if (rc == 0)
        rc = gh_jwt_check_claims(&t, &p, now, &why, NULL, 0);
    gh_jwt_dispose(&t);
    return rc;
}

/* ---- thumbprints, settings ---- */

static void test_thumbprint_rfc7638_vector(void **state)
{
    (void)state;
    /* RFC 7638 section 3.1: the example key and its thumbprint. */
    json_t *jwk = json_pack(
        "{s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "n",
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e", "AQAB", "alg", "RS256", "kid", "2011-04-29");
    assert_non_null(jwk);
    char kid[GH_ISSUER_KID_LEN + 1];
    assert_int_equal(gh_issuer_jwk_thumbprint(jwk, kid), 0);
    assert_string_equal(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    /* A member that would need escaping is not hashed as if it did not. */
    json_object_set_new(jwk, "e", json_string("AQ\"AB"));
    assert_int_equal(gh_issuer_jwk_thumbprint(jwk, kid), -EINVAL);
    json_decref(jwk);
    assert_true(gh_issuer_kid_valid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_false(gh_issuer_kid_valid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X"));
    assert_false(gh_issuer_kid_valid("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xss"));
    assert_false(gh_issuer_kid_valid("../LsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    assert_false(gh_issuer_kid_valid(""));
}

static void test_conf_defaults_and_checks(void **state)
{
    (void)state;
    char err[300];
    gh_issuer_keys_conf_t c;
    assert_int_equal(gh_issuer_keys_conf_init(&c, "st///"), 0);
    assert_string_equal(c.dir, "st/issuer");
    assert_int_equal(c.alg, GH_JWT_ES256);
    assert_int_equal(c.jwks_max_age, 300);
    assert_int_equal(c.publish_lead, 360);
    assert_int_equal(gh_issuer_keys_conf_check(&c, err, sizeof(err)), 0);
    c.publish_lead = 299;
    assert_int_equal(gh_issuer_keys_conf_check(&c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "max-age"));
    c.publish_lead = 300;
    c.alg = GH_JWT_HS256;
    assert_int_equal(gh_issuer_keys_conf_check(&c, err, sizeof(err)), -EINVAL);
    c.alg = GH_JWT_RS256;
    c.rsa_bits = 1024;
    assert_int_equal(gh_issuer_keys_conf_check(&c, err, sizeof(err)), -EINVAL);
    c.rsa_bits = 3072;
    c.max_token_ttl = 0;
    assert_int_equal(gh_issuer_keys_conf_check(&c, err, sizeof(err)), -EINVAL);
    gh_issuer_keys_conf_dispose(&c);
    assert_int_equal(gh_issuer_keys_conf_init(&c, NULL), 0);
    assert_string_equal(c.dir, "state/issuer");
    gh_issuer_keys_conf_dispose(&c);
    assert_int_equal(gh_issuer_keys_alg("EdDSA"), GH_JWT_EDDSA);
    assert_int_equal(gh_issuer_keys_alg("es256"), GH_JWT_ALG_UNKNOWN);
    assert_int_equal(gh_issuer_keys_alg("HS256"), GH_JWT_ALG_UNKNOWN);
}

/* ---- first start ---- */

static void test_first_start_makes_one_key_with_private_modes(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    assert_int_equal(gh_issuer_keys_ensure(&c, T0 + 5, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(c.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    path_of(p, sizeof(p), &c, GH_ISSUER_KEYS_MANIFEST);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.keys[0].alg, GH_JWT_ES256);
    assert_int_equal(m.keys[0].publish_at, T0);
    assert_int_equal(m.keys[0].sign_from, T0);
    assert_int_equal(m.keys[0].sign_until, 0);
    assert_int_equal(m.keys[0].retire_at, 0);
    assert_int_equal(m.max_token_ttl, 3600);
    key_path(p, sizeof(p), &c, m.keys[0].kid);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    /* It signs at once, and its JWKS holds it with its kid and alg. */
    gh_issuer_keyset_t *s = load_ok(&c, T0);
    gh_issuer_signer_t sg;
    assert_int_equal(gh_issuer_keyset_signer(s, T0, &sg), 0);
    assert_string_equal(sg.kid, m.keys[0].kid);
    assert_int_equal(sg.max_exp, 0);
    size_t len;
    const char *jwks = gh_issuer_keyset_jwks_json(s, T0, &len);
    assert_int_equal(strlen(jwks), len);
    assert_non_null(strstr(jwks, m.keys[0].kid));
    assert_non_null(strstr(jwks, "\"alg\":\"ES256\""));
    assert_null(strstr(jwks, "\"d\":")); /* never the private part */
    assert_int_equal(gh_issuer_keyset_next_change(s, T0), 0);
    /* A larger token lifetime declared later is recorded (once). */
    c.max_token_ttl = 7200;
    assert_int_equal(gh_issuer_keys_ensure(&c, T0 + 9, err, sizeof(err)), 0);
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.max_token_ttl, 7200);
    c.max_token_ttl = 60;
    assert_int_equal(gh_issuer_keys_ensure(&c, T0 + 9, err, sizeof(err)), 0);
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.max_token_ttl, 7200);
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_each_alg(void **state)
{
    (void)state;
    static const gh_jwt_alg_t algs[] = {GH_JWT_RS256, GH_JWT_EDDSA, GH_JWT_ES256};
    gh_issuer_keys_conf_t c = conf();
    c.alg = algs[0];
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    for (size_t i = 1; i < 3; i++) {
        c.alg = algs[i];
        rotate_ok(&c, 0, T0 + 10 * (int64_t)i);
    }
    /* At the last key's sign_from every key is published and each signs a
     * token that verifies. */
    int64_t t = T0 + 20 + c.publish_lead;
    gh_issuer_keyset_t *s = load_ok(&c, t);
    const char *jwks = gh_issuer_keyset_jwks_json(s, t, NULL);
    assert_non_null(strstr(jwks, "\"RS256\""));
    assert_non_null(strstr(jwks, "\"EdDSA\""));
    assert_non_null(strstr(jwks, "\"ES256\""));
    assert_int_equal(gh_jwks_count(gh_issuer_keyset_jwks(s, t)), 3);
    int64_t exp;
    char kid[GH_ISSUER_KID_LEN + 1];
    char *tok = mint(s, t, 600, kid, &exp);
    assert_int_equal(verify_at(s, tok, t + 1, 0), 0);
    assert_string_equal(kid, gh_issuer_keyset_manifest(s)->keys[2].kid);
    free(tok);
    /* Earlier instants: the RSA key, then the Ed25519 key signed. */
    tok = mint(s, T0 + 5, 600, kid, &exp);
    assert_string_equal(kid, gh_issuer_keyset_manifest(s)->keys[0].kid);
    assert_int_equal(verify_at(s, tok, T0 + 6, 0), 0);
    free(tok);
    tok = mint(s, T0 + 10 + c.publish_lead, 600, kid, &exp);
    assert_string_equal(kid, gh_issuer_keyset_manifest(s)->keys[1].kid);
    assert_int_equal(verify_at(s, tok, T0 + 11 + c.publish_lead, 0), 0);
    free(tok);
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

/* ---- the timeline ---- */

static void test_rotation_timeline(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_keyset_t *before = load_ok(&c, T0);
    const int64_t T = T0 + 1000, lead = c.publish_lead, ttl = c.max_token_ttl, lw = c.leeway;
    gh_issuer_rotate_result_t r = rotate_ok(&c, 0, T);
    assert_int_equal(r.has_previous, 1);
    assert_int_equal(r.added.publish_at, T);
    assert_int_equal(r.added.sign_from, T + lead);
    assert_int_equal(r.previous.sign_until, T + lead);
    assert_int_equal(r.previous.retire_at, T + lead + ttl + lw);
    gh_issuer_keyset_t *s = load_ok(&c, T);
    const char *k1 = gh_issuer_keyset_manifest(s)->keys[0].kid;
    const char *k2 = gh_issuer_keyset_manifest(s)->keys[1].kid;
    assert_string_equal(k2, r.added.kid);
    struct {
        int64_t at;
        const char *signer;
        int published; /* bit 0: K1, bit 1: K2 */
        gh_issuer_key_state_t k1, k2;
    } want[] = {
        {T, k1, 3, GH_ISSUER_KEY_SIGNING, GH_ISSUER_KEY_PUBLISHED},
        {T + lead - 1, k1, 3, GH_ISSUER_KEY_SIGNING, GH_ISSUER_KEY_PUBLISHED},
        {T + lead, k2, 3, GH_ISSUER_KEY_RETIRING, GH_ISSUER_KEY_SIGNING},
        {T + lead + ttl + lw - 1, k2, 3, GH_ISSUER_KEY_RETIRING, GH_ISSUER_KEY_SIGNING},
        {T + lead + ttl + lw, k2, 2, GH_ISSUER_KEY_RETIRED, GH_ISSUER_KEY_SIGNING},
        {T + 10 * ttl, k2, 2, GH_ISSUER_KEY_RETIRED, GH_ISSUER_KEY_SIGNING},
    };
    const gh_issuer_manifest_t *m = gh_issuer_keyset_manifest(s);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        gh_issuer_signer_t sg;
        assert_int_equal(gh_issuer_keyset_signer(s, want[i].at, &sg), 0);
        assert_string_equal(sg.kid, want[i].signer);
        const char *jwks = gh_issuer_keyset_jwks_json(s, want[i].at, NULL);
        assert_int_equal(strstr(jwks, k1) != NULL, (want[i].published & 1) != 0);
        assert_int_equal(strstr(jwks, k2) != NULL, (want[i].published & 2) != 0);
        assert_int_equal(gh_jwks_count(gh_issuer_keyset_jwks(s, want[i].at)),
                         want[i].published == 3 ? 2 : 1);
        assert_int_equal(gh_issuer_key_state(&m->keys[0], want[i].at), want[i].k1);
        assert_int_equal(gh_issuer_key_state(&m->keys[1], want[i].at), want[i].k2);
    }
    /* K1 while it still signs is bounded: a token must not outlive it. */
    gh_issuer_signer_t sg;
    assert_int_equal(gh_issuer_keyset_signer(s, T + 1, &sg), 0);
    assert_int_equal(sg.max_exp, T + lead + ttl);
    assert_int_equal(gh_issuer_keyset_next_change(s, T), T + lead);
    assert_int_equal(gh_issuer_keyset_next_change(s, T + lead), T + lead + ttl + lw);
    /* The JWKS generation changes exactly when the published keys do. */
    uint64_t g_both = gh_jwks_generation(gh_issuer_keyset_jwks(s, T));
    assert_int_equal(gh_jwks_generation(gh_issuer_keyset_jwks(s, T + lead)), g_both);
    assert_int_not_equal(gh_jwks_generation(gh_issuer_keyset_jwks(s, T + lead + ttl + lw)), g_both);
    assert_int_not_equal(gh_jwks_generation(gh_issuer_keyset_jwks(before, T)), g_both);
    /* A reload of the same directory keeps the generations. */
    gh_issuer_keyset_t *again = gh_issuer_keyset_load(c.dir, T + 2, s, NULL, err, sizeof(err));
    assert_non_null(again);
    assert_int_equal(gh_jwks_generation(gh_issuer_keyset_jwks(again, T + 2)), g_both);
    gh_issuer_keyset_unref(again);
    gh_issuer_keyset_unref(before);
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

/*
 * The promise of the issue: tokens signed before, during and after a
 * rotation all verify until they expire. Rotations at T1, at T2 within the
 * lead of T1 (a second rotation before the first key took over), and at
 * T3 later. At each instant the issuer signs with the set it would hold
 * then (reloaded after each rotation); the token must verify with the set
 * a verifier holds at every later instant up to its exp + leeway.
 */
static void test_tokens_verify_across_rotations(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    const int64_t lead = c.publish_lead, ttl = c.max_token_ttl, lw = c.leeway;
    const int64_t T1 = T0 + 500, T2 = T1 + 100, T3 = T2 + lead + ttl / 2;
    const int64_t rot[] = {T1, T2, T3};
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_keyset_t *sets[4];
    sets[0] = load_ok(&c, T0);
    for (int i = 0; i < 3; i++) {
        rotate_ok(&c, 0, rot[i]);
        sets[i + 1] = load_ok(&c, rot[i]);
    }
    /* Instants: every boundary of the final set, one second either side,
     * and a stride through the whole span. */
    int64_t at[600];
    size_t n = 0;
    const gh_issuer_manifest_t *m = gh_issuer_keyset_manifest(sets[3]);
    for (size_t i = 0; i < m->n; i++) {
        int64_t b[] = {m->keys[i].publish_at, m->keys[i].sign_from, m->keys[i].sign_until,
                       m->keys[i].retire_at};
        for (size_t j = 0; j < 4; j++)
            for (int64_t d = -1; b[j] != 0 && d <= 1; d++)
                at[n++] = b[j] + d;
    }
    for (int64_t t = T0; t < T3 + lead + 2 * ttl; t += 97)
        at[n++] = t;
    for (int i = 0; i < 3; i++)
        at[n++] = rot[i];
    /* sort, unique */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && at[j - 1] > at[j]; j--) {
            int64_t x = at[j];
            at[j] = at[j - 1];
            at[j - 1] = x;
        }
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (at[i] >= T0 && (u == 0 || at[u - 1] != at[i]))
            at[u++] = at[i];
    n = u;
    size_t checked = 0, signers_seen = 0;
    char last_kid[GH_ISSUER_KID_LEN + 1] = "";
    for (size_t i = 0; i < n; i++) {
        int64_t t = at[i], exp;
        int si = t < T1 ? 0 : t < T2 ? 1 : t < T3 ? 2 : 3;
        char kid[GH_ISSUER_KID_LEN + 1];
        char *tok = mint(sets[si], t, ttl, kid, &exp);
        /* Full lifetime: the signer's bound never shortens a token of the
         * lifetime the manifest was told of. */
        if (exp != t + ttl)
            fail_msg("token signed at T0+%lld cut to exp T0+%lld", (long long)(t - T0),
                     (long long)(exp - T0));
        if (strcmp(kid, last_kid) != 0) {
            signers_seen++;
            memcpy(last_kid, kid, sizeof(kid));
        }
        for (size_t j = i; j < n && at[j] < exp + lw; j++) {
            int64_t t2 = at[j];
            int vi = t2 < T1 ? 0 : t2 < T2 ? 1 : t2 < T3 ? 2 : 3;
            int rc = verify_at(sets[vi], tok, t2, lw);
            if (rc != 0)
                fail_msg("token signed at T0+%lld by %s refused at T0+%lld (exp T0+%lld): %d",
                         (long long)(t - T0), kid, (long long)(t2 - T0), (long long)(exp - T0), rc);
            checked++;
        }
        free(tok);
    }
    /* Four keys signed in turn (the second for T2 - T1 + ... seconds, the
     * key of T2 took over at its lead). */
    assert_int_equal(signers_seen, 4);
    assert_true(checked > 2000);
    /* And once retired, a key's tokens are refused: its set no longer has
     * it (only exp would refuse them anyway, but the key must be gone). */
    int64_t exp;
    char *old = mint(sets[0], T0 + 1, ttl, NULL, &exp);
    assert_int_equal(verify_at(sets[3], old, m->keys[0].retire_at, 100000), -ENOKEY);
    free(old);
    for (int i = 0; i < 4; i++)
        gh_issuer_keyset_unref(sets[i]);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_emergency_rotation(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    rotate_ok(&c, 0, T0 + 100); /* a pending key too: it goes as well */
    gh_issuer_keyset_t *s0 = load_ok(&c, T0 + 100);
    int64_t exp;
    char old_kid[GH_ISSUER_KID_LEN + 1];
    char *tok = mint(s0, T0 + 150, 600, old_kid, &exp);
    const int64_t T = T0 + 200;
    gh_issuer_rotate_result_t r = rotate_ok(&c, GH_ISSUER_ROTATE_NOW, T);
    assert_int_equal(r.pruned, 2);
    assert_int_equal(r.added.sign_from, T);
    assert_int_equal(r.previous.retire_at, T);
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    key_path(p, sizeof(p), &c, old_kid);
    assert_int_equal(access(p, F_OK), -1);
    gh_issuer_keyset_t *s = load_ok(&c, T);
    gh_issuer_signer_t sg;
    assert_int_equal(gh_issuer_keyset_signer(s, T, &sg), 0);
    assert_string_equal(sg.kid, r.added.kid);
    assert_int_equal(verify_at(s, tok, T, 60), -ENOKEY); /* the leaked key's token */
    char *fresh = mint(s, T, 600, NULL, &exp);
    assert_int_equal(verify_at(s, fresh, T, 0), 0);
    free(fresh);
    free(tok);
    gh_issuer_keyset_unref(s0);
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_prune_deletes_retired_keys_and_leftovers(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_rotate_result_t r = rotate_ok(&c, 0, T0 + 10);
    /* Leftovers of a writer that died: a temp file and an unnamed key. */
    path_of(p, sizeof(p), &c, ".tmp.123.abcdef");
    write_text(p, "half", 0600);
    char orphan[GH_ISSUER_KID_LEN + 8];
    memset(orphan, 'A', GH_ISSUER_KID_LEN);
    strcpy(orphan + GH_ISSUER_KID_LEN, ".pem");
    path_of(p, sizeof(p), &c, orphan);
    write_text(p, "orphan", 0600);
    path_of(p, sizeof(p), &c, "notes.txt");
    write_text(p, "operator's", 0600);
    /* Before retirement nothing of the manifest goes. */
    assert_int_equal(gh_issuer_keys_prune(c.dir, r.previous.retire_at - 1, 1, err, sizeof(err)), 0);
    assert_int_equal(count_files(c.dir, ".pem"), 2);
    path_of(p, sizeof(p), &c, "notes.txt");
    assert_int_equal(access(p, F_OK), 0);
    /* A load after retirement does not need the retired key's file. */
    key_path(p, sizeof(p), &c, r.previous.kid);
    char *pem = read_text(p);
    assert_int_equal(unlink(p), 0);
    gh_issuer_keyset_t *s = load_ok(&c, r.previous.retire_at);
    gh_issuer_keyset_unref(s);
    assert_int_equal(load_fails(&c, r.previous.retire_at - 1, "is missing"), -ENOENT);
    write_text(p, pem, 0600);
    free(pem);
    assert_int_equal(gh_issuer_keys_prune(c.dir, r.previous.retire_at, 1, err, sizeof(err)), 1);
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.keys[0].kid, r.added.kid);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    assert_int_equal(access(p, F_OK), -1);
    path_of(p, sizeof(p), &c, ".tmp.123.abcdef");
    assert_int_equal(access(p, F_OK), -1);
    path_of(p, sizeof(p), &c, "notes.txt");
    assert_int_equal(access(p, F_OK), 0);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_rotation_count_is_bounded(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    for (int i = 1; i < GH_ISSUER_KEYS_MAX; i++)
        rotate_ok(&c, 0, T0 + i);
    assert_int_equal(gh_issuer_keys_rotate(&c, 0, T0 + 100, NULL, err, sizeof(err)), -ENOSPC);
    assert_non_null(strstr(err, "wait until one retires"));
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, GH_ISSUER_KEYS_MAX);
    assert_int_equal(count_files(c.dir, ".pem"), GH_ISSUER_KEYS_MAX);
    /* Each loads and exactly one signs at each instant. */
    gh_issuer_keyset_t *s = load_ok(&c, T0 + 100);
    gh_issuer_signer_t sg;
    assert_int_equal(gh_issuer_keyset_signer(s, T0 + 100, &sg), 0);
    assert_string_equal(sg.kid, m.keys[0].kid); /* the rest wait for their lead */
    assert_int_equal(gh_issuer_keyset_signer(s, T0 + 10000, &sg), 0);
    assert_string_equal(sg.kid, m.keys[GH_ISSUER_KEYS_MAX - 1].kid);
    gh_issuer_keyset_unref(s);
    /* Emergency still works: it drops them all. */
    rotate_ok(&c, GH_ISSUER_ROTATE_NOW, T0 + 101);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    gh_issuer_keys_conf_dispose(&c);
}

/* A writer whose clock is behind the last one's: the new key still starts
 * after every window already given. */
static void test_rotation_with_clock_behind(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_rotate_result_t a = rotate_ok(&c, 0, T0 + 1000);
    gh_issuer_rotate_result_t b = rotate_ok(&c, 0, T0 + 500);
    assert_true(b.added.sign_from >= a.added.sign_from);
    gh_issuer_keyset_t *s = load_ok(&c, T0 + 500);
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

/* ---- refusals ---- */

static void test_permissions_are_refused(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    key_path(p, sizeof(p), &c, m.keys[0].kid);
    static const mode_t bad[] = {0644, 0640, 0604, 0660, 0601};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chmod(p, bad[i]), 0);
        assert_int_equal(load_fails(&c, T0, "chmod 600"), -EACCES);
    }
    assert_int_equal(chmod(p, 0400), 0); /* stricter is fine */
    gh_issuer_keyset_unref(load_ok(&c, T0));
    assert_int_equal(chmod(p, 0600), 0);
    path_of(p, sizeof(p), &c, GH_ISSUER_KEYS_MANIFEST);
    assert_int_equal(chmod(p, 0666), 0);
    assert_int_equal(load_fails(&c, T0, "open to group or others"), -EACCES);
    assert_int_equal(chmod(p, 0644), 0); /* readable manifest: no secret in it */
    gh_issuer_keyset_unref(load_ok(&c, T0));
    assert_int_equal(chmod(c.dir, 0770), 0);
    assert_int_equal(load_fails(&c, T0, "writable by group or others"), -EACCES);
    assert_int_equal(gh_issuer_keys_rotate(&c, 0, T0, NULL, err, sizeof(err)), -EACCES);
    assert_int_equal(chmod(c.dir, 0700), 0);
    gh_issuer_keyset_unref(load_ok(&c, T0));
    gh_issuer_keys_conf_dispose(&c);
}

static void test_swapped_and_foreign_key_files(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p1[256], p2[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    c.alg = GH_JWT_EDDSA;
    gh_issuer_rotate_result_t r = rotate_ok(&c, 0, T0 + 1);
    key_path(p1, sizeof(p1), &c, r.previous.kid);
    key_path(p2, sizeof(p2), &c, r.added.kid);
    char *a = read_text(p1), *b = read_text(p2);
    /* K1's file holds K2's key: refused, it would sign under a kid that
     * names another public key. (ES256 entry, EdDSA key.) */
    write_text(p1, b, 0600);
    assert_int_equal(load_fails(&c, T0 + 1, "is not a key for ES256"), -EINVAL);
    /* Same alg, other key: the thumbprint catches it. */
    gh_issuer_keys_conf_t c2 = c;
    char other_dir[128];
    snprintf(other_dir, sizeof(other_dir), "%s/other/issuer", root);
    c2.dir = other_dir;
    c2.alg = GH_JWT_ES256;
    assert_int_equal(gh_issuer_keys_ensure(&c2, T0, err, sizeof(err)), 1);
    gh_issuer_manifest_t m2;
    assert_int_equal(gh_issuer_keys_list(c2.dir, &m2, err, sizeof(err)), 0);
    char p3[256];
    key_path(p3, sizeof(p3), &c2, m2.keys[0].kid);
    char *foreign = read_text(p3);
    write_text(p1, foreign, 0600);
    assert_int_equal(load_fails(&c, T0 + 1, "holds another key"), -EINVAL);
    write_text(p1, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", 0600);
    assert_int_equal(load_fails(&c, T0 + 1, "not a PEM private key"), -EINVAL);
    write_text(p1, a, 0600);
    gh_issuer_keyset_unref(load_ok(&c, T0 + 1));
    /* A directory in place of a key file; a missing one. */
    assert_int_equal(unlink(p1), 0);
    assert_int_equal(load_fails(&c, T0 + 1, "is missing"), -ENOENT);
    assert_int_equal(mkdir(p1, 0700), 0);
    assert_int_equal(load_fails(&c, T0 + 1, "not a regular file"), -EINVAL);
    rmdir(p1);
    free(a);
    free(b);
    free(foreign);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_corrupt_manifests_are_refused(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512], p[256];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    gh_issuer_rotate_result_t r = rotate_ok(&c, 0, T0 + 1);
    path_of(p, sizeof(p), &c, GH_ISSUER_KEYS_MANIFEST);
    char *good = read_text(p);
    char k1[64], k2[64];
    snprintf(k1, sizeof(k1), "%s", r.previous.kid);
    snprintf(k2, sizeof(k2), "%s", r.added.kid);
    char buf[4096];
    const int64_t s1 = T0, u1 = r.previous.sign_until, x1 = r.previous.retire_at;
    const int64_t s2 = r.added.sign_from;
#define KEYFMT                                                                                     \
    "{\"kid\":\"%s\",\"alg\":\"%s\",\"created_at\":%lld,\"publish_at\":%lld,\"sign_from\":%lld,"   \
    "\"sign_until\":%lld,\"retire_at\":%lld}"
    struct {
        const char *why;
        const char *alg1;
        int64_t p2, f2, u2, r2;
        const char *extra;
    } cases[] = {
        {"sign before it is published", "ES256", s2 + 1, s2, 0, 0, ""},
        {"exactly one key must be open", "ES256", T0 + 1, s2, s2 + 10, s2 + 20, ""},
        {"both sign at the same time", "ES256", T0 + 1, u1 - 1, 0, 0, ""},
        {"alg must be", "HS256", T0 + 1, s2, 0, 0, ""},
        {"retire_at must be set exactly", "ES256", T0 + 1, s2, 0, s2 + 5, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "{\"version\":1,\"max_token_ttl\":3600,\"leeway\":60,\"keys\":[" KEYFMT "," KEYFMT
                 "]%s}",
                 k1, cases[i].alg1, (long long)s1, (long long)s1, (long long)s1, (long long)u1,
                 (long long)x1, k2, "ES256", (long long)cases[i].p2, (long long)cases[i].p2,
                 (long long)cases[i].f2, (long long)cases[i].u2, (long long)cases[i].r2,
                 cases[i].extra);
        write_text(p, buf, 0600);
        assert_int_equal(load_fails(&c, T0 + 1, cases[i].why), -EINVAL);
    }
    /* The same document, rebuilt right, loads: the cases fail for their
     * reason, not for the template. */
    snprintf(buf, sizeof(buf),
             "{\"version\":1,\"max_token_ttl\":3600,\"leeway\":60,\"keys\":[" KEYFMT "," KEYFMT
             "]}",
             k1, "ES256", (long long)s1, (long long)s1, (long long)s1, (long long)u1, (long long)x1,
             k2, "ES256", (long long)(T0 + 1), (long long)(T0 + 1), (long long)s2, 0LL, 0LL);
    write_text(p, buf, 0600);
    gh_issuer_keyset_unref(load_ok(&c, T0 + 1));
    /* Text-level damage. */
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        {"\"version\": 1", "\"version\": 2", "version must be 1"},
        {"\"version\": 1", "\"version\": 1, \"version\": 1", "not JSON"},
        {"\"leeway\": 60", "\"leeway\": \"60\"", "leeway must be an integer"},
        {"\"leeway\": 60", "\"leeway\": 60.0", "leeway must be an integer"},
        {"\"leeway\": 60", "\"leeway\": -1", "leeway must be an integer"},
        {"\"leeway\": 60", "\"leeway\": 60, \"extra\": 1", "unknown member 'extra'"},
        {"\"sign_until\": 0", "\"sign_until\": 1e3", "sign_until must be an integer"},
        {"\"sign_until\": 0", "\"sign_until\": 99999999999999", "sign_until must be an integer"},
        {"\"alg\": \"ES256\"", "\"alg\": \"none\"", "alg must be"},
        {"\"kid\": \"", "\"kid\": \"../", "kid must be a key thumbprint"},
        {"\"keys\": [", "\"keys\": 5, \"x\": [", "unknown member"},
        {"\"created_at\"", "\"Created_at\"", "unknown member 'Created_at'"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *at = strstr(good, edits[i].from);
        if (at == NULL)
            fail_msg("the manifest has no '%s':\n%s", edits[i].from, good);
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - good), good, edits[i].to,
                 at + strlen(edits[i].from));
        write_text(p, buf, 0600);
        assert_int_equal(load_fails(&c, T0 + 1, edits[i].why), -EINVAL);
        assert_int_equal(gh_issuer_keys_rotate(&c, 0, T0 + 2, NULL, err, sizeof(err)), -EINVAL);
    }
    write_text(p, "", 0600);
    assert_int_equal(load_fails(&c, T0 + 1, "not JSON"), -EINVAL);
    write_text(p, "{\"version\":1,\"max_token_ttl\":3600,\"leeway\":60,\"keys\":[]}", 0600);
    assert_int_equal(load_fails(&c, T0 + 1, "1 to 16 keys"), -EINVAL);
    /* A NUL inside: refused, not read up to it. */
    int fd = open(p, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
    assert_int_equal(write(fd, "\0", 1), 1);
    close(fd);
    assert_int_equal(load_fails(&c, T0 + 1, "NUL"), -EINVAL);
    /* The good one loads again: the refusals kept nothing behind. */
    write_text(p, good, 0600);
    gh_issuer_keyset_unref(load_ok(&c, T0 + 1));
    /* Writing what would break the rules is refused before it lands. */
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    m.keys[1].sign_until = 0;
    m.keys[0].sign_until = 0;
    m.keys[0].retire_at = 0;
    assert_int_equal(gh_issuer_manifest_check(&m, err, sizeof(err)), -EINVAL);
    free(good);
    gh_issuer_keys_conf_dispose(&c);
#undef KEYFMT
}

static void test_manifest_round_trip(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    for (int i = 1; i < 5; i++)
        rotate_ok(&c, 0, T0 + 1000 * i);
    gh_issuer_manifest_t m, m2;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    char *text = gh_issuer_manifest_dump(&m);
    assert_non_null(text);
    assert_int_equal(gh_issuer_manifest_parse(text, strlen(text), &m2, err, sizeof(err)), 0);
    assert_memory_equal(&m, &m2, sizeof(m));
    free(text);
    gh_issuer_keys_conf_dispose(&c);
}

/* ---- processes sharing the directory ---- */

static void test_concurrent_first_start(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    enum { N = 8 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char err[512];
            int rc = gh_issuer_keys_ensure(&c, T0 + i, err, sizeof(err));
            if (rc < 0)
                fprintf(stderr, "child %d: %s\n", i, err);
            _exit(rc < 0 ? 3 : rc); /* 1: made the first key */
        }
    }
    int made = 0;
    for (int i = 0; i < N; i++) {
        int st;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_true(WEXITSTATUS(st) <= 1);
        made += WEXITSTATUS(st);
    }
    assert_int_equal(made, 1);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    gh_issuer_manifest_t m;
    char err[512];
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, 1);
    gh_issuer_keyset_unref(load_ok(&c, T0 + N));
    gh_issuer_keys_conf_dispose(&c);
}

static void test_concurrent_rotations(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    assert_int_equal(gh_issuer_keys_ensure(&c, T0, err, sizeof(err)), 1);
    enum { N = 6 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            /* Each its own clock, racing in any order. */
            int rc = gh_issuer_keys_rotate(&c, 0, T0 + 100 + 7 * i, NULL, err, sizeof(err));
            if (rc < 0)
                fprintf(stderr, "child %d: %s\n", i, err);
            _exit(rc < 0 ? 3 : 0);
        }
    }
    for (int i = 0; i < N; i++) {
        int st;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    assert_int_equal(m.n, N + 1); /* no rotation lost */
    assert_int_equal(count_files(c.dir, ".pem"), N + 1);
    /* Each key signs until the next one starts: one signer at a time, and
     * a chain with no gap. */
    for (size_t i = 0; i + 1 < m.n; i++) {
        assert_int_equal(m.keys[i].sign_until, m.keys[i + 1].sign_from > m.keys[i].sign_from
                                                   ? m.keys[i + 1].sign_from
                                                   : m.keys[i].sign_from);
        assert_true(m.keys[i + 1].sign_from >= m.keys[i].sign_from);
    }
    gh_issuer_keyset_t *s = load_ok(&c, T0 + 200);
    for (int64_t t = T0; t < T0 + 5000; t += 13) {
        gh_issuer_signer_t sg;
        assert_int_equal(gh_issuer_keyset_signer(s, t, &sg), 0);
    }
    gh_issuer_keyset_unref(s);
    gh_issuer_keys_conf_dispose(&c);
}

/* ---- the watcher ---- */

typedef struct {
    gh_issuer_keys_t *k;
    uint64_t gen0;
    uv_timer_t tick, limit;
    int changed, timed_out;
} watch_t;

static void on_tick(uv_timer_t *t)
{
    watch_t *w = t->data;
    if (gh_issuer_keys_generation(w->k) != w->gen0) {
        w->changed = 1;
        uv_stop(t->loop);
    }
}

static void on_limit(uv_timer_t *t)
{
    watch_t *w = t->data;
    w->timed_out = 1;
    uv_stop(t->loop);
}

static void test_watcher_follows_a_rotation_made_elsewhere(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    uv_loop_t loop;
    char err[512];
    assert_int_equal(uv_loop_init(&loop), 0);
    watch_t w = {0};
    w.k = gh_issuer_keys_start(&loop, &c, err, sizeof(err));
    if (w.k == NULL)
        fail_msg("start: %s", err);
    const char *why;
    assert_int_equal(gh_issuer_keys_ok(w.k, &why), 1);
    gh_issuer_keyset_t *s0 = gh_issuer_keys_get(w.k);
    assert_int_equal(gh_issuer_keyset_manifest(s0)->n, 1);
    w.gen0 = gh_issuer_keys_generation(w.k);
    /* Another process (the CLI) rotates. The poll compares mtime at one
     * second resolution on some file systems; the rename changes the
     * inode, which it compares too. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(gh_issuer_keys_rotate(&c, 0, (int64_t)time(NULL), NULL, err, sizeof(err)) ? 1 : 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(WEXITSTATUS(st), 0);
    uv_timer_init(&loop, &w.tick);
    uv_timer_init(&loop, &w.limit);
    w.tick.data = w.limit.data = &w;
    uv_timer_start(&w.tick, on_tick, 50, 50);
    uv_timer_start(&w.limit, on_limit, 20000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(w.timed_out);
    assert_true(w.changed);
    gh_issuer_keyset_t *s1 = gh_issuer_keys_get(w.k);
    assert_int_equal(gh_issuer_keyset_manifest(s1)->n, 2);
    /* A damaged manifest does not replace the keys in use. */
    char p[256];
    path_of(p, sizeof(p), &c, GH_ISSUER_KEYS_MANIFEST);
    write_text(p, "{broken", 0600);
    gh_issuer_keys_reload(w.k);
    assert_int_equal(gh_issuer_keys_ok(w.k, &why), 0);
    assert_non_null(strstr(why, "not JSON"));
    gh_issuer_keyset_t *s2 = gh_issuer_keys_get(w.k);
    assert_ptr_equal(s2, s1);
    gh_issuer_keyset_unref(s0); /* held past the swap: still valid until here */
    gh_issuer_keyset_unref(s1);
    gh_issuer_keyset_unref(s2);
    gh_issuer_keys_stop(w.k);
    uv_close((uv_handle_t *)&w.tick, NULL);
    uv_close((uv_handle_t *)&w.limit, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    gh_issuer_keys_conf_dispose(&c);
}

typedef struct {
    gh_issuer_keys_t *k;
    uv_timer_t tick, limit;
    int done, timed_out;
} prune_watch_t;

static void on_prune_tick(uv_timer_t *t)
{
    prune_watch_t *w = t->data;
    gh_issuer_keyset_t *s = gh_issuer_keys_get(w->k);
    if (gh_issuer_keyset_manifest(s)->n == 1) {
        w->done = 1;
        uv_stop(t->loop);
    }
    gh_issuer_keyset_unref(s);
}

static void on_prune_limit(uv_timer_t *t)
{
    prune_watch_t *w = t->data;
    w->timed_out = 1;
    uv_stop(t->loop);
}

/* A key that retires while the server runs is deleted by the server (its
 * timer), and the set it serves drops it: on the wall clock, with the
 * rotation dated so that the old key retires two seconds from now. */
static void test_watcher_prunes_a_key_when_it_retires(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    int64_t real = (int64_t)time(NULL);
    int64_t then = real + 2 - c.publish_lead - c.max_token_ttl - c.leeway;
    assert_int_equal(gh_issuer_keys_ensure(&c, then - 10, err, sizeof(err)), 1);
    gh_issuer_rotate_result_t r = rotate_ok(&c, 0, then);
    assert_true(r.previous.retire_at > real);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    prune_watch_t w = {0};
    w.k = gh_issuer_keys_start(&loop, &c, err, sizeof(err));
    if (w.k == NULL)
        fail_msg("start: %s", err);
    gh_issuer_keyset_t *s = gh_issuer_keys_get(w.k);
    assert_int_equal(gh_issuer_keyset_manifest(s)->n, 2);
    gh_issuer_keyset_unref(s);
    uv_timer_init(&loop, &w.tick);
    uv_timer_init(&loop, &w.limit);
    w.tick.data = w.limit.data = &w;
    uv_timer_start(&w.tick, on_prune_tick, 100, 100);
    uv_timer_start(&w.limit, on_prune_limit, 30000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_false(w.timed_out);
    assert_true(w.done);
    char p[256];
    key_path(p, sizeof(p), &c, r.previous.kid);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(count_files(c.dir, ".pem"), 1);
    gh_issuer_keys_stop(w.k);
    uv_close((uv_handle_t *)&w.tick, NULL);
    uv_close((uv_handle_t *)&w.limit, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    gh_issuer_keys_conf_dispose(&c);
}

static void test_watcher_refuses_to_start_without_keys(void **state)
{
    (void)state;
    gh_issuer_keys_conf_t c = conf();
    char err[512];
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(gh_issuer_keys_ensure(&c, (int64_t)time(NULL), err, sizeof(err)), 1);
    gh_issuer_manifest_t m;
    assert_int_equal(gh_issuer_keys_list(c.dir, &m, err, sizeof(err)), 0);
    char p[256];
    key_path(p, sizeof(p), &c, m.keys[0].kid);
    assert_int_equal(chmod(p, 0644), 0);
    assert_null(gh_issuer_keys_start(&loop, &c, err, sizeof(err)));
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(uv_loop_close(&loop), 0);
    gh_issuer_keys_conf_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thumbprint_rfc7638_vector),
        cmocka_unit_test(test_conf_defaults_and_checks),
        cmocka_unit_test_setup_teardown(test_first_start_makes_one_key_with_private_modes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_each_alg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_timeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_verify_across_rotations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emergency_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_deletes_retired_keys_and_leftovers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rotation_count_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_with_clock_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_and_foreign_key_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_manifests_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_rotations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watcher_follows_a_rotation_made_elsewhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_watcher_prunes_a_key_when_it_retires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watcher_refuses_to_start_without_keys, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
