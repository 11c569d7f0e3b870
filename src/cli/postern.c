/*
 * postern.c: the `postern` command: dispatch to the subcommands, usage
 * and version.
 *
 * Owns: nothing but the command table.  Trusts: nothing on the command
 * line; each subcommand checks its own arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char	*name;
	int		(*run)(int, char **);
} commands[] = {
	{ "user",	cmd_user },
	{ "check",	cmd_check },
};

void
cli_usage(FILE *fp)
{
	fputs(
"usage: postern <command> [<args>]\n"
"\n"
"commands:\n"
"  user add [--db FILE] [--scheme SCHEME] NAME     add a user\n"
"  user passwd [--db FILE] [--scheme SCHEME] NAME  set a user's password\n"
"  user del [--db FILE] NAME                       remove a user\n"
"  user list [--db FILE]                           list the users\n"
"  check [-c FILE]                                 check a configuration\n"
"  help                                            show this text\n"
"  --version                                       show the version\n"
"\n"
"The password is read from the terminal (twice, not echoed) or, when\n"
"standard input is not a terminal, as one line of it; never from the\n"
"command line.  SCHEME is yescrypt (the default), sha512-crypt, bcrypt\n"
"or plain (a plaintext-equivalent secret, needed only for APOP).\n"
"Without --db, the user_db of the configuration is used.  The\n"
"configuration is -c FILE, else $" CLI_CONFIG_ENV ", else\n"
CLI_DEFAULT_CONFIG ".\n"
"\n"
"Exit status: 0 done, 1 usage error (check: bad configuration),\n"
"2 the operation failed.\n", fp);
}

const char *
cli_config_path(const char *opt)
{
	const char *env;

	if (opt != NULL)
		return opt;
	env = getenv(CLI_CONFIG_ENV);
	if (env != NULL && env[0] != '\0')
		return env;
	return CLI_DEFAULT_CONFIG;
}

int
main(int argc, char **argv)
{
	const char *cmd;
	size_t i;

	if (argc < 2) {
		cli_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 ||
	    strcmp(cmd, "version") == 0) {
		printf("postern %s\n", POSTERN_VERSION);
		return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "--help") == 0) {
		cli_usage(stdout);
		return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	for (i = 0; i < N_ELEMENTS(commands); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "postern: unknown %s '%s'; see 'postern help'\n",
	    cmd[0] == '-' ? "option" : "command", cmd);
	return CLI_EXIT_USAGE;
}
