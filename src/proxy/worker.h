#ifndef GATEHOUSE_PROXY_WORKER_H
#define GATEHOUSE_PROXY_WORKER_H

#include "proxy/proxy.h"

/* fds: one bound listening socket per listener of snap; the worker takes
 * those it opens (set to -1). Returns 0 or -1 (logged). */
int gh_worker_init(gh_worker_t *w, unsigned id, gh_snapshot_t *snap, int *fds);
int gh_worker_start(gh_worker_t *w);
/* Main thread -> worker: make snap current. fds (heap, taken) holds one
 * entry per listener of snap: a new bound socket, or -1 where the worker
 * keeps the socket it has for that address. */
void gh_worker_post(gh_worker_t *w, gh_snapshot_t *snap, int *fds);
/* Stop accepting and drain; with force, close every connection now. Safe to
 * call from another thread. */
void gh_worker_stop(gh_worker_t *w, int force);
void gh_worker_join(gh_worker_t *w);
void gh_worker_dispose(gh_worker_t *w);

#endif
