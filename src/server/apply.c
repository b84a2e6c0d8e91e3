/* Apply checks: see apply.h. */
#include "server/apply.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include <gatehouse/accesslog.h>
#include <gatehouse/file.h>
#include <gatehouse/jwt.h>
#include <gatehouse/keyring.h>

int gh_apply_bind_listener(const gh_listener_conf_t *l)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (l->addr.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int gh_apply_check_jwks(const gh_config_t *cfg, char *why, size_t cap)
{
    for (size_t i = 0; i < cfg->num_jwt_providers; i++)
        if (gh_keyring_check(&cfg->jwt_providers[i], why, cap) < 0)
            return -1;
    return 0;
}

static int check_listeners(const gh_config_t *cfg, char *why, size_t cap)
{
    for (size_t i = 0; i < cfg->num_listeners; i++) {
        const gh_listener_conf_t *l = &cfg->listeners[i];
        int fd = gh_apply_bind_listener(l);
        if (fd < 0) {
            snprintf(why, cap, "listener '%s' cannot bind %s: %s", l->name, l->address,
                     strerror(-fd));
            return -1;
        }
        close(fd);
    }
    return 0;
}

/* The same rule the reload applies when it opens the file (accesslog.c). */
static int check_access_log(const gh_config_t *cfg, char *why, size_t cap)
{
    const char *path = cfg->access_log.path;
    if (!cfg->access_log.enabled || path == NULL || gh_access_log_path_usable(path) == 0)
        return 0;
    snprintf(why, cap, "access_log: cannot open %s: %s", path, gh_file_strerror(errno));
    return -1;
}

static int check_tracing(const gh_config_t *cfg, char *why, size_t cap)
{
    if (!cfg->tracing.enabled)
        return 0;
    CURLU *u = curl_url();
    if (u == NULL) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, cfg->tracing.collector, 0);
    curl_url_cleanup(u);
    if (rc != CURLUE_OK) {
        /* The URL may carry a credential: not quoted. */
        snprintf(why, cap, "tracing: the collector URL does not parse: %s", curl_url_strerror(rc));
        return -1;
    }
    return 0;
}

int gh_apply_check(const gh_config_t *cfg, char *why, size_t cap)
{
    if (check_listeners(cfg, why, cap) < 0 || check_access_log(cfg, why, cap) < 0 ||
        check_tracing(cfg, why, cap) < 0)
        return -1;
    return gh_apply_check_jwks(cfg, why, cap);
}
