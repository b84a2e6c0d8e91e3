/*
 * Running gatehouse: load the config, bind the listeners, start the
 * workers, serve until SIGTERM or SIGINT, drain, return.
 */
#ifndef GATEHOUSE_SERVER_H
#define GATEHOUSE_SERVER_H

typedef struct {
    const char *config_path;
    unsigned workers; /* 0 = from the config, else one per core */
} gh_server_opts_t;

/* Returns the process exit status: 0 after a clean stop, 1 when the config
 * is invalid or a listener cannot be bound (the reason is logged). */
int gh_server_run(const gh_server_opts_t *opts);

#endif
