/*
 * cmd_user.c: `postern user add|passwd|set|del|list`, the
 * administrator's tool for the user database (a passwd-file or an
 * SQLite file).
 *
 * add and passwd write every credential form the site asks for
 * (password_forms): a crypt(3) hash, SCRAM-SHA-1 and SCRAM-SHA-256
 * verifiers, and a plaintext-equivalent secret only when asked.
 *
 * Owns: the password it reads and every credential derived from it, all
 * wiped before it returns.  Trusts: nothing on the command line (names
 * are checked with username_valid, schemes and numbers parsed
 * strictly); the store is checked by userdb.c, which also does the
 * locking and atomic writes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "lib/config.h"
#include "lib/limits.h"
#include "lib/strnum.h"

enum user_action { ACT_ADD, ACT_PASSWD, ACT_SET, ACT_DEL, ACT_LIST };

static const struct {
	const char		*name;
	enum user_action	 action;
} actions[] = {
	{ "add",	ACT_ADD },
	{ "passwd",	ACT_PASSWD },
	{ "set",	ACT_SET },
	{ "del",	ACT_DEL },
	{ "delete",	ACT_DEL },
	{ "list",	ACT_LIST },
};

/* bcrypt reads only this many octets of a password. */
#define BCRYPT_MAX_PASS	72

/* The forms a bare --db writes: what a default configuration says. */
#define DB_DEFAULT_FORMS	(PWFORM_CRYPT | PWFORM_SCRAM_SHA1 | \
				PWFORM_SCRAM_SHA256)

/* Where users go and what add/passwd write there. */
struct target {
	char			 path[MAX_PATH_LEN];
	enum userdb_type	 type;
	unsigned int		 forms;		/* PWFORM_* */
	uint32_t		 iterations;	/* SCRAM */
};

/* What `set` changes (USERDB_KEEP, -1: keep). */
struct opts {
	int64_t			 login_delay_s;
	int64_t			 expire_days;
	int			 disabled;
	int64_t			 quota_bytes;	/* USERDB_KEEP, 0: the site's */
	int64_t			 quota_messages;
};

static void
user_usage(FILE *fp)
{
	fputs(
"usage: postern user add [DB] [--scheme SCHEME] [--secret] [QUOTA] NAME\n"
"       postern user passwd [DB] [--scheme SCHEME] [--secret] NAME\n"
"       postern user set [DB] [--disable | --enable]\n"
"                [--login-delay SECONDS|default] [--expire DAYS|never|default]"
"\n                [QUOTA] NAME\n"
"       postern user del [DB] NAME\n"
"       postern user list [DB]\n"
"DB: -c FILE (a configuration), or --db FILE [--db-type passwd-file|sqlite].\n"
"QUOTA: --quota-bytes OCTETS|default (k, M, G allowed) and\n"
"--quota-messages COUNT|default; default (or 0) is the site's quota.\n"
"add and passwd write the forms of password_forms (crypt, scram-sha-1,\n"
"scram-sha-256, secret); with --db and no -c: crypt and both SCRAM forms.\n"
"--secret adds a plaintext-equivalent secret (APOP, CRAM-MD5).\n"
"SCHEME, of the crypt form: yescrypt (default), sha512-crypt, bcrypt,\n"
"plain (the password itself, also the secret).\n"
"Without --db: the user_db of the configuration (-c FILE, $"
CLI_CONFIG_ENV ",\n"
"or " CLI_DEFAULT_CONFIG ").\n", fp);
}

/* Every usage error of this command, with its hint and status. */
#define usage_error(...)						\
	cli_usage_error("user", "postern user help", CLI_EXIT_USAGE,		\
	    __VA_ARGS__)

/*
 * Fills what the configuration says into t: the store (unless db is
 * given), its type, the forms and the SCRAM iterations.
 */
static int
target_from_config(const char *config, bool with_store, struct target *t)
{
	struct config c;
	char err[512];
	int rc = 0;

	if (config_load(config, &c, err, sizeof(err)) == -1) {
		fprintf(stderr, "postern: %s; fix it or give the user database "
		    "with --db FILE\n", err);
		return -1;
	}
	t->forms = c.password_forms;
	t->iterations = c.scram_iterations;
	if (with_store) {
		if (c.user_db == NULL || strlen(c.user_db) >= sizeof(t->path)) {
			fprintf(stderr, "postern: %s: no usable user_db; give "
			    "the user database with --db FILE\n", config);
			rc = -1;
		} else {
			memcpy(t->path, c.user_db, strlen(c.user_db) + 1);
			t->type = c.user_db_type;
		}
	}
	config_free(&c);
	return rc;
}

