/*
 * gatehouse token mint | jwks | inspect: development tools around the JWT
 * library. mint signs claims with a local key, jwks prints a key's public
 * half, inspect decodes a token and explains each check against a JWKS.
 */
#include "cli/token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gatehouse/file.h>
#include <gatehouse/jwt.h>

static const char usage[] =
    "usage: gatehouse token mint --key FILE --alg ALG [--kid KID] [--claims JSON]\n"
    "                            [--iss ISS] [--sub SUB] [--aud AUD] [--scope SCOPE]\n"
    "                            [--ttl SECONDS] [--typ TYP]\n"
    "       gatehouse token jwks --key FILE --alg ALG [--kid KID]\n"
    "       gatehouse token inspect --jwks FILE [--iss ISS] [--aud AUD] TOKEN\n"
    "\n"
    "mint     signs a JWT with a private key (PEM, or a private JWK; for HS*, a file\n"
    "         holding the shared secret). --claims gives the whole payload as JSON;\n"
    "         otherwise iat/exp (ttl, default 3600) and the given claims are set.\n"
    "jwks     prints the public JWKS of a private key, for a provider's jwks.inline\n"
    "         or file.\n"
    "inspect  decodes TOKEN, verifies it against the JWKS file and checks its\n"
    "         claims, saying which check passed or failed. Exit 0 when valid.\n";

#define TOKEN_FILE_MAX (16u << 20)

typedef struct {
    const char *key, *alg, *kid, *claims, *iss, *sub, *aud, *scope, *typ, *jwks, *token;
    long ttl;
} opts_t;

static int parse(int argc, char **argv, opts_t *o)
{
    o->ttl = 3600;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--key") == 0)
            slot = &o->key;
        else if (strcmp(a, "--alg") == 0)
            slot = &o->alg;
        else if (strcmp(a, "--kid") == 0)
            slot = &o->kid;
        else if (strcmp(a, "--claims") == 0)
            slot = &o->claims;
        else if (strcmp(a, "--iss") == 0)
            slot = &o->iss;
        else if (strcmp(a, "--sub") == 0)
            slot = &o->sub;
        else if (strcmp(a, "--aud") == 0)
            slot = &o->aud;
        else if (strcmp(a, "--scope") == 0)
            slot = &o->scope;
        else if (strcmp(a, "--typ") == 0)
            slot = &o->typ;
        else if (strcmp(a, "--jwks") == 0)
            slot = &o->jwks;
        else if (strcmp(a, "--ttl") == 0) {
            char *end;
            if (i + 1 >= argc || (o->ttl = strtol(argv[++i], &end, 10)) <= 0 || *end != '\0') {
                fprintf(stderr, "gatehouse token: --ttl needs a positive number of seconds\n");
                return 2;
            }
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "gatehouse token: unknown option %s\n%s", a, usage);
            return 2;
        } else if (o->token == NULL) {
            o->token = a;
            continue;
        } else {
            fprintf(stderr, "gatehouse token: unexpected argument %s\n%s", a, usage);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gatehouse token: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    return -1;
}

static gh_jwt_signing_key_t *load_key(const char *path, gh_jwt_alg_t alg)
{
    char err[256];
    size_t len;
    char *text = gh_file_read(path, TOKEN_FILE_MAX, &len);
    if (text == NULL) {
        fprintf(stderr, "gatehouse token: cannot read %s: %s\n", path, gh_file_strerror(errno));
        return NULL;
    }
    gh_jwt_signing_key_t *k;
    if (alg >= GH_JWT_HS256 && alg <= GH_JWT_HS512) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--;
        /* RFC 7518 section 3.2: a key at least as long as the hash. */
        size_t need = alg == GH_JWT_HS256 ? 32 : alg == GH_JWT_HS384 ? 48 : 64;
        if (len < need) {
            fprintf(stderr,
                    "gatehouse token: %s: %s needs a secret of %zu bytes or more, not %zu\n", path,
                    gh_jwt_alg_name(alg), need, len);
            free(text);
            return NULL;
        }
        k = gh_jwt_signing_key_from_secret(text, len);
    } else if (len > 0 && text[0] == '{') {
        k = gh_jwt_signing_key_from_jwk(text, len, err, sizeof(err));
    } else {
        k = gh_jwt_signing_key_load_pem(text, len, err, sizeof(err));
    }
    free(text);
    if (k == NULL)
        fprintf(stderr, "gatehouse token: %s: %s\n", path, err);
    return k;
}

