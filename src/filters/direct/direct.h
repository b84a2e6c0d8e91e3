/* direct_response: see direct.c. */
#ifndef GATEHOUSE_FILTERS_DIRECT_H
#define GATEHOUSE_FILTERS_DIRECT_H

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_direct_filter;

#endif