/* Prints a failed edit or check (err from userdb.c, errno as it left
 * it) with what the administrator can do about it. */
static int
failed(enum user_action act, const struct target *t, const char *err)
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
		else if (act == ACT_DEL || act == ACT_SET)
			fprintf(stderr, "postern: %s; 'postern user list --db "
			    "%s%s' shows the users\n", err, t->path,
			    t->type == USERDB_SQLITE ? " --db-type sqlite" :
			    "");
		else
			fprintf(stderr, "postern: %s; use 'postern user add'\n",
			    err);
		break;
	case EINVAL:
		fprintf(stderr, "postern: %s; fix the %s first\n", err,
		    t->type == USERDB_SQLITE ? "database (or its --db-type)" :
		    "file (or its --db-type)");
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

/* The forms a record carries, comma-separated, into out. */
static void
forms_text(const struct user_rec *u, char *out, size_t size)
{
	const char *plain = pw_plain_secret(u->password);
	const char *parts[5];
	size_t n = 0, i, len = 0;

	if (u->password != NULL)
		parts[n++] = plain != NULL ? "plain" : "crypt";
	if (u->scram_sha1.set)
		parts[n++] = "scram-sha-1";
	if (u->scram_sha256.set)
		parts[n++] = "scram-sha-256";
	if (u->secret != NULL && plain == NULL)
		parts[n++] = "secret";
	out[0] = '\0';
	for (i = 0; i < n; i++) {
		(void)snprintf(out + len, size - len, "%s%s", i > 0 ? "," : "",
		    parts[i]);
		len = strlen(out);
	}
}

/* One line per user: name, forms, then what differs from the site's
 * defaults.  Never a credential. */
static int
list_one(const struct user_rec *u, void *arg)
{
	char forms[80];

	forms_text(u, forms, sizeof(forms));
	printf("%s %s", u->name, forms);
	if (u->disabled)
		printf(" disabled");
	if (u->quota_bytes > 0)
		printf(" quota_bytes=%llu", (unsigned long long)u->quota_bytes);
	if (u->quota_messages > 0)
		printf(" quota_messages=%llu",
		    (unsigned long long)u->quota_messages);
	if (u->login_delay_s >= 0)
		printf(" login_delay=%lld", (long long)u->login_delay_s);
	if (u->expire_days == USER_EXPIRE_NEVER)
		printf(" expire=never");
	else if (u->expire_days >= 0)
		printf(" expire=%lld", (long long)u->expire_days);
	putchar('\n');
	return 0;
}

static int
user_list(const struct target *t)
{
	struct userdb *udb;
	char err[512];
	int rc;

	if (userdb_open(t->path, t->type, &udb, err, sizeof(err)) == -1)
		return failed(ACT_LIST, t, err);
	rc = userdb_foreach(udb, list_one, NULL, err, sizeof(err));
	userdb_free(&udb);
	if (rc == -1)
		return failed(ACT_LIST, t, err);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "postern: cannot write the list: %s\n",
		    strerror(errno));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/*
 * Before asking for a password, says whether the change can work: add
 * wants a store without the user (or no store yet), passwd and set a
 * store with it.  userdb.c checks again under its lock.
 */
static int
precheck(enum user_action act, const struct target *t, const char *name)
{
	struct userdb *udb;
	struct stat st;
	char err[512];
	bool present;

	if (userdb_open(t->path, t->type, &udb, err, sizeof(err)) == -1) {
		if (act == ACT_ADD && (errno == ENOENT || (errno == EINVAL &&
		    t->type == USERDB_SQLITE && stat(t->path, &st) == 0 &&
		    S_ISREG(st.st_mode) && st.st_size == 0)))
			return 0;	/* add creates it */
		if (errno == ENOENT)
			fprintf(stderr, "postern: no user '%s' in %s (the file "
			    "does not exist); use 'postern user add'\n", name,
			    t->path);
		else
			failed(act, t, err);
		return -1;
	}
	present = userdb_lookup(udb, name) != NULL;
	userdb_free(&udb);
	if (act == ACT_ADD && present) {
		fprintf(stderr, "postern: user '%s' already exists in %s; use "
		    "'postern user passwd'\n", name, t->path);
		return -1;
	}
	if (act != ACT_ADD && !present) {
		fprintf(stderr, "postern: no user '%s' in %s; use 'postern "
		    "user add'\n", name, t->path);
		return -1;
	}
	return 0;
}

