/*
 * The OAuth-client endpoints of the admin API (docs/admin.md#oauth-clients):
 * which /clients path and method is which operation, the strict checks of
 * JSON bodies, the store calls and the answers; the same auth, body rules
 * and error shapes as /apikeys (admin/apikeys.h). No I/O here: admin.c reads
 * the request and writes the answer. Internal to src/admin (and its tests).
 */
#ifndef GATEHOUSE_ADMIN_CLIENTS_H
#define GATEHOUSE_ADMIN_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gatehouse/store.h>

#include "admin/apikeys.h"

typedef enum {
    GH_CL_LIST = 1, /* GET /clients */
    GH_CL_CREATE,   /* POST /clients */
    GH_CL_SHOW,     /* GET /clients/ID */
    GH_CL_REVOKE,   /* POST /clients/ID/revoke */
    GH_CL_ROTATE,   /* POST /clients/ID/rotate-secret */
} gh_admin_cl_op_t;

typedef struct {
    gh_admin_cl_op_t op;
    char id[GH_CLIENT_ID_LEN + 1]; /* the client's, for the /clients/ID paths */
    int body;                      /* GH_AK_BODY_NONE or GH_AK_BODY_JSON */
    int head;                      /* HEAD: the answer's head only */
} gh_admin_cl_route_t;

/* 1 when path[0..n) (no query) is /clients or below it. */
int gh_admin_cl_is_path(const char *path, size_t n);

/* The operation of method and path (a /clients path): 0 and *rt, or -1
 * with the answer in *out (404 no such path or not a client id, 405 with
 * allow). */
int gh_admin_cl_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_cl_route_t *rt, gh_admin_reply_t *out);

/* Runs rt against st with the query (after '?'; these endpoints take
 * none) and the whole body, at now; the answer into *out. */
void gh_admin_cl_handle(gh_store_t *st, const gh_admin_cl_route_t *rt, const char *query,
                        size_t qlen, const char *body, size_t blen, int64_t now,
                        gh_admin_reply_t *out);

/* ---- the parsers (also for tests and tests/fuzz/fuzz_admin_clients.c) ----
 * Each returns 0, or -EINVAL with why (a sentence) for a 400, or -ENOMEM. */

typedef struct {
    json_t *doc;           /* holds the strings below */
    const char *name;      /* required */
    char *scopes;          /* the array joined with spaces (heap); NULL: none */
    char *audiences;       /* likewise; required */
    unsigned auth_methods; /* 0: the default */
    char *jwks;            /* the jwks member as compact JSON text (heap); NULL: none */
    int64_t token_ttl;     /* seconds; 0: the issuer's default */
} gh_admin_cl_create_t;

/* {name, audiences: [..], scopes?: [..], auth_methods?: [..], jwks?: {...},
 * token_ttl?: "300s"} */
int gh_admin_cl_parse_create(const char *body, size_t len, gh_admin_cl_create_t *out, char *why,
                             size_t cap);
void gh_admin_cl_create_dispose(gh_admin_cl_create_t *c);
/* {grace?: "24h"}, or no body: grace GH_CLIENT_GRACE_DEFAULT. */
int gh_admin_cl_parse_rotate(const char *body, size_t len, int64_t *grace, char *why, size_t cap);

/* ---- shared with admin/apikeys.c ---- */

/* One JSON object from body whose member names are all in known
 * (NULL-terminated), or NULL with why and *rc (-EINVAL, -ENOMEM). */
json_t *gh_admin_json_object(const char *body, size_t len, const char *const *known,
                             const char *what, char *why, size_t cap, int *rc);
/* doc (taken) as an indented answer with status. */
void gh_admin_reply_doc(gh_admin_reply_t *r, int status, json_t *doc);

#endif
