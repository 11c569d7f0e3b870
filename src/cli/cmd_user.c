/*
 * cmd_user.c: `postern user add|passwd|del|list`, the administrator's
 * tool for the passwd-file.
 *
 * Owns: the password it reads and the field hashed from it, both wiped
 * before it returns.  Trusts: nothing on the command line (names are
 * checked with username_valid, schemes parsed strictly); the file is
 * checked by userdb.c, which also does the locking and atomic writes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "lib/config.h"
#include "lib/limits.h"

enum user_action { ACT_ADD, ACT_PASSWD, ACT_DEL, ACT_LIST };

static const struct {
	const char		*name;
	enum user_action	 action;
} actions[] = {
	{ "add",	ACT_ADD },
	{ "passwd",	ACT_PASSWD },
	{ "del",	ACT_DEL },
	{ "delete",	ACT_DEL },
	{ "list",	ACT_LIST },
};

/* bcrypt reads only this many octets of a password. */
#define BCRYPT_MAX_PASS	72

static void
user_usage(FILE *fp)
{
	fputs(
"usage: postern user add [--db FILE] [--scheme SCHEME] NAME\n"
"       postern user passwd [--db FILE] [--scheme SCHEME] NAME\n"
"       postern user del [--db FILE] NAME\n"
"       postern user list [--db FILE]\n"
"SCHEME: yescrypt (default), sha512-crypt, bcrypt, plain (APOP only).\n"
"Without --db: the user_db of the configuration (-c FILE, $"
CLI_CONFIG_ENV ",\n"
"or " CLI_DEFAULT_CONFIG ").\n", fp);
}

static int
usage_error(const char *fmt, ...) ATTR_PRINTF(1, 2);

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("postern user: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("; see 'postern user help'\n", stderr);
	return CLI_EXIT_USAGE;
}

/* The user file from the configuration, copied into db (dbsize). */
static int
db_from_config(const char *config, char *db, size_t dbsize)
{
	struct config c;
	char err[512];
	int rc = 0;

	if (config_load(config, &c, err, sizeof(err)) == -1) {
		fprintf(stderr, "postern: %s; fix it or give the user file "
		    "with --db FILE\n", err);
		return -1;
	}
	if (c.user_db == NULL || strlen(c.user_db) >= dbsize) {
		fprintf(stderr, "postern: %s: no usable user_db; give the "
		    "user file with --db FILE\n", config);
		rc = -1;
	} else
		memcpy(db, c.user_db, strlen(c.user_db) + 1);
	config_free(&c);
	return rc;
}

/* Prints a failed edit or check (err from userdb.c, errno as it left
 * it) with what the administrator can do about it. */
static int
failed(enum user_action act, const char *db, const char *err)
{
	switch (errno) {
	case EEXIST:
		fprintf(stderr, "postern: %s; use 'postern user passwd'\n",
		    err);
		break;
	case ENOENT:
		if (act == ACT_LIST)
			fprintf(stderr, "postern: %s; 'postern user add' "
			    "creates it\n", err);
		else if (act == ACT_DEL)
			fprintf(stderr, "postern: %s; 'postern user list --db "
			    "%s' shows the users\n", err, db);
		else
			fprintf(stderr, "postern: %s; use 'postern user add'\n",
			    err);
		break;
	case EINVAL:
		fprintf(stderr, "postern: %s; fix the file first\n", err);
		break;
	case EBUSY:
		fprintf(stderr, "postern: %s; another 'postern user' may be "
		    "running, try again\n", err);
		break;
	default:
		fprintf(stderr, "postern: %s; check the path and its "
		    "permissions\n", err);
		break;
	}
	return CLI_EXIT_FAIL;
}

static int
list_one(const struct user_rec *u, void *arg)
{
	printf("%s%s\n", u->name, u->disabled ? " (disabled)" : "");
	return 0;
}

static int
user_list(const char *db)
{
	struct userdb *udb;
	char err[512];

	if (userdb_open(db, USERDB_PASSWD_FILE, &udb, err, sizeof(err)) == -1)
		return failed(ACT_LIST, db, err);
	(void)userdb_foreach(udb, list_one, NULL, err, sizeof(err));
	userdb_free(&udb);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "postern: cannot write the list: %s\n",
		    strerror(errno));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/*
 * Before asking for a password, says whether the change can work: add
 * wants a file without the user (or no file yet), passwd a file with it.
 * userdb.c checks again under its lock.
 */
static int
precheck(enum user_action act, const char *db, const char *name)
{
	struct userdb *udb;
	char err[512];
	bool present;

	if (userdb_open(db, USERDB_PASSWD_FILE, &udb, err,
	    sizeof(err)) == -1) {
		if (errno == ENOENT && act == ACT_ADD)
			return 0;
		if (errno == ENOENT)
			fprintf(stderr, "postern: no user '%s' in %s (the file "
			    "does not exist); use 'postern user add'\n", name,
			    db);
		else
			failed(act, db, err);
		return -1;
	}
	present = userdb_lookup(udb, name) != NULL;
	userdb_free(&udb);
	if (act == ACT_ADD && present) {
		fprintf(stderr, "postern: user '%s' already exists in %s; use "
		    "'postern user passwd'\n", name, db);
		return -1;
	}
	if (act == ACT_PASSWD && !present) {
		fprintf(stderr, "postern: no user '%s' in %s; use 'postern "
		    "user add'\n", name, db);
		return -1;
	}
	return 0;
}