/* Fills the credentials of u from pass: the crypt hash into field, the
 * SCRAM verifiers, the secret.  0, or -1 after printing why. */
static int
make_credentials(const struct target *t, enum pw_scheme scheme,
    const char *pass, char *field, size_t fieldsize, struct user_rec *u)
{
	int e;

	if (t->forms & PWFORM_CRYPT) {
		if (scheme == PW_BCRYPT && strlen(pass) > BCRYPT_MAX_PASS)
			fprintf(stderr, "postern: warning: bcrypt uses only "
			    "the first %d octets of the password\n",
			    BCRYPT_MAX_PASS);
		if (pw_hash(scheme, pass, field, fieldsize) == -1) {
			e = errno;
			if (e == EINVAL && scheme == PW_PLAIN)
				fprintf(stderr, "postern: a plain password "
				    "cannot hold ':' or control characters; "
				    "choose another password, or --secret and "
				    "another scheme\n");
			else if (e == ERANGE)
				fprintf(stderr, "postern: password longer than "
				    "%d octets; choose a shorter one\n",
				    scheme == PW_PLAIN ? MAX_PASSWORD_LEN :
				    PW_HASH_MAX_PASS);
			else
				fprintf(stderr, "postern: cannot hash the "
				    "password: %s\n", strerror(e));
			return -1;
		}
		u->password = field;
	}
	if (((t->forms & PWFORM_SCRAM_SHA1) && scram_cred_make(0, pass,
	    t->iterations, &u->scram_sha1) == -1) ||
	    ((t->forms & PWFORM_SCRAM_SHA256) && scram_cred_make(1, pass,
	    t->iterations, &u->scram_sha256) == -1)) {
		if (errno == EINVAL)
			fprintf(stderr, "postern: SASLprep refuses this "
			    "password for SCRAM (it holds a control or "
			    "prohibited character); choose another, or drop "
			    "the scram forms from password_forms\n");
		else
			fprintf(stderr, "postern: cannot derive the SCRAM "
			    "keys: %s\n", strerror(errno));
		return -1;
	}
	/* A {PLAIN} password is the secret already; else the secret is
	 * the password as typed. */
	if ((t->forms & PWFORM_SECRET) || pw_plain_secret(u->password) != NULL)
		u->secret = (char *)(uintptr_t)pass;
	return 0;
}

/* add and passwd: read the password, derive every form, write them. */
static int
user_set_password(enum user_action act, const struct target *t,
    const char *name, enum pw_scheme scheme, const struct opts *o)
{
	char pass[MAX_PASSWORD_LEN + 1];
	char field[PW_HASH_OUT_SIZE];
	char err[512];
	struct user_rec u;
	int rc = CLI_EXIT_FAIL, e;

	if (precheck(act, t, name) == -1)
		return CLI_EXIT_FAIL;
	if ((t->forms & PWFORM_CRYPT) && scheme == PW_PLAIN)
		fprintf(stderr, "postern: warning: --scheme plain stores the "
		    "password as a plaintext-equivalent secret; use it only "
		    "for users who need APOP or CRAM-MD5\n");
	if (cli_read_password(pass, sizeof(pass)) == -1)
		return CLI_EXIT_FAIL;
	memset(&u, 0, sizeof(u));
	u.name = (char *)(uintptr_t)name;
	u.login_delay_s = -1;
	u.expire_days = USER_EXPIRE_DEFAULT;
	if (o->quota_bytes != USERDB_KEEP)
		u.quota_bytes = (uint64_t)o->quota_bytes;
	if (o->quota_messages != USERDB_KEEP)
		u.quota_messages = (uint64_t)o->quota_messages;
	if (make_credentials(t, scheme, pass, field, sizeof(field), &u) == -1)
		goto out;
	if (act == ACT_ADD)
		e = userdb_edit_add(t->type, t->path, &u, err, sizeof(err));
	else
		e = userdb_edit_set_credentials(t->type, t->path, name, &u,
		    err, sizeof(err));
	if (e == -1) {
		e = errno;
		explicit_bzero(pass, sizeof(pass));
		explicit_bzero(field, sizeof(field));
		explicit_bzero(&u, sizeof(u));
		errno = e;
		return failed(act, t, err);
	}
	rc = CLI_EXIT_OK;
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(field, sizeof(field));
	explicit_bzero(&u, sizeof(u));
	return rc;
}

