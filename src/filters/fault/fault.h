/* Fault injection: see fault.c and docs/filters.md. */
#ifndef GATEHOUSE_FILTERS_FAULT_H
#define GATEHOUSE_FILTERS_FAULT_H

#include <stdint.h>

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_fault_filter;

/* "50", "12.5", "0.01" (percent, at most two decimals, 0 to 100) as parts
 * per 10,000. Returns 0, or -1 when s is not such a number. */
int gh_fault_parse_percent(const char *s, size_t len, uint32_t *per10k);

#endif