/* add and passwd: read the password, hash it, write the field. */
static int
user_set(enum user_action act, const char *db, const char *name,
    enum pw_scheme scheme)
{
	char pass[MAX_PASSWORD_LEN + 1];
	char field[PW_HASH_OUT_SIZE];
	char err[512];
	struct user_rec u;
	size_t len;
	int rc, e;

	if (precheck(act, db, name) == -1)
		return CLI_EXIT_FAIL;
	if (scheme == PW_PLAIN)
		fprintf(stderr, "postern: warning: --scheme plain stores the "
		    "password as a plaintext-equivalent secret; use it only "
		    "for users who need APOP\n");
	if (cli_read_password(pass, sizeof(pass)) == -1)
		return CLI_EXIT_FAIL;
	len = strlen(pass);
	if (scheme == PW_BCRYPT && len > BCRYPT_MAX_PASS)
		fprintf(stderr, "postern: warning: bcrypt uses only the first "
		    "%d octets of the password\n", BCRYPT_MAX_PASS);
	rc = pw_hash(scheme, pass, field, sizeof(field));
	e = errno;
	explicit_bzero(pass, sizeof(pass));
	if (rc == -1) {
		explicit_bzero(field, sizeof(field));
		if (e == EINVAL && scheme == PW_PLAIN)
			fprintf(stderr, "postern: a plain secret cannot hold "
			    "':' or control characters; choose another "
			    "password or scheme\n");
		else if (e == ERANGE)
			fprintf(stderr, "postern: password longer than %d "
			    "octets; choose a shorter one\n",
			    PW_HASH_MAX_PASS);
		else
			fprintf(stderr, "postern: cannot hash the password: "
			    "%s\n", strerror(e));
		return CLI_EXIT_FAIL;
	}
	memset(&u, 0, sizeof(u));
	u.name = (char *)(uintptr_t)name;
	u.password = field;
	u.secret = (char *)(uintptr_t)pw_plain_secret(field);
	u.login_delay_s = -1;
	u.expire_days = USER_EXPIRE_DEFAULT;
	if (act == ACT_ADD)
		rc = userdb_edit_add(USERDB_PASSWD_FILE, db, &u, err,
		    sizeof(err));
	else
		rc = userdb_edit_set_credentials(USERDB_PASSWD_FILE, db, name,
		    &u, err, sizeof(err));
	e = errno;
	explicit_bzero(field, sizeof(field));
	if (rc == -1) {
		errno = e;
		return failed(act, db, err);
	}
	return CLI_EXIT_OK;
}

static int
user_del(const char *db, const char *name)
{
	char err[512];

	if (userdb_edit_delete(USERDB_PASSWD_FILE, db, name, err,
	    sizeof(err)) == -1)
		return failed(ACT_DEL, db, err);
	return CLI_EXIT_OK;
}

int
cmd_user(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db",		required_argument,	NULL, 'd' },
		{ "scheme",	required_argument,	NULL, 's' },
		{ "config",	required_argument,	NULL, 'c' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	const char *db = NULL, *config = NULL, *scheme_arg = NULL, *name;
	char db_conf[MAX_PATH_LEN];
	enum pw_scheme scheme = PW_YESCRYPT;
	enum user_action act = ACT_LIST;
	size_t i;
	int ch, nargs;
	char **args;

	if (argc < 2) {
		user_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		user_usage(stdout);
		return CLI_EXIT_OK;
	}
	for (i = 0; i < N_ELEMENTS(actions); i++)
		if (strcmp(argv[1], actions[i].name) == 0)
			break;
	if (i == N_ELEMENTS(actions))
		return usage_error("unknown action '%s'", argv[1]);
	act = actions[i].action;

	/* getopt sees the action as its argv[0]. */
	args = argv + 1;
	nargs = argc - 1;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(nargs, args, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			db = optarg;
			break;
		case 's':
			scheme_arg = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			user_usage(stdout);
			return CLI_EXIT_OK;
		case ':':
			return usage_error("option '%s' needs a value",
			    args[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
			    args[optind - 1]);
		}
	}
	if (scheme_arg != NULL) {
		if (act != ACT_ADD && act != ACT_PASSWD)
			return usage_error("--scheme applies to add and "
			    "passwd, not '%s'", args[0]);
		if (pw_scheme_parse(scheme_arg, &scheme) == -1)
			return usage_error("unknown scheme '%s' (yescrypt, "
			    "sha512-crypt, bcrypt or plain)", scheme_arg);
	}
	if (db != NULL && db[0] == '\0')
		return usage_error("--db needs a file name");
	if (act == ACT_LIST) {
		if (optind != nargs)
			return usage_error("'list' takes no name, got '%s'",
			    args[optind]);
		name = NULL;
	} else {
		if (optind == nargs)
			return usage_error("'%s' needs a user name", args[0]);
		if (nargs - optind > 1)
			return usage_error("one user name at a time; '%s' is "
			    "one too many", args[optind + 1]);
		name = args[optind];
		if (!username_valid(name)) {
			fprintf(stderr, "postern user: invalid user name; use "
			    "1-255 characters of A-Z a-z 0-9 . _ @ + -, not "
			    "starting with '.' or '-', no '..'\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (db == NULL) {
		if (db_from_config(cli_config_path(config), db_conf,
		    sizeof(db_conf)) == -1)
			return CLI_EXIT_FAIL;
		db = db_conf;
	}

	switch (act) {
	case ACT_LIST:
		return user_list(db);
	case ACT_ADD:
	case ACT_PASSWD:
		return user_set(act, db, name, scheme);
	case ACT_DEL:
		return user_del(db, name);
	}
	return CLI_EXIT_USAGE;
}
