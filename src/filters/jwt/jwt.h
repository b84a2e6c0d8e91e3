/*
 * The authn filter: token authentication on routes (JWT today; API keys
 * and authorizers join the same section). Its per-snapshot runtime holds
 * one entry per JWT provider (key ring, claims policy, metric ids).
 */
#ifndef GATEHOUSE_FILTERS_JWT_H
#define GATEHOUSE_FILTERS_JWT_H

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_authn_filter;

#endif
