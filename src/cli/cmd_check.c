/*
 * cmd_check.c: `postern check [-c FILE]`, the same test as
 * `posternd -t`: load the configuration and its TLS certificates and
 * say whether they are valid; then open the user database it names,
 * with its user_db_type, as the auth process will.
 *
 * Owns: nothing beyond one parsed configuration.  Trusts: nothing in the
 * file; config_load reports the first bad line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "lib/config.h"
#include "tls/tls.h"

static void
check_usage(FILE *fp)
{
	fputs("usage: postern check [-c FILE]\n"
	    "Checks the configuration (-c FILE, else $" CLI_CONFIG_ENV
	    ", else " CLI_DEFAULT_CONFIG ").\n"
	    "Then opens its user database (user_db, user_db_type).\n"
	    "Prints \"FILE: ok\" and exits 0, or prints the first error and "
	    "exits 1.\n", fp);
}

int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	const char *opt_c = NULL, *path;
	struct config c;
	char err[1024];
	int ch;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			opt_c = optarg;
			break;
		case 'h':
			check_usage(stdout);
			return CLI_EXIT_OK;
		case ':':
			fprintf(stderr, "postern check: option '%s' needs a "
			    "value; see 'postern check -h'\n",
			    argv[optind - 1]);
			return CLI_EXIT_USAGE;
		default:
			fprintf(stderr, "postern check: unknown option '%s'; "
			    "see 'postern check -h'\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "postern check: unexpected argument '%s'; "
		    "use -c FILE to name the configuration\n", argv[optind]);
		return CLI_EXIT_USAGE;
	}
	path = cli_config_path(opt_c);
	if (config_load(path, &c, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err[0] != '\0' ? err :
		    "configuration rejected");
		return CLI_EXIT_USAGE;
	}
	{
		/* The certificates and keys too, as posternd -t does. */
		struct tls_server *ts = tls_server_new(&c, err, sizeof(err));

		if (ts == NULL && err[0] != '\0') {
			fprintf(stderr, "%s: %s\n", path, err);
			config_free(&c);
			return CLI_EXIT_USAGE;
		}
		tls_server_free(&ts);
	}
	if (c.user_db != NULL) {
		/* The store, read as the auth process reads it. */
		struct userdb *db;

		if (userdb_open(c.user_db, c.user_db_type, &db, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "%s: user_db: %s; %s\n", path, err,
			    errno == ENOENT ? "'postern user add' creates it" :
			    errno == EINVAL ? "fix it, or set user_db_type" :
			    "check the path and its permissions");
			config_free(&c);
			return CLI_EXIT_USAGE;
		}
		userdb_free(&db);
	}
	config_free(&c);
	printf("%s: ok\n", path);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
