/*
 * gatehouse keys rotate | list | prune: the token issuer's signing keys
 * (gatehouse/issuer_keys.h) from the command line. Argument parsing and
 * printing only: the work is the library's.
 *
 * The directory is the one the server uses: <state_dir>/issuer, with the
 * state directory of --config FILE, of --state-dir DIR, or the default
 * (state). Servers sharing the directory follow a rotation made here
 * within a second (they poll its manifest).
 */
#include "cli/keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <gatehouse/config.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/store_json.h>

static const char usage[] =
    "usage: gatehouse keys rotate [--alg ES256|RS256|EdDSA] [--bits N] [--lead DURATION]\n"
    "                             [--now] [--json]\n"
    "       gatehouse keys list [--json]\n"
    "       gatehouse keys jwks\n"
    "       gatehouse keys prune\n"
    "\n"
    "rotate  adds a signing key. It is published in the JWKS at once and signs\n"
    "        from --lead later (default 6m: longer than the JWKS max-age of 5m,\n"
    "        so every verifier that caches the JWKS has it before its first\n"
    "        token). The key that signed until then is published until its last\n"
    "        token has expired (the longest token lifetime + leeway), then\n"
    "        retired and deleted. --alg: of the new key (default ES256); --bits:\n"
    "        of an RSA key (2048, 3072, 4096).\n"
    "        --now: emergency, for a leaked key: the new key signs at once and\n"
    "        every other key is deleted at once. Tokens they signed stop\n"
    "        working, and verifiers that cached the JWKS refuse the new key's\n"
    "        tokens until they fetch it again.\n"
    "list    every key with its state now (published, signing, retiring,\n"
    "        retired) and its times (UTC); exits 1 when the keys would not load\n"
    "        (a key file open to others, missing, or not the manifest's key).\n"
    "jwks    the JWKS published now (public keys only), as the issuer serves it.\n"
    "prune   deletes retired keys now (servers do it when a key retires).\n"
    "\n"
    "Durations: a number and s, m, h, d or w (6m, 1h).\n"
    "\n"
    "The key directory (as the server finds it), <state_dir>/issuer:\n"
    "  -c, --config FILE   the state_dir of a configuration file\n"
    "  --state-dir DIR     a state directory\n"
    "  (neither: state/issuer, made on first use)\n";

enum {
    O_ALG = 1 << 0,
    O_BITS = 1 << 1,
    O_LEAD = 1 << 2,
    O_NOW = 1 << 3,
    O_JSON = 1 << 4,
};

typedef struct {
    unsigned seen;
    const char *config, *state_dir, *alg, *bits, *lead;
    int now, json;
} opts_t;

static int misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int misuse(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gatehouse keys: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int parse(int argc, char **argv, opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        unsigned bit = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0 || strcmp(a, "--now") == 0) {
            bit = a[2] == 'j' ? O_JSON : O_NOW;
            if (o->seen & bit)
                return misuse("%s is given twice", a);
            o->seen |= bit;
            *(bit == O_JSON ? &o->json : &o->now) = 1;
            continue;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--state-dir") == 0)
            slot = &o->state_dir;
        else if (strcmp(a, "--alg") == 0)
            slot = &o->alg, bit = O_ALG;
        else if (strcmp(a, "--bits") == 0)
            slot = &o->bits, bit = O_BITS;
        else if (strcmp(a, "--lead") == 0)
            slot = &o->lead, bit = O_LEAD;
        else if (a[0] == '-')
            return misuse("unknown option %s", a);
        else
            return misuse("unexpected argument %s", a);
        if (i + 1 >= argc)
            return misuse("%s needs a value", a);
        if (*slot != NULL)
            return misuse("%s is given twice", a);
        *slot = argv[++i];
        o->seen |= bit;
    }
    if (o->config != NULL && o->state_dir != NULL)
        return misuse("%s", "give --config or --state-dir, not both");
    return -1;
}

/* The settings as the server would have them: with a config, its issuer
 * section's too (a rotation with another lead or max-age than the server
 * publishes would break the timeline). */
