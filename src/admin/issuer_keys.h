/*
 * The issuer's signing-key endpoints of the admin API (docs/admin.md,
 * "Issuer keys"): GET /issuer/keys and POST /issuer/keys/rotate. Routing,
 * the strict check of the rotate body, the library call and the answer; no
 * I/O here (admin.c reads the request and writes the answer). Internal to
 * src/admin (and its tests).
 */
#ifndef GATEHOUSE_ADMIN_ISSUER_KEYS_H
#define GATEHOUSE_ADMIN_ISSUER_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/issuer_keys.h>

#include "admin/apikeys.h"

/* A rotate body is a few short members. */
#define GH_ADMIN_IK_BODY_MAX 4096u

typedef enum {
    GH_IK_LIST = 1, /* GET /issuer/keys */
    GH_IK_ROTATE,   /* POST /issuer/keys/rotate (optional JSON body) */
} gh_admin_ik_op_t;

typedef struct {
    gh_admin_ik_op_t op;
    int body; /* GH_AK_BODY_NONE or GH_AK_BODY_JSON */
    int head; /* HEAD: the answer's head only */
} gh_admin_ik_route_t;

/* 1 when path[0..n) (no query) is /issuer/keys or below it. */
int gh_admin_ik_is_path(const char *path, size_t n);

/* The operation of method and path: 0 and *rt, or -1 with the answer in
 * *out (404 no such path, 405 with allow). */
int gh_admin_ik_route(const char *method, size_t mlen, const char *path, size_t plen,
                      gh_admin_ik_route_t *rt, gh_admin_reply_t *out);

typedef struct {
    gh_jwt_alg_t alg; /* GH_JWT_ALG_UNKNOWN: the configured one */
    int bits;         /* 0: the configured one */
    int64_t lead;     /* -1: the configured one */
    int now;          /* emergency */
} gh_admin_ik_rotate_t;

/* {alg?: "ES256"|"RS256"|"EdDSA", bits?: 2048|3072|4096, lead?: "6m",
 * now?: true|false}, or no body: the configured settings. 0, or -EINVAL
 * with why (a sentence, for a 400), or -ENOMEM. */
int gh_admin_ik_parse_rotate(const char *body, size_t len, gh_admin_ik_rotate_t *out, char *why,
                             size_t cap);

/* Runs rt with the keys' settings conf (borrowed), the query (after '?',
 * may be empty: none is taken) and the whole body, at now; the answer into
 * *out. Returns 1 when the keys changed (a rotation), else 0. */
int gh_admin_ik_handle(const gh_issuer_keys_conf_t *conf, const gh_admin_ik_route_t *rt,
                       const char *query, size_t qlen, const char *body, size_t blen, int64_t now,
                       gh_admin_reply_t *out);

#endif
