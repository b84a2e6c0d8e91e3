#ifndef GATEHOUSE_PROXY_WORKER_H
#define GATEHOUSE_PROXY_WORKER_H

#include "proxy/proxy.h"

/* fds: one listening socket per listener of snap, bound, owned by the
 * worker from here on. Returns 0 or -1 (logged). */
int gh_worker_init(gh_worker_t *w, unsigned id, gh_snapshot_t *snap, const int *fds);
int gh_worker_start(gh_worker_t *w);
/* Stop accepting and drain; with force, close every connection now. Safe to
 * call from another thread. */
void gh_worker_stop(gh_worker_t *w, int force);
void gh_worker_join(gh_worker_t *w);
void gh_worker_dispose(gh_worker_t *w);

#endif
