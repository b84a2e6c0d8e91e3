/*
 * The API-key endpoints of the admin API (docs/admin.md#api-keys): which
 * /apikeys path and method is which operation, the strict checks of query
 * strings and JSON bodies, the store calls and the answers. No I/O here:
 * admin.c reads the request (head, then the body it is allowed to have)
 * and writes the answer. Internal to src/admin (and its tests).
 */
#ifndef GATEHOUSE_ADMIN_APIKEYS_H
#define GATEHOUSE_ADMIN_APIKEYS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gatehouse/store.h>

/* A JSON body's bound; a CSV import's is admin.max_import_body. */
#define GH_ADMIN_JSON_BODY_MAX (64u * 1024)

typedef enum {
    GH_AK_LIST = 1, /* GET /apikeys */
    GH_AK_CREATE,   /* POST /apikeys */
    GH_AK_IMPORT,   /* POST /apikeys/import */
    GH_AK_SHOW,     /* GET /apikeys/ID */
    GH_AK_REVOKE,   /* POST /apikeys/ID/revoke */
    GH_AK_ROTATE,   /* POST /apikeys/ID/rotate */
    GH_AK_USAGE,    /* GET /apikeys/ID/usage */
} gh_admin_ak_op_t;

/* What a request's body may be. */
enum {
    GH_AK_BODY_NONE = 0, /* none: a body is refused (400) */
    GH_AK_BODY_JSON,     /* application/json, at most GH_ADMIN_JSON_BODY_MAX */
    GH_AK_BODY_CSV,      /* text/csv, at most the configured bound */
};

typedef struct {
    gh_admin_ak_op_t op;
    char id[GH_APIKEY_ID_LEN + 1]; /* the key's, for the /apikeys/ID paths */
    int body;                      /* GH_AK_BODY_* */
    int head;                      /* HEAD: the answer's head only */
} gh_admin_ak_route_t;

/* An answer: status, a JSON document (one line, or indented as the CLI
 * prints it, ending in "\n") and extra header lines. */
typedef struct {
    int status;
    char *body; /* heap */
    size_t len;
    char extra[160];
} gh_admin_reply_t;

void gh_admin_reply_dispose(gh_admin_reply_t *r);
/* {"error": code, "detail": ...} with status; the detail is made ASCII
 * (other bytes become '?'). Out of memory: body NULL (close the
 * connection). */
void gh_admin_reply_error(gh_admin_reply_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* 1 when path[0..n) (no query) is /apikeys or below it. */
int gh_admin_ak_is_path(const char *path, size_t n);

/* The operation of method and path (an /apikeys path): 0 and *rt, or -1
 * with the answer in *out (404 no such path, 405 with allow). */
int gh_admin_ak_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_ak_route_t *rt, gh_admin_reply_t *out);

/* Whether a body of this Content-Type (ctype NULL: none) may be read for
 * rt: 0, or -1 with the 415 in *out. */
int gh_admin_ak_check_type(const gh_admin_ak_route_t *rt, const char *ctype, size_t n,
                           gh_admin_reply_t *out);

/* Runs rt against st with the query (after '?', may be empty) and the
 * whole body, at now; the answer into *out. */
void gh_admin_ak_handle(gh_store_t *st, const gh_admin_ak_route_t *rt, const char *query,
                        size_t qlen, const char *body, size_t blen, int64_t now,
                        gh_admin_reply_t *out);

/* ---- the parsers (also for tests and tests/fuzz/fuzz_admin_body.c) ----
 * Each returns 0, or -EINVAL with why (a sentence) for a 400, or -ENOMEM. */

typedef struct {
    json_t *doc;             /* holds the strings below */
    const char *consumer;    /* required */
    const char *plan;        /* NULL: none */
    const char *description; /* NULL: none */
    char *scopes;            /* the array joined with commas (heap), NULL: none */
    int64_t expires_in;      /* seconds; 0: never */
} gh_admin_ak_create_t;

/* {consumer, plan?, scopes?: [..], description?, expires?: "90d"|"never"} */
int gh_admin_ak_parse_create(const char *body, size_t len, gh_admin_ak_create_t *out, char *why,
                             size_t cap);
void gh_admin_ak_create_dispose(gh_admin_ak_create_t *c);
/* {grace?: "24h", expires?: "90d"|"never"}, or no body: the defaults
 * (grace 24h, the old key's lifetime). */
int gh_admin_ak_parse_rotate(const char *body, size_t len, gh_apikey_rotate_t *out, char *why,
                             size_t cap);
/* {} or no body. */
int gh_admin_ak_parse_revoke(const char *body, size_t len, char *why, size_t cap);

#define GH_ADMIN_AK_MAX_PLAN_MAP 1024

typedef struct {
    char *consumer;                 /* list: consumer=NAME, NULL: every key */
    unsigned days;                  /* usage: days=N (default 7) */
    gh_apikey_plan_map_t *plan_map; /* import: plan_map=USAGEPLANID=PLAN ... */
    size_t num_plan_map;
    char *plan;     /* import: plan=PLAN */
    int dry_run;    /* import: dry_run=1|true|0|false */
    char **strings; /* every decoded value, freed with the query */
    size_t num_strings;
} gh_admin_ak_query_t;

/* The query string of op: names exact, values percent-decoded ('+' is a
 * space), each parameter once except plan_map; anything else refused. */
int gh_admin_ak_parse_query(gh_admin_ak_op_t op, const char *q, size_t n, gh_admin_ak_query_t *out,
                            char *why, size_t cap);
void gh_admin_ak_query_dispose(gh_admin_ak_query_t *q);

#endif
