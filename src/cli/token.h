#ifndef GATEHOUSE_CLI_TOKEN_H
#define GATEHOUSE_CLI_TOKEN_H

/* gatehouse token ...: argv starts after "token". Returns the exit status. */
int gh_cli_token(int argc, char **argv);

#endif
