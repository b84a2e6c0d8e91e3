#ifndef GATEHOUSE_CLI_KEYS_H
#define GATEHOUSE_CLI_KEYS_H

/* gatehouse keys ...: argv starts after "keys". Returns the exit status. */
int gh_cli_keys(int argc, char **argv);

#endif
