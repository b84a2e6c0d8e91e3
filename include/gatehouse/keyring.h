/*
 * Keyrings: the verification keys of one JWT provider, loaded and kept
 * fresh by the main thread, read by every worker.
 *
 * A keyring is shared by every snapshot whose provider has the same name,
 * issuer and key source, so a reload does not refetch keys. Workers take
 * the current key set with gh_keyring_get() (a new reference: the set stays
 * valid while they verify, whatever a refresh does meanwhile) and ask for an
 * early refresh when a token names a kid the set lacks.
 *
 * Loading: inline sets at once; files when they change (polled every
 * second); URIs and OpenID Connect / RFC 8414 discovery in libuv's thread
 * pool with libcurl (TLS verified), every refresh_interval or the response's
 * Cache-Control max-age bounded by [min, max], with exponential backoff on
 * failure. A failed fetch or an invalid set never replaces the last good one.
 */
#ifndef GATEHOUSE_KEYRING_H
#define GATEHOUSE_KEYRING_H

#include <stdint.h>
#include <uv.h>

#include <gatehouse/config.h>
#include <gatehouse/jwt.h>

typedef struct gh_keyring_s gh_keyring_t;

/* Main thread, once: the loop keyrings run on. */
void gh_keyring_init(uv_loop_t *loop);
/* Main thread: stops every keyring (closes its handles; run the loop after)
 * and then, once no snapshot holds them, frees them. */
void gh_keyring_shutdown(void);
void gh_keyring_free_all(void);

/* Main thread: the keyring for p, shared or new (loading starts at once).
 * Returns a reference, or NULL when out of memory. */
gh_keyring_t *gh_keyring_acquire(const gh_jwt_provider_conf_t *p);
/* Any thread: drops a reference. An unreferenced keyring stops refreshing
 * (the main thread notices) and is reused if a later config names it. */
void gh_keyring_release(gh_keyring_t *k);

/* Any thread, no side effects: whether p's key set would load now. Inline
 * and file sets are read and parsed (a file that is missing, too large or
 * holds no usable key fails); fetched sets always pass (a fetch must not
 * block a reload; their failures keep the previous keys). Returns 0, or -1
 * with a message naming the provider in err. For a transactional reload. */
int gh_keyring_check(const gh_jwt_provider_conf_t *p, char *err, size_t cap);
/* Any thread: the current key set (a new reference to unref), or NULL while
 * none has loaded yet. */
gh_jwks_t *gh_keyring_get(gh_keyring_t *k);
/* Any thread: the generation of the current set (0 before the first). */
uint64_t gh_keyring_generation(gh_keyring_t *k);
/* Any thread: a token named a kid the set lacks; refetch unless one ran
 * within min_refresh_interval. */
void gh_keyring_request_refresh(gh_keyring_t *k);

/* Main thread: for /ready. 1 when keys are loaded; else *why says what is
 * wrong (static or keyring-owned text). */
int gh_keyring_ready(gh_keyring_t *k, const char **why);

/* Main thread: gatehouse_jwks_* metrics lines. */
size_t gh_keyring_metrics(char *buf, size_t cap, void *arg);

#endif
