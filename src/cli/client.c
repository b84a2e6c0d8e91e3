/*
 * gatehouse client create | list | show | revoke | rotate-secret: the
 * OAuth clients of a store (gatehouse/store.h), from the command line.
 * Argument parsing and printing only: the work is the store's. The store
 * is found as `gatehouse apikey` finds it (cli/store_open.h).
 */
#include "cli/client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <gatehouse/file.h>
#include <gatehouse/store.h>
#include <gatehouse/store_json.h>

#include "cli/store_open.h"

static const char usage[] =
    "usage: gatehouse client create --name NAME --audiences \"A B\" [--scopes \"S T\"]\n"
    "                               [--jwks FILE] [--auth-methods \"M N\"] [--ttl DURATION]\n"
    "                               [--json]\n"
    "       gatehouse client list [--json]\n"
    "       gatehouse client show ID [--json]\n"
    "       gatehouse client revoke ID\n"
    "       gatehouse client rotate-secret ID [--grace DURATION] [--json]\n"
    "\n"
    "create         registers an OAuth client and prints its client_id and secret\n"
    "               once (the store keeps only the secret's hash). --audiences: the\n"
    "               audiences its tokens may name (at least one); --scopes: the scopes\n"
    "               it may ask for; --jwks: its public keys, for private_key_jwt;\n"
    "               --auth-methods: client_secret_basic, client_secret_post,\n"
    "               private_key_jwt (default: the two secret methods, or\n"
    "               private_key_jwt alone with --jwks); --ttl: its tokens' lifetime\n"
    "               (up to 1d; default the issuer's).\n"
    "list           the clients (never their secrets or hashes).\n"
    "show           one client's record.\n"
    "revoke         stops a client at once: no more tokens for it.\n"
    "rotate-secret  a new secret; the old one keeps working for --grace (default 24h,\n"
    "               up to 30d; 0 stops it at once).\n"
    "\n"
    "Lists are separated by spaces or commas. Durations: a number and s, m, h, d\n"
    "or w (300s, 1h).\n"
    "\n"
    "The store (as the server finds it):\n"
    "  -c, --config FILE   the store section of a configuration file\n"
    "  --store PATH        a SQLite store file\n"
    "  (neither: state/gatehouse.db, made on first use)\n";

enum {
    O_NAME = 1 << 0,
    O_SCOPES = 1 << 1,
    O_AUDIENCES = 1 << 2,
    O_JWKS = 1 << 3,
    O_METHODS = 1 << 4,
    O_TTL = 1 << 5,
    O_GRACE = 1 << 6,
    O_JSON = 1 << 7,
};

typedef struct {
    unsigned seen;
    const char *config, *store;
    const char *name, *scopes, *audiences, *jwks, *methods, *ttl, *grace;
    const char *arg;
    int json;
} opts_t;

static int misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int misuse(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gatehouse client: ");
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
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            o->seen |= O_JSON;
            continue;
        }
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--store") == 0)
            slot = &o->store;
        else if (strcmp(a, "--name") == 0)
            slot = &o->name, bit = O_NAME;
        else if (strcmp(a, "--scopes") == 0)
            slot = &o->scopes, bit = O_SCOPES;
        else if (strcmp(a, "--audiences") == 0)
            slot = &o->audiences, bit = O_AUDIENCES;
        else if (strcmp(a, "--jwks") == 0)
            slot = &o->jwks, bit = O_JWKS;
        else if (strcmp(a, "--auth-methods") == 0)
            slot = &o->methods, bit = O_METHODS;
        else if (strcmp(a, "--ttl") == 0)
            slot = &o->ttl, bit = O_TTL;
        else if (strcmp(a, "--grace") == 0)
            slot = &o->grace, bit = O_GRACE;
        else if (a[0] == '-' && a[1] != '\0')
            return misuse("unknown option %s", a);
        else if (o->arg == NULL) {
            o->arg = a;
            continue;
        } else
            return misuse("unexpected argument %s", a);
        if (i + 1 >= argc)
            return misuse("%s needs a value", a);
        if (*slot != NULL)
            return misuse("%s is given twice", a);
        *slot = argv[++i];
        o->seen |= bit;
    }
    if (o->config != NULL && o->store != NULL)
        return misuse("%s", "give --config or --store, not both");
    return -1;
}

static gh_store_t *open_store(const opts_t *o, int flags)
{
    return gh_cli_store_open("client", o->config, o->store, flags, NULL);
}

static int store_error(const char *what, const gh_store_error_t *err)
{
    fprintf(stderr, "gatehouse client %s: %s\n", what, err->msg);
    return 1;
}