static int
user_set_options(const struct target *t, const char *name,
    const struct opts *o)
{
	char err[512];

	if ((o->login_delay_s != USERDB_KEEP || o->expire_days != USERDB_KEEP ||
	    o->disabled != -1) && userdb_edit_set_options(t->type, t->path,
	    name, o->login_delay_s, o->expire_days, o->disabled, err,
	    sizeof(err)) == -1)
		return failed(ACT_SET, t, err);
	if ((o->quota_bytes != USERDB_KEEP ||
	    o->quota_messages != USERDB_KEEP) && userdb_edit_set_quota(t->type,
	    t->path, name, o->quota_bytes, o->quota_messages, err,
	    sizeof(err)) == -1)
		return failed(ACT_SET, t, err);
	return CLI_EXIT_OK;
}

static int
user_del(const struct target *t, const char *name)
{
	char err[512];

	if (userdb_edit_delete(t->type, t->path, name, err,
	    sizeof(err)) == -1)
		return failed(ACT_DEL, t, err);
	return CLI_EXIT_OK;
}

/* --login-delay SECONDS|default. */
static int
parse_delay(const char *s, int64_t *v_r)
{
	uint64_t v;

	if (strcmp(s, "default") == 0) {
		*v_r = -1;
		return 0;
	}
	if (parse_u64(s, USER_MAX_LOGIN_DELAY, &v) != PARSE_OK)
		return -1;
	*v_r = (int64_t)v;
	return 0;
}

/* --quota-bytes OCTETS|default, --quota-messages COUNT|default. */
static int
parse_quota(const char *s, bool bytes, int64_t *v_r)
{
	uint64_t v;

	if (strcmp(s, "default") == 0) {
		*v_r = 0;
		return 0;
	}
	if ((bytes ? parse_size(s, HARD_QUOTA_BYTES, &v) :
	    parse_u64(s, HARD_QUOTA_MESSAGES, &v)) != PARSE_OK)
		return -1;
	*v_r = (int64_t)v;
	return 0;
}

/* --expire DAYS|never|default. */
static int
parse_expire(const char *s, int64_t *v_r)
{
	uint64_t v;

	if (strcmp(s, "default") == 0) {
		*v_r = USER_EXPIRE_DEFAULT;
		return 0;
	}
	if (strcmp(s, "never") == 0) {
		*v_r = USER_EXPIRE_NEVER;
		return 0;
	}
	if (parse_u64(s, USER_MAX_EXPIRE_DAYS, &v) != PARSE_OK)
		return -1;
	*v_r = (int64_t)v;
	return 0;
}