static int load_conf(const opts_t *o, gh_issuer_keys_conf_t *c)
{
    gh_config_t *cfg = NULL;
    int rc;
    if (o->config != NULL) {
        gh_config_error_t err;
        if ((cfg = gh_config_load(o->config, &err)) == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        rc = gh_issuer_keys_conf_from_config(c, cfg);
    } else {
        rc = gh_issuer_keys_conf_init(c, o->state_dir);
    }
    gh_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "gatehouse keys: out of memory\n");
        return 1;
    }
    return 0;
}

static void put_time(FILE *f, int64_t t, int width)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, sizeof(buf), "-");
    fprintf(f, "%-*s", width, buf);
}

static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (s != NULL)
        printf("%s\n", s);
    else
        fprintf(stderr, "gatehouse keys: out of memory\n");
    free(s);
    json_decref(j);
    return s == NULL;
}

static void print_list(const gh_issuer_manifest_t *mp, int64_t now);

static int cmd_list(const opts_t *o, const gh_issuer_keys_conf_t *c, int64_t now)
{
    gh_issuer_manifest_t m;
    char err[512];
    int rc = gh_issuer_keys_list(c->dir, &m, err, sizeof(err));
    if (rc == -ENOENT) {
        fprintf(stderr,
                "gatehouse keys list: no keys in %s yet (the issuer makes the first one when "
                "it starts; 'gatehouse keys rotate' makes one now)\n",
                c->dir);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "gatehouse keys list: %s\n", err);
        return 1;
    }
    /* The keys are loaded too, as a server would: a listing that looks
     * fine over a directory the server refuses would mislead. */
    gh_issuer_keyset_t *set = gh_issuer_keyset_load(c->dir, now, NULL, &rc, err, sizeof(err));
    gh_issuer_keyset_unref(set);
    if (o->json)
        rc = print_json(gh_issuer_keys_json(&m, now));
    else
        print_list(&m, now);
    if (set == NULL) {
        fprintf(stderr, "gatehouse keys list: the keys do not load: %s\n", err);
        return 1;
    }
    return rc;
}

static int cmd_jwks(const gh_issuer_keys_conf_t *c, int64_t now)
{
    char err[512];
    int rc;
    gh_issuer_keyset_t *set = gh_issuer_keyset_load(c->dir, now, NULL, &rc, err, sizeof(err));
    if (set == NULL) {
        fprintf(stderr, "gatehouse keys jwks: %s\n", err);
        return 1;
    }
    printf("%s\n", gh_issuer_keyset_jwks_json(set, now, NULL));
    gh_issuer_keyset_unref(set);
    return 0;
}

static void print_list(const gh_issuer_manifest_t *mp, int64_t now)
{
    const gh_issuer_manifest_t m = *mp;
    printf("%-43s  %-5s  %-9s  %-20s  %-20s  %-20s  %s\n", "KID", "ALG", "STATE", "PUBLISHED",
           "SIGNS FROM", "SIGNS UNTIL", "RETIRES");
    for (size_t i = 0; i < m.n; i++) {
        const gh_issuer_key_info_t *k = &m.keys[i];
        printf("%-43s  %-5s  %-9s  ", k->kid, gh_jwt_alg_name(k->alg),
               gh_issuer_key_state_name(gh_issuer_key_state(k, now)));
        put_time(stdout, k->publish_at, 20);
        printf("  ");
        put_time(stdout, k->sign_from, 20);
        printf("  ");
        put_time(stdout, k->sign_until, 20);
        printf("  ");
        put_time(stdout, k->retire_at, 0);
        printf("\n");
    }
}