static void put_list(const char *s)
{
    gh_cli_put_safe(stdout, s && s[0] ? s : "-");
}

static void show_text(const gh_client_t *c, int64_t now)
{
    char methods[64];
    printf("client_id     %s\n", c->id);
    printf("state         %s\n", gh_client_state_name(gh_client_state(c, now)));
    printf("name          ");
    gh_cli_put_safe(stdout, c->name);
    printf("\nscopes        ");
    put_list(c->scopes);
    printf("\naudiences     ");
    put_list(c->audiences);
    printf("\nauth methods  %s\n",
           gh_client_auth_format(c->auth_methods, methods, sizeof(methods)));
    printf("jwks          %s\n", c->jwks ? "yes (show --json prints it)" : "-");
    if (c->token_ttl)
        printf("token ttl     %llds\n", (long long)c->token_ttl);
    else
        printf("token ttl     the issuer's default\n");
    printf("created       ");
    gh_cli_put_time(stdout, c->created_at);
    printf("\nrevoked       ");
    gh_cli_put_time(stdout, c->revoked_at);
    printf("\nsecret        %s", c->has_secret ? "yes" : "none (private_key_jwt only)");
    if (c->secret_rotated_at) {
        printf(", rotated ");
        gh_cli_put_time(stdout, c->secret_rotated_at);
    }
    if (c->prev_valid_until > now) {
        printf("; the previous one works until ");
        gh_cli_put_time(stdout, c->prev_valid_until);
    }
    printf("\n");
}

/* The client and its secret, shown once: the secret alone on stdout (so
 * `secret=$(gatehouse client create ...)` takes it), the rest on stderr. */
static int new_secret_out(const char *what, const opts_t *o, const char *secret,
                          const gh_client_t *c, int64_t now)
{
    if (o->json)
        return gh_cli_print_json("client", gh_client_json_with_secret(c, secret, now));
    printf("client_id=%s\n", c->id);
    if (secret[0] != '\0')
        printf("client_secret=%s\n", secret);
    fflush(stdout);
    fprintf(stderr, "gatehouse client %s: client %s (", what, c->id);
    gh_cli_put_safe(stderr, c->name);
    fprintf(stderr, ")");
    if (secret[0] != '\0')
        fprintf(stderr, ".\nThe secret above is shown this once: the store keeps only its hash.\n");
    else
        fprintf(stderr, " authenticates with private_key_jwt: it has no secret.\n");
    return 0;
}

static int cmd_create(const opts_t *o, int64_t now)
{
    gh_client_spec_t spec = {o->name, o->scopes, o->audiences, 0, NULL, 0};
    const char *why;
    if (o->arg != NULL)
        return misuse("unexpected argument %s", o->arg);
    if (o->name == NULL)
        return misuse("%s", "create needs --name NAME");
    if (o->audiences == NULL)
        return misuse("%s", "create needs --audiences \"A B\" (the audiences its tokens may name)");
    if (o->methods != NULL && gh_client_auth_parse(o->methods, &spec.auth_methods, &why) != 0)
        return misuse("--auth-methods: %s", why);
    if (o->ttl != NULL && (gh_apikey_duration_parse(o->ttl, &spec.token_ttl) != 0 ||
                           spec.token_ttl == 0 || spec.token_ttl > GH_CLIENT_TTL_MAX))
        return misuse("--ttl needs a duration from 1s to 1d, such as 300s or 1h, not '%s'", o->ttl);
    char *jwks = NULL;
    if (o->jwks != NULL) {
        size_t len;
        jwks = gh_file_read(o->jwks, GH_CLIENT_JWKS_MAX, &len);
        if (jwks == NULL) {
            fprintf(stderr, "gatehouse client create: %s: %s\n", o->jwks,
                    errno == EFBIG ? "larger than 32 KiB" : gh_file_strerror(errno));
            return 1;
        }
        if (strlen(jwks) != len) {
            free(jwks);
            fprintf(stderr, "gatehouse client create: %s: holds a NUL byte\n", o->jwks);
            return 1;
        }
        spec.jwks = jwks;
    }
    gh_store_t *st = open_store(o, GH_STORE_CREATE);
    if (st == NULL) {
        free(jwks);
        return 1;
    }
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c;
    gh_store_error_t err;
    int rc = gh_store_client_create(st, &spec, now, secret, &c, &err);
    gh_store_unref(st);
    free(jwks);
    if (rc != 0)
        return store_error("create", &err);
    rc = new_secret_out("create", o, secret, &c, now);
    OPENSSL_cleanse(secret, sizeof(secret));
    gh_client_dispose(&c);
    return rc;
}