int
cmd_user(int argc, char **argv)
{
	enum {
		OPT_DB = 256, OPT_DB_TYPE, OPT_SCHEME, OPT_SECRET,
		OPT_DISABLE, OPT_ENABLE, OPT_LOGIN_DELAY, OPT_EXPIRE,
		OPT_QUOTA_BYTES, OPT_QUOTA_MESSAGES,
	};
	static const struct option longopts[] = {
		{ "db",		 required_argument,	NULL, OPT_DB },
		{ "db-type",	 required_argument,	NULL, OPT_DB_TYPE },
		{ "scheme",	 required_argument,	NULL, OPT_SCHEME },
		{ "secret",	 no_argument,		NULL, OPT_SECRET },
		{ "disable",	 no_argument,		NULL, OPT_DISABLE },
		{ "enable",	 no_argument,		NULL, OPT_ENABLE },
		{ "login-delay", required_argument,	NULL, OPT_LOGIN_DELAY },
		{ "expire",	 required_argument,	NULL, OPT_EXPIRE },
		{ "quota-bytes", required_argument,	NULL, OPT_QUOTA_BYTES },
		{ "quota-messages", required_argument,	NULL,
		    OPT_QUOTA_MESSAGES },
		{ "config",	 required_argument,	NULL, 'c' },
		{ "help",	 no_argument,		NULL, 'h' },
		{ NULL,		 0,			NULL, 0 },
	};
	const char *db = NULL, *db_type = NULL, *config = NULL;
	const char *scheme_arg = NULL, *name;
	enum pw_scheme scheme = PW_YESCRYPT;
	enum user_action act = ACT_LIST;
	struct target t;
	struct opts o = { USERDB_KEEP, USERDB_KEEP, -1, USERDB_KEEP,
	    USERDB_KEEP };
	bool secret = false, any_opt = false, any_quota = false;
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
		case OPT_DB:
			db = optarg;
			break;
		case OPT_DB_TYPE:
			db_type = optarg;
			break;
		case OPT_SCHEME:
			scheme_arg = optarg;
			break;
		case OPT_SECRET:
			secret = true;
			break;
		case OPT_DISABLE:
		case OPT_ENABLE:
			if (o.disabled != -1)
				return usage_error("give --disable or --enable "
				    "once");
			o.disabled = ch == OPT_DISABLE;
			any_opt = true;
			break;
		case OPT_LOGIN_DELAY:
			if (parse_delay(optarg, &o.login_delay_s) == -1)
				return usage_error("--login-delay wants "
				    "seconds from 0 to %d, or default",
				    USER_MAX_LOGIN_DELAY);
			any_opt = true;
			break;
		case OPT_EXPIRE:
			if (parse_expire(optarg, &o.expire_days) == -1)
				return usage_error("--expire wants days from 0 "
				    "to %d, never, or default",
				    USER_MAX_EXPIRE_DAYS);
			any_opt = true;
			break;
		case OPT_QUOTA_BYTES:
			if (parse_quota(optarg, true, &o.quota_bytes) == -1)
				return usage_error("--quota-bytes wants octets "
				    "(k, M or G allowed) up to %llu, or "
				    "default", (unsigned long long)
				    HARD_QUOTA_BYTES);
			any_quota = true;
			break;
		case OPT_QUOTA_MESSAGES:
			if (parse_quota(optarg, false, &o.quota_messages) == -1)
				return usage_error("--quota-messages wants a "
				    "count from 0 to %llu, or default",
				    (unsigned long long)HARD_QUOTA_MESSAGES);
			any_quota = true;
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
	if ((scheme_arg != NULL || secret) && act != ACT_ADD &&
	    act != ACT_PASSWD)
		return usage_error("%s applies to add and passwd, not '%s'",
		    scheme_arg != NULL ? "--scheme" : "--secret", args[0]);
	if (scheme_arg != NULL && pw_scheme_parse(scheme_arg, &scheme) == -1)
		return usage_error("unknown scheme '%s' (yescrypt, "
		    "sha512-crypt, bcrypt or plain)", scheme_arg);
	if (any_opt && act != ACT_SET)
		return usage_error("--disable, --enable, --login-delay and "
		    "--expire apply to set, not '%s'", args[0]);
	if (any_quota && act != ACT_SET && act != ACT_ADD)
		return usage_error("--quota-bytes and --quota-messages apply "
		    "to add and set, not '%s'", args[0]);
	if (act == ACT_SET && !any_opt && !any_quota)
		return usage_error("'set' needs --disable, --enable, "
		    "--login-delay, --expire, --quota-bytes or "
		    "--quota-messages");
	if (db != NULL && db[0] == '\0')
		return usage_error("--db needs a file name");
	if (db_type != NULL && db == NULL)
		return usage_error("--db-type goes with --db; without --db "
		    "the configuration's user_db_type applies");
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

	/*
	 * The store: --db (a passwd-file unless --db-type says sqlite), else
	 * the configuration's user_db and user_db_type.  The forms: the
	 * configuration's whenever one is read (no --db, or -c given), else
	 * crypt and both SCRAM forms.
	 */
	memset(&t, 0, sizeof(t));
	t.type = USERDB_PASSWD_FILE;
	t.forms = DB_DEFAULT_FORMS;
	t.iterations = DEFAULT_SCRAM_ITERATIONS;
	if (db_type != NULL) {
		if (strcmp(db_type, "sqlite") == 0)
			t.type = USERDB_SQLITE;
		else if (strcmp(db_type, "passwd-file") != 0)
			return usage_error("unknown --db-type '%s' "
			    "(passwd-file or sqlite)", db_type);
	}
	if (db != NULL) {
		if (strlen(db) >= sizeof(t.path))
			return usage_error("--db: path too long");
		memcpy(t.path, db, strlen(db) + 1);
	}
	if ((db == NULL || config != NULL) &&
	    target_from_config(cli_config_path(config), db == NULL, &t) == -1)
		return CLI_EXIT_FAIL;
	/* --scheme asks for a password hash; --secret for the secret. */
	if (scheme_arg != NULL)
		t.forms |= PWFORM_CRYPT;
	if (secret)
		t.forms |= PWFORM_SECRET;

	switch (act) {
	case ACT_LIST:
		return user_list(&t);
	case ACT_ADD:
	case ACT_PASSWD:
		return user_set_password(act, &t, name, scheme, &o);
	case ACT_SET:
		if (precheck(act, &t, name) == -1)
			return CLI_EXIT_FAIL;
		return user_set_options(&t, name, &o);
	case ACT_DEL:
		return user_del(&t, name);
	}
	return CLI_EXIT_USAGE;
}
