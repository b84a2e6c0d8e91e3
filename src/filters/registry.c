/*
 * The registry: the one list of filter types, as nginx's module list. A new
 * filter is a folder under src/filters and a line here, at its phase.
 * src/proxy and src/config know filters only through this list.
 */
#include <string.h>

#include <gatehouse/filter.h>
#include <gatehouse/metrics.h>

#include "filters/direct/direct.h"
#include "filters/fault/fault.h"
#include "filters/inject/inject.h"
#include "filters/issuer/internal.h"
#include "filters/jwt/jwt.h"
#include "filters/lambda/lambda.h"
#include "filters/policy/policy.h"
#include "filters/ratelimit/ratelimit.h"

/* In phase order (gatehouse/filter.h): a chain runs them in this order. */
static const gh_filter_type_t *const product[] = {
    &gh_authn_filter,     /* GH_PHASE_AUTHN */
    &gh_policy_filter,    /* GH_PHASE_AUTHZ */
    &gh_ratelimit_filter, /* GH_PHASE_LIMITS */
    &gh_fault_filter,     /* GH_PHASE_TRANSFORM */
    &gh_inject_filter,    /* GH_PHASE_TRANSFORM: after faults (an aborted request needs no token) */
    &gh_direct_filter,    /* GH_PHASE_TERMINAL */
    &gh_lambda_filter,    /* GH_PHASE_TERMINAL: routes to lambda clusters (implied) */
    &gh_issuer_filter,    /* GH_PHASE_TERMINAL: the token service's endpoints */
    NULL,
};

static const gh_filter_type_t *const *types = product;

const gh_filter_type_t *const *gh_filter_types(void)
{
    return types;
}

const gh_filter_type_t *gh_filter_type_find(const char *key)
{
    for (size_t i = 0; types[i] != NULL; i++)
        if (strcmp(types[i]->name, key) == 0)
            return types[i];
    return NULL;
}

void gh_filter_types_set(const gh_filter_type_t *const *list)
{
    types = list != NULL ? list : product;
}

/* Whether the services run: stop may be asked twice on the way out (when
 * the workers ended, and at the end of gh_server_run), and runs once. */
static int services_on;

int gh_filter_services_start(uv_loop_t *main_loop)
{
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->service_start != NULL && types[i]->service_start(main_loop) < 0) {
            while (i-- > 0)
                if (types[i]->service_stop != NULL)
                    types[i]->service_stop();
            return -1;
        }
    services_on = 1;
    return 0;
}

void gh_filter_services_stop(void)
{
    if (!services_on)
        return;
    services_on = 0;
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->service_stop != NULL)
            types[i]->service_stop();
}

void gh_filter_services_free(void)
{
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->service_free != NULL)
            types[i]->service_free();
}

void gh_filter_metrics_attach(void *arg)
{
    for (size_t i = 0; types[i] != NULL; i++)
        if (types[i]->metrics != NULL)
            gh_metrics_set_extra(types[i]->metrics, arg);
}
