/*
 * The process's token issuer keys (gatehouse/issuer_keys.h, "the current
 * watcher"): the watcher of <state_dir>/issuer with the settings of the
 * running config's `issuer` section, chosen by the server at each config
 * apply, and read by the filters that sign (the token endpoint) and verify
 * (JWT providers with `issuer: self`) when a snapshot is made.
 *
 * A watcher is started once per (directory, settings) and kept until the
 * process stops: snapshots made with it hold its pointer, and a reload
 * that changed the settings may leave one of them serving for a while.
 * Changed settings are rare (a new state_dir, alg or lifetime), so the
 * handful of idle watchers this keeps is bounded by the reloads that did.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gatehouse/issuer_keys.h>
#include <gatehouse/log.h>
#include <gatehouse/revoked.h>

typedef struct watcher_s {
    struct watcher_s *next;
    gh_issuer_keys_conf_t conf;
    gh_issuer_keys_t *keys;
} watcher_t;

static uv_loop_t *loop;
static watcher_t *all;
static watcher_t *current, *selected;
static uint64_t selected_poll_ms;

void gh_issuer_current_init(uv_loop_t *main_loop)
{
    loop = main_loop;
    gh_revoked_init(main_loop);
}

static int same_conf(const gh_issuer_keys_conf_t *a, const gh_issuer_keys_conf_t *b)
{
    return strcmp(a->dir, b->dir) == 0 && a->alg == b->alg && a->rsa_bits == b->rsa_bits &&
           a->jwks_max_age == b->jwks_max_age && a->publish_lead == b->publish_lead &&
           a->max_token_ttl == b->max_token_ttl && a->leeway == b->leeway;
}

int gh_issuer_keys_conf_from_config(gh_issuer_keys_conf_t *c, const gh_config_t *cfg)
{
    if (gh_issuer_keys_conf_init(c, cfg->state_dir) != 0)
        return -ENOMEM;
    const gh_issuer_conf_t *is = cfg->issuer;
    if (is == NULL)
        return 0;
    c->alg = (gh_jwt_alg_t)is->alg;
    c->rsa_bits = is->rsa_bits;
    c->jwks_max_age = (int64_t)is->jwks_max_age;
    c->publish_lead = (int64_t)is->publish_lead;
    c->max_token_ttl = (int64_t)is->token_ttl;
    c->leeway = (int64_t)is->leeway;
    return 0;
}

int gh_issuer_current_select(const gh_config_t *cfg, char *err, size_t cap)
{
    selected = NULL;
    selected_poll_ms = 0;
    if (cfg->issuer == NULL)
        return 0;
    selected_poll_ms = cfg->issuer->revocation_poll_ms;
    gh_issuer_keys_conf_t c;
    if (gh_issuer_keys_conf_from_config(&c, cfg) != 0) {
        snprintf(err, cap, "issuer: out of memory");
        return -1;
    }
    char why[512];
    if (gh_issuer_keys_conf_check(&c, why, sizeof(why)) != 0) {
        snprintf(err, cap, "issuer: %s", why);
        gh_issuer_keys_conf_dispose(&c);
        return -1;
    }
    for (watcher_t *w = all; w != NULL; w = w->next)
        if (same_conf(&w->conf, &c)) {
            gh_issuer_keys_conf_dispose(&c);
            selected = w;
            return 0;
        }
    watcher_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, cap, "issuer: out of memory");
        gh_issuer_keys_conf_dispose(&c);
        return -1;
    }
    w->conf = c;
    if ((w->keys = gh_issuer_keys_start(loop, &c, why, sizeof(why))) == NULL) {
        snprintf(err, cap, "issuer: the signing keys in %s do not load: %s", c.dir, why);
        gh_issuer_keys_conf_dispose(&w->conf);
        free(w);
        return -1;
    }
    w->next = all;
    all = w;
    selected = w;
    return 0;
}

void gh_issuer_current_commit(void)
{
    current = selected;
    gh_revoked_configure(current != NULL ? selected_poll_ms : 0);
}

gh_issuer_keys_t *gh_issuer_current(void)
{
    /* Between select and commit, the snapshot being made reads the
     * selected one: it is what it will serve with. */
    return selected != NULL ? selected->keys : NULL;
}

const gh_issuer_keys_conf_t *gh_issuer_current_conf(void)
{
    return current != NULL ? &current->conf : NULL;
}

void gh_issuer_current_reload(void)
{
    if (current != NULL)
        gh_issuer_keys_reload(current->keys);
}

void gh_issuer_current_rollback(void)
{
    selected = current;
}

void gh_issuer_current_stop(void)
{
    gh_revoked_stop();
    for (watcher_t *w = all; w != NULL; w = w->next)
        if (w->keys != NULL) {
            gh_issuer_keys_stop(w->keys); /* freed in its close callbacks */
            w->keys = NULL;
        }
}

void gh_issuer_current_free(void)
{
    while (all != NULL) {
        watcher_t *next = all->next;
        gh_issuer_keys_conf_dispose(&all->conf);
        free(all);
        all = next;
    }
    current = selected = NULL;
    gh_revoked_free();
}
