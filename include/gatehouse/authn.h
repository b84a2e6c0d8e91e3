/*
 * Token authentication on routes: the JWT filter and its per-snapshot
 * runtime (one per provider: keyring, claims policy, metric ids).
 */
#ifndef GATEHOUSE_AUTHN_H
#define GATEHOUSE_AUTHN_H

#include <stddef.h>

#include <gatehouse/config.h>
#include <gatehouse/filter.h>

typedef struct gh_jwt_runtime_s gh_jwt_runtime_t;

/* Main thread (acquires the keyring, assigns metric ids). p is borrowed
 * and must outlive the runtime (both belong to one snapshot). */
gh_jwt_runtime_t *gh_jwt_runtime_new(const gh_jwt_provider_conf_t *p);
/* Any thread. */
void gh_jwt_runtime_free(gh_jwt_runtime_t *rt);
/* Main thread: for /ready. */
int gh_jwt_runtime_ready(const gh_jwt_runtime_t *rt, const char **why);

/* The filter's config: a route's authn with the runtimes of its providers
 * (borrowed from the snapshot). */
typedef struct {
    const gh_authn_conf_t *authn;
    gh_jwt_runtime_t **rt; /* authn->num_providers entries */
    /* Header names the route's providers set, dropped from every request. */
} gh_authn_filter_conf_t;

extern const gh_filter_type_t gh_authn_filter;

#endif
