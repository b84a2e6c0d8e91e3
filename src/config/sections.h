/*
 * Config sections that live outside config.c: each parses its own key of
 * the root mapping (node is NULL when the key is absent) into cfg, and
 * gh_config_free_sections() releases what they allocated.
 */
#ifndef GATEHOUSE_CONFIG_SECTIONS_H
#define GATEHOUSE_CONFIG_SECTIONS_H

#include "config/yaml.h"

int gh_config_parse_admin(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node, gh_config_t *cfg);
int gh_config_parse_access_log(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                               gh_config_t *cfg);
int gh_config_parse_tracing(const gh_yaml_doc_t *doc, const gh_yaml_node_t *node,
                            gh_config_t *cfg);
void gh_config_free_sections(gh_config_t *cfg);

#endif
