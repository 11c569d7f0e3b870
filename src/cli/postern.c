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
	{ "list",	cmd_list },
	{ "show",	cmd_show },
	{ "save",	cmd_save },
	{ "mark",	cmd_mark },
	{ "delete",	cmd_delete },
	{ "move",	cmd_move },
	{ "export",	cmd_export },
	{ "migrate-uidl", cmd_migrate },
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
"           [--expire DAYS|never|default] [QUOTA] NAME\n"
"                                                      per-user options\n"
"  user del [DB] NAME                                  remove a user\n"
"  user list [DB]                                      list the users\n"
"  check [-c FILE]                                     check a configuration\n"
"  deliver [-c FILE] [-f SENDER] [--max-size OCTETS] -u USER\n"
"                                                      deliver mail on stdin\n"
"  fetch [-f FILE] [-q|-j] [-c] [-n|-e DUR] [NAME...] fetch mail from POP3\n"
"                                                      servers into Maildirs\n"
"                                                      (--check: count only)\n"
"  migrate-uidl --from dovecot|courier|x-uidl [-c FILE] [-n] [--force]\n"
"           [--uidl-format FMT] [--source FILE] (-u USER|--all|--maildir DIR)\n"
"                                                      keep the UIDLs of\n"
"                                                      another POP3 server\n"
"  list [BOX] [FILTERS] [--json] [ACCOUNT]             list fetched mail\n"
"  show [BOX] [--raw|--headers] ID                     show a message as text\n"
"  save [BOX] [--dir DIR] [--part N [--stdout]] ID     save its attachments\n"
"  mark [BOX] read|unread ID...                        set or clear Seen\n"
"  delete [BOX] [--purge] ID...                        move to Trash\n"
"  move [BOX] ID... FOLDER                             move to a folder\n"
"  export [BOX] [FILTERS] [-o FILE [--force]] [ID...]  write an mbox\n"
"  help                                                show this text\n"
"  --version                                           show the version\n"
"\n"
"DB is -c FILE (a configuration) or --db FILE [--db-type passwd-file|\n"
"sqlite]; without it, the user_db of the configuration: -c FILE, else\n"
"$" CLI_CONFIG_ENV ", else " CLI_DEFAULT_CONFIG ".\n"
"add and passwd store the forms of password_forms (crypt, scram-sha-1,\n"
"scram-sha-256, secret); with --db alone, crypt and both SCRAM forms.\n"
"--secret adds a plaintext-equivalent secret (APOP, CRAM-MD5).\n"
"QUOTA (set, and add) is --quota-bytes OCTETS|default and\n"
"--quota-messages COUNT|default.\n"
"The password is read from the terminal (twice, not echoed) or, when\n"
"standard input is not a terminal, as one line of it; never from the\n"
"command line.  SCHEME, of the crypt form: yescrypt (the default),\n"
"sha512-crypt, bcrypt or plain (the password itself, also the secret).\n"
"\n"
"Exit status: 0 done, 1 usage error (check: bad configuration),\n"
"2 the operation failed; deliver uses sysexits(3): 0 delivered,\n"
"64 usage, 67 no such user, 73 message too big or over quota, 75 try\n"
"again later (also over quota with quota_temporary = yes);\n"
"fetch: 0 done, 1 usage or configuration error, 2 no new mail (-n),\n"
"75 try again later, 77 authentication, TLS or a delivery refused;\n"
"migrate-uidl: 0 done, 64 usage, 65 source not understood, 66 no source\n"
"or Maildir, 67 no such user, 73 mailbox refuses the import, 75 try\n"
"again later, 78 configuration; list, show, save, mark, delete, move, export:\n"
"3 no such message or part.\n"
"BOX is -a ACCOUNT [-f FETCH.CONF], --maildir DIR or --mbox FILE, with\n"
"--folder NAME; FILTERS: --from, --subject, --since, --before (YYYY-MM-DD),\n"
"--unread, --attachments.  See 'postern list -h' and postern(1).\n", fp);
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
