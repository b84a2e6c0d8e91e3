/*
 * The registry: the one list of filter types, as nginx's module list. A new
 * filter is a folder under src/filters and a line here, at its phase.
 * src/proxy and src/config know filters only through this list.
 */
#include <string.h>

#include <gatehouse/filter.h>

#include "filters/direct/direct.h"
#include "filters/fault/fault.h"
#include "filters/jwt/jwt.h"

/* In phase order (gatehouse/filter.h): a chain runs them in this order. */
static const gh_filter_type_t *const product[] = {
    &gh_authn_filter,  /* GH_PHASE_AUTHN */
    &gh_fault_filter,  /* GH_PHASE_TRANSFORM */
    &gh_direct_filter, /* GH_PHASE_TERMINAL */
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
