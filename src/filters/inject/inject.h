/* The inject filter: credentials obtained by the client credentials grant,
 * set on requests on their way out (docs/inject.md). */
#ifndef GATEHOUSE_FILTERS_INJECT_H
#define GATEHOUSE_FILTERS_INJECT_H

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_inject_filter;

#endif
