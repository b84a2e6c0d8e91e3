/*
 * Authorization policies, as Istio's AuthorizationPolicy (docs/authorization.md):
 * named ALLOW and DENY policies in the top-level `policies:` section,
 * attached to listeners and routes (`policies: [NAME, ...]`), evaluated in
 * the authz phase after authentication: any matching DENY denies, then,
 * when ALLOW policies apply, one of them must match.
 */
#ifndef GATEHOUSE_FILTERS_POLICY_H
#define GATEHOUSE_FILTERS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <gatehouse/filter.h>

extern const gh_filter_type_t gh_policy_filter;

typedef struct gh_policy_s gh_policy_t;
typedef struct gh_policy_section_s gh_policy_section_t;

/* At most this many policies govern one route (its listener's and its
 * own): a decision is a bounded walk, and dry-run outcomes fit a mask. */
#define GH_POL_MAX_PER_ROUTE 64

/* A route's policies by kind, in the order they were attached. */
typedef struct {
    const gh_policy_t **deny, **allow, **dry_deny, **dry_allow; /* borrowed */
    uint32_t ndeny, nallow, ndry_deny, ndry_allow;
} gh_policy_lists_t;

typedef enum {
    GH_POL_OUT_NONE = 0, /* allowed: no DENY matched and no ALLOW policy applies */
    GH_POL_OUT_ALLOW,    /* allowed by the ALLOW policy at index */
    GH_POL_OUT_DENY,     /* denied by the DENY policy at index */
    GH_POL_OUT_NO_ALLOW, /* denied: ALLOW policies apply and none matched */
} gh_policy_outcome_t;

typedef struct {
    uint8_t outcome; /* gh_policy_outcome_t, of the enforced policies */
    uint32_t index;  /* into allow[] or deny[] */
    /* What the dry-run policies would decide, each kind on its own as
     * Istio's shadow rules: every dry-run DENY that matched (bit i: dry_deny[i]),
     * and the dry-run ALLOW set's outcome (NONE when it is empty). */
    uint64_t dry_deny_hits;
    uint8_t dry_allow_outcome;
    uint32_t dry_allow_index;
    /* The request could not be evaluated (out of memory): deny. */
    int oom;
} gh_policy_decision_t;

struct gh_policy_req_s;
/* Evaluates the lists against one request (Istio's order: DENY, then
 * ALLOW; CUSTOM comes with the authorizers), and the dry-run policies
 * beside them. Allocates only through req->alloc_fn, and only to join
 * repeated header fields or decode escaped JSON strings. */
void gh_policy_decide(const gh_policy_section_t *sec, const gh_policy_lists_t *l,
                      struct gh_policy_req_s *req, gh_policy_decision_t *out);

#endif
