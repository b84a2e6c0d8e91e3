/*
 * The admin API: its own listener on the main thread's loop, serving
 * /live, /ready, /metrics, /config, /clusters, the API keys of the
 * store under /apikeys and the token issuer's signing keys under
 * /issuer/keys (docs/admin.md).
 *
 * The admin module does not know the server or the filters; it asks
 * through hooks, all called on the main thread.
 */
#ifndef GATEHOUSE_ADMIN_H
#define GATEHOUSE_ADMIN_H

#include <stddef.h>
#include <uv.h>

#include <gatehouse/config.h>
#include <gatehouse/issuer_keys.h>
#include <gatehouse/store.h>

typedef struct {
    /* 1 when serving; otherwise fills reason (text valid until the next
     * call; several reasons are separated by '\n', each a "reasons" entry).
     * Without `detailed` the reason names no file path, URL or text from
     * the network. */
    int (*ready)(void *arg, int detailed, const char **reason);
    /* Heap JSON documents (caller frees), NULL when out of memory. */
    char *(*config_json)(void *arg, size_t *len);
    char *(*clusters_json)(void *arg, size_t *len);
    /* The store the running config uses (the /apikeys endpoints): a new
     * reference, which the admin API drops once the request is answered;
     * NULL when it cannot be opened, with why (a sentence) in why[0..cap).
     * May block the main loop for as long as opening the store takes. */
    gh_store_t *(*store)(void *arg, char *why, size_t cap);
    void *arg;
    /* The token issuer's key settings (the /issuer/keys endpoints),
     * borrowed until the next call; NULL when this process has no issuer,
     * with why in why[0..cap). The hook may be NULL (the same). */
    const gh_issuer_keys_conf_t *(*issuer_keys)(void *arg, char *why, size_t cap);
    /* Called after a rotation through the admin API, so the process loads
     * the new keys at once rather than at its next poll. May be NULL. */
    void (*issuer_keys_rotated)(void *arg);
} gh_admin_hooks_t;

typedef struct gh_admin_s gh_admin_t;

/* Binds conf->address on loop. Returns NULL with the reason logged. The
 * token (if any) is copied. */
gh_admin_t *gh_admin_start(uv_loop_t *loop, const gh_admin_conf_t *conf,
                           const gh_admin_hooks_t *hooks);
/* Takes a new token and max_import_body from a reloaded config (the
 * address is fixed at start: changing it needs a restart, which is
 * logged). */
void gh_admin_update(gh_admin_t *a, const gh_admin_conf_t *conf);
/* 1 when conf is enabled and names the address a is bound to (a may be
 * NULL: 0). A reload compares with this, not with the previous config,
 * which may not have had an admin section at all. */
int gh_admin_is_bound_to(const gh_admin_t *a, const gh_admin_conf_t *conf);
/* Closes the listener and every admin connection; frees a in the last
 * close callback. */
void gh_admin_stop(gh_admin_t *a);

#endif