static gh_jwt_alg_t need_alg(const opts_t *o)
{
    gh_jwt_alg_t alg = o->alg ? gh_jwt_alg_from_name(o->alg, strlen(o->alg)) : GH_JWT_ALG_UNKNOWN;
    if (alg == GH_JWT_ALG_UNKNOWN)
        fprintf(stderr, "gatehouse token: --alg must be one of RS256..512, PS256..512, "
                        "ES256..512, EdDSA, HS256..512\n");
    return alg;
}

static int mint(const opts_t *o)
{
    gh_jwt_alg_t alg = need_alg(o);
    if (alg == GH_JWT_ALG_UNKNOWN || o->key == NULL) {
        if (o->key == NULL)
            fprintf(stderr, "gatehouse token mint: --key is required\n");
        return 2;
    }
    gh_jwt_signing_key_t *k = load_key(o->key, alg);
    if (k == NULL)
        return 1;
    json_t *payload;
    if (o->claims != NULL) {
        json_error_t je;
        payload = json_loads(o->claims, JSON_REJECT_DUPLICATES, &je);
        if (payload == NULL || !json_is_object(payload)) {
            fprintf(stderr, "gatehouse token mint: --claims is not a JSON object: %s\n", je.text);
            json_decref(payload);
            gh_jwt_signing_key_free(k);
            return 2;
        }
    } else {
        long long now = (long long)time(NULL);
        payload = json_object();
        json_object_set_new(payload, "iat", json_integer(now));
        json_object_set_new(payload, "exp", json_integer(now + o->ttl));
        if (o->iss)
            json_object_set_new(payload, "iss", json_string(o->iss));
        if (o->sub)
            json_object_set_new(payload, "sub", json_string(o->sub));
        if (o->aud)
            json_object_set_new(payload, "aud", json_string(o->aud));
        if (o->scope)
            json_object_set_new(payload, "scope", json_string(o->scope));
    }
    json_t *hdr =
        json_pack("{s:s,s:s}", "alg", gh_jwt_alg_name(alg), "typ", o->typ ? o->typ : "JWT");
    if (o->kid)
        json_object_set_new(hdr, "kid", json_string(o->kid));
    char *h = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *p = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char err[256];
    char *tok = h && p ? gh_jwt_sign(h, p, strlen(p), k, alg, err, sizeof(err)) : NULL;
    int rc = 0;
    if (tok == NULL) {
        fprintf(stderr, "gatehouse token mint: %s\n", h && p ? err : "out of memory");
        rc = 1;
    } else {
        printf("%s\n", tok);
    }
    free(tok);
    free(h);
    free(p);
    json_decref(hdr);
    json_decref(payload);
    gh_jwt_signing_key_free(k);
    return rc;
}

static int jwks(const opts_t *o)
{
    gh_jwt_alg_t alg = need_alg(o);
    if (alg == GH_JWT_ALG_UNKNOWN || o->key == NULL) {
        if (o->key == NULL)
            fprintf(stderr, "gatehouse token jwks: --key is required\n");
        return 2;
    }
    gh_jwt_signing_key_t *k = load_key(o->key, alg);
    if (k == NULL)
        return 1;
    char err[256];
    char *doc = gh_jwt_signing_key_jwks(k, o->kid, alg, err, sizeof(err));
    gh_jwt_signing_key_free(k);
    if (doc == NULL) {
        fprintf(stderr, "gatehouse token jwks: %s\n", err);
        return 1;
    }
    printf("%s\n", doc);
    free(doc);
    return 0;
}

static void step(const char *what, int ok, const char *why)
{
    printf("  %-22s %s%s%s\n", what, ok ? "ok" : "FAILED", why && !ok ? ": " : "",
           why && !ok ? why : "");
}

