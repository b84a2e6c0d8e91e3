#ifndef GATEHOUSE_ADMIN_VIEWS_H
#define GATEHOUSE_ADMIN_VIEWS_H

#include <stddef.h>

#include "proxy/snapshot.h"

/* The running configuration as JSON, secrets redacted. Heap string. */
char *gh_admin_config_json(const gh_snapshot_t *snap, size_t *len);
/* Clusters, endpoints and their state summed over workers. Heap string. */
char *gh_admin_clusters_json(const gh_snapshot_t *snap, size_t *len);

#endif
