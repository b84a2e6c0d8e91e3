/* The lambda upstream: see lambda.c. */
#ifndef GATEHOUSE_FILTERS_LAMBDA_H
#define GATEHOUSE_FILTERS_LAMBDA_H

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_lambda_filter;

#endif