/* Prints token text (s, NUL-terminated, checked UTF-8) for a terminal: a
 * token is anyone's, and its kid, typ or claims could otherwise carry
 * escape sequences that rewrite or hide what inspect says (ESC[8m, CSI as
 * U+009B). C0 controls, DEL and the C1 controls are written as \u00XX,
 * which inside the JSON dump is the same JSON; newlines stay when nl (the
 * dump's own: jansson escapes those inside strings). */
static void put_safe(const char *s, int nl)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (nl && *p == '\n')
            putchar('\n');
        else if (*p < 0x20 || *p == 0x7f)
            printf("\\u%04x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            printf("\\u%04x", *++p);
        else
            putchar(*p);
    }
}

static int inspect(const opts_t *o)
{
    if (o->jwks == NULL || o->token == NULL) {
        fprintf(stderr, "gatehouse token inspect: --jwks FILE and TOKEN are required\n%s", usage);
        return 2;
    }
    gh_jwt_reason_t reason = GH_JWT_OK;
    gh_jwt_t t;
    int rc = gh_jwt_parse(o->token, strlen(o->token), &t, &reason);
    printf("token:\n");
    step("structure", rc == 0, gh_jwt_reason_text(reason));
    if (rc != 0)
        return 1;
    printf("  alg %s, kid ", gh_jwt_alg_name(t.alg));
    put_safe(t.has_kid ? t.kid : "(none)", 0);
    printf(", typ ");
    put_safe(t.typ[0] ? t.typ : "(none)", 0);
    json_t *tree = gh_jwt_payload(&t);
    char *claims = tree ? json_dumps(tree, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    printf("\nclaims:\n");
    put_safe(claims ? claims : "?", 1);
    printf("\n");
    free(claims);
    size_t len;
    char *doc = gh_file_read(o->jwks, TOKEN_FILE_MAX, &len);
    char err[256];
    /* A local tool: a shared-secret set is the user's own file. */
    gh_jwks_opts_t jo = {1};
    gh_jwks_t *keys = doc ? gh_jwks_parse(doc, len, &jo, err, sizeof(err)) : NULL;
    free(doc);
    printf("checks:\n");
    if (keys == NULL) {
        step("key set", 0, doc ? err : gh_file_strerror(errno));
        gh_jwt_dispose(&t);
        return 1;
    }
    for (size_t i = 0; i < gh_jwks_warning_count(keys); i++)
        printf("  (key set: %s)\n", gh_jwks_warning(keys, i));
    rc = gh_jwt_verify(&t, keys, &reason);
    step("signature", rc == 0, gh_jwt_reason_text(reason));
    int ok = rc == 0;
    const char *aud[1] = {o->aud};
    gh_jwt_claims_policy_t p = {o->iss, o->aud ? aud : NULL, o->aud ? 1 : 0, 60, 0, NULL, NULL, 0,
                                0};
    char detail[256] = "";
    rc = gh_jwt_check_claims(&t, &p, (int64_t)time(NULL), &reason, detail, sizeof(detail));
    char why[400];
    snprintf(why, sizeof(why), "%s%s%s", rc == 0 ? "" : gh_jwt_reason_text(reason),
             detail[0] ? " " : "", detail);
    step(o->iss || o->aud ? "claims (iss/aud/time)" : "claims (time)", rc == 0, why);
    ok = ok && rc == 0;
    printf("%s\n", ok ? "valid" : "invalid");
    gh_jwks_unref(keys);
    gh_jwt_dispose(&t);
    return ok ? 0 : 1;
}

int gh_cli_token(int argc, char **argv)
{
    opts_t o;
    memset(&o, 0, sizeof(o));
    if (argc < 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    int r = parse(argc - 1, argv + 1, &o);
    if (r >= 0)
        return r;
    if (strcmp(sub, "mint") == 0)
        return mint(&o);
    if (strcmp(sub, "jwks") == 0)
        return jwks(&o);
    if (strcmp(sub, "inspect") == 0)
        return inspect(&o);
    fprintf(stderr, "gatehouse token: unknown command '%s'\n%s", sub, usage);
    return 2;
}
