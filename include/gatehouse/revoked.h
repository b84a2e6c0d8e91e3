/*
 * Revoked access tokens as this process knows them (docs/issuer.md#revocation):
 * the jti of every token of gatehouse's own issuer that was revoked
 * (RFC 7009) and has not expired, read from the store, which every
 * gatehouse sharing it writes (gatehouse/store.h, revocations).
 *
 * The main thread polls the current store every poll interval for the
 * revocations made since the last one it saw (on the thread pool: the store
 * call blocks), so a token revoked anywhere is refused here within one poll
 * interval and one store call; a revocation made by this process is known
 * at once. Workers look a jti up under a read lock.
 *
 * A store that cannot be read keeps what was known (logged, and said by
 * gh_revoked_status); expired entries are dropped as polls go by.
 * A poll that finds another store than the last one (a reload changed the
 * `store` section) reads that store's feed from its start.
 */
#ifndef GATEHOUSE_REVOKED_H
#define GATEHOUSE_REVOKED_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Main thread, once. */
void gh_revoked_init(uv_loop_t *main_loop);
/* Main thread: poll every poll_ms (0: stop polling; what is known stays). */
void gh_revoked_configure(uint64_t poll_ms);
/* Main thread, at exit: stops the timer (run the loop after). */
void gh_revoked_stop(void);
void gh_revoked_free(void);

/* Any thread: 1 when jti[0..len) is known revoked at now (unix s). */
int gh_revoked_has(const char *jti, size_t len, int64_t now);
/* Any thread: what this process itself revoked, known at once (the store
 * write is the caller's). 0, or -ENOMEM / -ENOSPC (the set is full). */
int gh_revoked_add(const char *jti, size_t len, int64_t exp);
/* Any thread: bumped each time a jti becomes known revoked, so caches of
 * verified tokens can be emptied (a revocation is rare; a check per cached
 * use would not be). */
uint64_t gh_revoked_generation(void);
/* Main thread: entries known, polls done, and the last poll's error ("" when it worked). */
void gh_revoked_status(size_t *entries, uint64_t *polls, const char **error);

#endif
