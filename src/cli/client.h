#ifndef GATEHOUSE_CLI_CLIENT_H
#define GATEHOUSE_CLI_CLIENT_H

/* gatehouse client ...: argv starts after "client". Returns the exit status. */
int gh_cli_client(int argc, char **argv);

#endif
