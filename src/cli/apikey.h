#ifndef GATEHOUSE_CLI_APIKEY_H
#define GATEHOUSE_CLI_APIKEY_H

/* gatehouse apikey ...: argv starts after "apikey". Returns the exit status. */
int gh_cli_apikey(int argc, char **argv);

#endif