static int cmd_list(const opts_t *o, int64_t now)
{
    if (o->arg != NULL)
        return misuse("unexpected argument %s", o->arg);
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_client_t *all;
    size_t n;
    gh_store_error_t err;
    int rc = gh_store_client_list(st, &all, &n, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("list", &err);
    if (o->json) {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < n; i++)
            if (json_array_append_new(a, gh_client_json(&all[i], now)) != 0) {
                json_decref(a);
                a = NULL;
            }
        rc = gh_cli_print_json("client", a);
    } else {
        printf("%-20s  %-7s  %-20s  %-24s  %s\n", "CLIENT_ID", "STATE", "CREATED", "NAME",
               "AUDIENCES / SCOPES");
        for (size_t i = 0; i < n; i++) {
            const gh_client_t *c = &all[i];
            printf("%-20s  %-7s  ", c->id, gh_client_state_name(gh_client_state(c, now)));
            gh_cli_put_time(stdout, c->created_at);
            printf("  ");
            gh_cli_put_safe(stdout, c->name);
            int w = 24 - (int)strlen(c->name);
            printf("%*s  ", w > 0 ? w : 0, "");
            put_list(c->audiences);
            printf(" / ");
            put_list(c->scopes);
            printf("\n");
        }
    }
    gh_client_list_free(all, n);
    return rc;
}

static int need_id(const opts_t *o, const char *cmd)
{
    if (o->arg == NULL) {
        fprintf(stderr, "gatehouse client %s: needs a client ID\n%s", cmd, usage);
        return 2;
    }
    return 0;
}

static int cmd_show(const opts_t *o, int64_t now)
{
    int r = need_id(o, "show");
    if (r != 0)
        return r;
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_client_t c;
    gh_store_error_t err;
    int rc = gh_store_client_get(st, o->arg, &c, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("show", &err);
    if (o->json)
        rc = gh_cli_print_json("client", gh_client_json(&c, now));
    else
        show_text(&c, now);
    gh_client_dispose(&c);
    return rc;
}

static int cmd_revoke(const opts_t *o, int64_t now)
{
    int r = need_id(o, "revoke");
    if (r != 0)
        return r;
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    gh_store_error_t err;
    int rc = gh_store_client_revoke(st, o->arg, now, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("revoke", &err);
    printf("revoked client %s\n", o->arg);
    return 0;
}

static int cmd_rotate(const opts_t *o, int64_t now)
{
    int64_t grace = GH_CLIENT_GRACE_DEFAULT;
    int r = need_id(o, "rotate-secret");
    if (r != 0)
        return r;
    if (o->grace != NULL &&
        (gh_apikey_duration_parse(o->grace, &grace) != 0 || grace > GH_CLIENT_GRACE_MAX))
        return misuse("--grace needs a duration from 0 to 30d, such as 24h or 0, not '%s'",
                      o->grace);
    gh_store_t *st = open_store(o, 0);
    if (st == NULL)
        return 1;
    char secret[GH_CLIENT_SECRET_LEN + 1];
    gh_client_t c;
    gh_store_error_t err;
    int rc = gh_store_client_rotate_secret(st, o->arg, grace, now, secret, &c, &err);
    gh_store_unref(st);
    if (rc != 0)
        return store_error("rotate-secret", &err);
    rc = new_secret_out("rotate-secret", o, secret, &c, now);
    if (!o->json) {
        if (grace > 0) {
            fprintf(stderr, "The previous secret keeps working until ");
            gh_cli_put_time(stderr, now + grace);
            fprintf(stderr, " (grace %llds).\n", (long long)grace);
        } else {
            fprintf(stderr, "The previous secret stopped working now.\n");
        }
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    gh_client_dispose(&c);
    return rc;
}

int gh_cli_client(int argc, char **argv)
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
    static const struct {
        const char *name;
        unsigned takes;
        int (*run)(const opts_t *, int64_t);
    } cmds[] = {
        {"create", O_NAME | O_SCOPES | O_AUDIENCES | O_JWKS | O_METHODS | O_TTL | O_JSON,
         cmd_create},
        {"list", O_JSON, cmd_list},
        {"show", O_JSON, cmd_show},
        {"revoke", 0, cmd_revoke},
        {"rotate-secret", O_GRACE | O_JSON, cmd_rotate},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(sub, cmds[i].name) != 0)
            continue;
        if ((o.seen & ~cmds[i].takes) != 0) {
            fprintf(stderr, "gatehouse client %s: an option given does not apply to it\n%s", sub,
                    usage);
            return 2;
        }
        return cmds[i].run(&o, (int64_t)time(NULL));
    }
    fprintf(stderr, "gatehouse client: unknown command '%s'\n%s", sub, usage);
    return 2;
}