static int cmd_rotate(const opts_t *o, gh_issuer_keys_conf_t *c, int64_t now)
{
    char err[512];
    if (o->alg != NULL && (c->alg = gh_issuer_keys_alg(o->alg)) == GH_JWT_ALG_UNKNOWN)
        return misuse("--alg must be ES256, RS256 or EdDSA, not '%s'", o->alg);
    if (o->bits != NULL) {
        char *end;
        long b = strtol(o->bits, &end, 10);
        if (c->alg != GH_JWT_RS256)
            return misuse("%s", "--bits is for RS256 keys");
        if (*end != '\0' || (b != 2048 && b != 3072 && b != 4096))
            return misuse("--bits must be 2048, 3072 or 4096, not '%s'", o->bits);
        c->rsa_bits = (int)b;
    }
    if (o->lead != NULL) {
        int64_t lead;
        if (o->now)
            return misuse("%s", "--now and --lead do not go together (--now signs at once)");
        if (gh_apikey_duration_parse(o->lead, &lead) != 0)
            return misuse("--lead needs a duration such as 6m or 1h, not '%s'", o->lead);
        c->publish_lead = lead;
    }
    if (gh_issuer_keys_conf_check(c, err, sizeof(err)) != 0) {
        fprintf(stderr, "gatehouse keys rotate: %s\n", err);
        return 2;
    }
    gh_issuer_rotate_result_t r;
    int rc = gh_issuer_keys_rotate(c, o->now ? GH_ISSUER_ROTATE_NOW : 0, now, &r, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "gatehouse keys rotate: %s\n", err);
        return 1;
    }
    if (o->json)
        return print_json(gh_issuer_rotate_json(&r, now));
    printf("%s\n", r.added.kid);
    fflush(stdout);
    if (!r.has_previous) {
        fprintf(stderr, "gatehouse keys rotate: made the first key (%s) in %s; it signs now.\n",
                gh_jwt_alg_name(r.added.alg), c->dir);
        return 0;
    }
    fprintf(stderr, "gatehouse keys rotate: new %s key %s in %s\n  published now, signs from ",
            gh_jwt_alg_name(r.added.alg), r.added.kid, c->dir);
    put_time(stderr, r.added.sign_from, 0);
    if (o->now) {
        fprintf(stderr,
                " (at once)\n  every other key was deleted (%zu): tokens they signed no longer "
                "verify.\n",
                r.pruned);
        return 0;
    }
    fprintf(stderr, "\n  key %s signs until then and is published until ", r.previous.kid);
    put_time(stderr, r.previous.retire_at, 0);
    fprintf(stderr, "\n");
    if (r.pruned > 0)
        fprintf(stderr, "  %zu retired key%s deleted\n", r.pruned, r.pruned == 1 ? "" : "s");
    return 0;
}

static int cmd_prune(const gh_issuer_keys_conf_t *c, int64_t now)
{
    char err[512];
    int n = gh_issuer_keys_prune(c->dir, now, 1, err, sizeof(err));
    if (n < 0) {
        fprintf(stderr, "gatehouse keys prune: %s\n", err);
        return 1;
    }
    printf("deleted %d retired key%s\n", n, n == 1 ? "" : "s");
    return 0;
}

int gh_cli_keys(int argc, char **argv)
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
    static const struct {
        const char *name;
        unsigned takes;
    } cmds[] = {
        {"rotate", O_ALG | O_BITS | O_LEAD | O_NOW | O_JSON},
        {"list", O_JSON},
        {"jwks", 0},
        {"prune", 0},
    };
    size_t ci = 0;
    while (ci < sizeof(cmds) / sizeof(cmds[0]) && strcmp(sub, cmds[ci].name) != 0)
        ci++;
    if (ci == sizeof(cmds) / sizeof(cmds[0])) {
        fprintf(stderr, "gatehouse keys: unknown command '%s'\n%s", sub, usage);
        return 2;
    }
    int r = parse(argc - 1, argv + 1, &o);
    if (r >= 0)
        return r;
    if ((o.seen & ~cmds[ci].takes) != 0) {
        fprintf(stderr, "gatehouse keys %s: an option given does not apply to it\n%s", sub, usage);
        return 2;
    }
    gh_issuer_keys_conf_t c;
    if (load_conf(&o, &c) != 0)
        return 1;
    int64_t now = (int64_t)time(NULL);
    if (ci == 0)
        r = cmd_rotate(&o, &c, now);
    else if (ci == 1)
        r = cmd_list(&o, &c, now);
    else if (ci == 2)
        r = cmd_jwks(&c, now);
    else
        r = cmd_prune(&c, now);
    gh_issuer_keys_conf_dispose(&c);
    return r;
}
