/*
 * postern.c: the `postern` command: dispatch to the subcommands, usage
 * and version.
 *
 * Owns: nothing but the command table.  Trusts: nothing on the command
 * line; each subcommand checks its own arguments.
 */
#include <stdarg.h>
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
	{ "deliver",	cmd_deliver },
	{ "fetch",	cmd_fetch },
};

void
cli_usage(FILE *fp)
{
	fputs(
"usage: postern <command> [<args>]\n"
"\n"
"commands:\n"
"  user add [DB] [--scheme SCHEME] [--secret] NAME     add a user\n"
"  user passwd [DB] [--scheme SCHEME] [--secret] NAME  set a password\n"
"  user set [DB] [--disable|--enable] [--login-delay SECONDS|default]\n"
"           [--expire DAYS|never|default] NAME        per-user options\n"
"  user del [DB] NAME                                  remove a user\n"
"  user list [DB]                                      list the users\n"
"  check [-c FILE]                                     check a configuration\n"
"  deliver [-c FILE] [-f SENDER] [--max-size OCTETS] -u USER\n"
"                                                      deliver mail on stdin\n"
"  fetch [-f FILE] [-q|-j] [-c] [-n|-e DUR] [NAME...] fetch mail from POP3\n"
"                                                      servers into Maildirs\n"
"                                                      (--check: count only)\n"
"  help                                                show this text\n"
"  --version                                           show the version\n"
"\n"
"DB is -c FILE (a configuration) or --db FILE [--db-type passwd-file|\n"
"sqlite]; without it, the user_db of the configuration: -c FILE, else\n"
"$" CLI_CONFIG_ENV ", else " CLI_DEFAULT_CONFIG ".\n"
"add and passwd store the forms of password_forms (crypt, scram-sha-1,\n"
"scram-sha-256, secret); with --db alone, crypt and both SCRAM forms.\n"
"--secret adds a plaintext-equivalent secret (APOP, CRAM-MD5).\n"
"The password is read from the terminal (twice, not echoed) or, when\n"
"standard input is not a terminal, as one line of it; never from the\n"
"command line.  SCHEME, of the crypt form: yescrypt (the default),\n"
"sha512-crypt, bcrypt or plain (the password itself, also the secret).\n"
"\n"
"Exit status: 0 done, 1 usage error (check: bad configuration),\n"
"2 the operation failed; deliver uses sysexits(3): 0 delivered,\n"
"64 usage, 67 no such user, 73 message too big, 75 try again later;\n"
"fetch: 0 done, 1 usage or configuration error, 2 no new mail (-n),\n"
"75 try again later, 77 authentication, TLS or a delivery refused.\n", fp);
}

int
cli_usage_error(const char *cmd, const char *hint, int status,
    const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "postern %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; see '%s'\n", hint);
	return status;
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
