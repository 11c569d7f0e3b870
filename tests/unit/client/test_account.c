/*
 * test_account.c: fetch.conf parsing (client/account.h): the keys and
 * their defaults, every refusal with its FILE:LINE, and the password
 * sources (the file's mode, a command run without a shell).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/account.h"
#include "client/client_limits.h"
#include "lib/fsutil.h"

#define MIN_ACCOUNT \
	"account home\n" \
	"host = pop.example.org\n" \
	"user = alice\n" \
	"password_file = /nonexistent/pw\n" \
	"maildir = /nonexistent/Mail\n"

static void
parse_ok(const char *text, struct fetch_conf *fc)
{
	char err[512];

	if (fetch_conf_parse("f.conf", text, strlen(text), fc, err,
	    sizeof(err)) != 0)
		fail_msg("refused: %s\n--- text ---\n%s", err, text);
}

/* Expects a refusal "f.conf:LINE: ...want...". */
static void
parse_err_n(const char *text, size_t len, unsigned int line,
    const char *want)
{
	struct fetch_conf fc;
	char err[512], prefix[64];

	if (fetch_conf_parse("f.conf", text, len, &fc, err,
	    sizeof(err)) == 0)
		fail_msg("accepted:\n%s", text);
	snprintf(prefix, sizeof(prefix), "f.conf:%u: ", line);
	if (strncmp(err, prefix, strlen(prefix)) != 0 ||
	    strstr(err, want) == NULL)
		fail_msg("error '%s', wanted '%s...%s'", err, prefix, want);
	assert_int_equal(fc.count, 0);
	assert_null(fc.accounts);
}

static void
parse_err(const char *text, unsigned int line, const char *want)
{
	parse_err_n(text, strlen(text), line, want);
}

static void
test_defaults(void **state)
{
	struct fetch_conf fc;
	const struct account *a;

	(void)state;
	parse_ok("# comment\n\n" MIN_ACCOUNT, &fc);
	assert_int_equal(fc.count, 1);
	a = fetch_conf_find(&fc, "home");
	assert_non_null(a);
	assert_int_equal(a->line, 3);
	assert_string_equal(a->host, "pop.example.org");
	assert_int_equal(a->port, 995);
	assert_int_equal(a->tls, ACCOUNT_TLS_IMPLICIT);
	assert_true(a->keep);
	assert_false(a->insecure);
	assert_null(a->ca_file);
	assert_null(a->password_command);
	assert_int_equal(a->timeout_ms, FETCH_DEFAULT_TIMEOUT_MS);
	assert_null(fetch_conf_find(&fc, "other"));
	fetch_conf_free(&fc);
}

static void
test_all_keys(void **state)
{
	struct fetch_conf fc;
	const struct account *a;

	(void)state;
	setenv("HOME", "/home/u", 1);
	parse_ok("account a\n"
	    "  host = 127.0.0.1  \n"
	    "port=1110\n"
	    "tls = none\n"
	    "insecure = yes\n"
	    "ca_file = ~/ca.pem\n"
	    "user = bob\n"
	    "password_command = pass show mail\n"
	    "keep = no\n"
	    "maildir = ~/Mail\n"
	    "timeout = 2m\n"
	    "account b.c_d-e\n"
	    "host = h\nuser = u\npassword_file = /p\nmaildir = /m\n"
	    "tls = starttls\nkeep_days = 30\nonly_new = no\n"
	    "max_size = 5M\n", &fc);
	assert_int_equal(fc.count, 2);
	a = &fc.accounts[0];
	assert_string_equal(a->host, "127.0.0.1");
	assert_int_equal(a->port, 1110);
	assert_int_equal(a->tls, ACCOUNT_TLS_NONE);
	assert_true(a->insecure);
	assert_string_equal(a->ca_file, "/home/u/ca.pem");
	assert_string_equal(a->password_command, "pass show mail");
	assert_false(a->keep);
	assert_string_equal(a->maildir, "/home/u/Mail");
	assert_int_equal(a->timeout_ms, 120000);
	assert_int_equal(a->keep_days, 0);
	assert_true(a->only_new);
	assert_int_equal(a->max_size, 0);
	a = &fc.accounts[1];
	assert_string_equal(a->name, "b.c_d-e");
	assert_int_equal(a->tls, ACCOUNT_TLS_STARTTLS);
	assert_true(a->keep);
	assert_int_equal(a->keep_days, 30);
	assert_false(a->only_new);
	assert_int_equal(a->max_size, 5 * 1024 * 1024);
	assert_int_equal(a->port, 110);
	fetch_conf_free(&fc);
}

static void
test_refusals(void **state)
{
	(void)state;
	parse_err("host = h\n", 1, "outside an account");
	parse_err("account a\nhost h\n", 2, "expected");
	parse_err(MIN_ACCOUNT "colour = blue\n", 6, "unknown key 'colour'");
	parse_err(MIN_ACCOUNT "host = again\n", 6, "host given twice");
	parse_err(MIN_ACCOUNT "port = 0\n", 6, "port");
	parse_err(MIN_ACCOUNT "port = 65536\n", 6, "port");
	parse_err(MIN_ACCOUNT "port = +1\n", 6, "port");
	parse_err(MIN_ACCOUNT "tls = ssl\n", 6, "tls wants");
	parse_err(MIN_ACCOUNT "keep = true\n", 6, "keep wants yes or no");
	parse_err(MIN_ACCOUNT "only_new = 1\n", 6, "only_new wants yes or no");
	parse_err(MIN_ACCOUNT "max_size = 0\n", 6, "max_size wants");
	parse_err(MIN_ACCOUNT "max_size = 2G\n", 6, "max_size wants");
	parse_err(MIN_ACCOUNT "keep_days = 0\n", 6, "keep_days wants");
	parse_err(MIN_ACCOUNT "keep_days = 36501\n", 6, "keep_days wants");
	parse_err(MIN_ACCOUNT "keep_days = 7d\n", 6, "keep_days wants");
	parse_err(MIN_ACCOUNT "keep = no\nkeep_days = 7\n", 1,
	    "keep_days needs keep = yes");
	parse_err(MIN_ACCOUNT "timeout = 0\n", 6, "timeout");
	parse_err(MIN_ACCOUNT "timeout = 2h\n", 6, "timeout");
	parse_err(MIN_ACCOUNT "ca_file = rel/ca.pem\n", 6, "absolute");
	parse_err(MIN_ACCOUNT "user =\n", 6, "user given twice");
	parse_err("account a\nuser =\n", 2, "user has no value");
	parse_err(MIN_ACCOUNT "account home\n", 6, "given twice");
	parse_err("account a/b\n", 1, "account name");
	parse_err("account .a\n", 1, "account name");
	parse_err("account\n", 1, "expected");
	/* The checks at the end of a section name its account line. */
	parse_err("\naccount a\nhost = h\nuser = u\npassword_file = /p\n",
	    2, "exactly one delivery target: maildir, mbox or mda");
	parse_err("account a\nhost = h\nuser = u\nmaildir = /m\nmda = x\n"
	    "password_file = /p\n", 1, "exactly one delivery target");
	parse_err("account a\nhost = h\nuser = u\nmaildir = /m\n"
	    "password_file = /p\npassword_command = x\n", 1,
	    "password_file and password_command exclude each other");
	parse_err(MIN_ACCOUNT "tls_cert = /c\n", 1,
	    "tls_cert and tls_key go together");
	parse_err(MIN_ACCOUNT "tls_pin = sha256:x\n", 6, "tls_pin wants");
	parse_err("account a\nuser = u\npassword_file = /p\nmaildir = /m\n"
	    "account b\n", 1, "account a has no host");
	parse_err(MIN_ACCOUNT "tls = none\n", 1, "insecure = yes");
	parse_err_n("account a\nhost = h\0x\n", 21, 2, "NUL");
}

static void
test_long_line(void **state)
{
	char *text;
	size_t n = FETCH_MAX_VALUE + 200;

	(void)state;
	text = malloc(n + 32);
	assert_non_null(text);
	strcpy(text, "account a\nhost = ");
	memset(text + strlen(text), 'h', n);
	text[17 + n] = '\0';
	parse_err(text, 2, "line longer");
	free(text);
}

static void
write_pw(const char *path, const char *data, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_password_sources(void **state)
{
	char dir[] = "/tmp/postern-acct.XXXXXX", path[PATH_MAX];
	char cmd[PATH_MAX + 16], pass[FETCH_MAX_PASSWORD + 1], err[512];
	struct account a;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pw", dir);
	memset(&a, 0, sizeof(a));
	a.password_file = path;

	write_pw(path, "s3cret word\r\nsecond line\n", 0600);
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), 0);
	assert_string_equal(pass, "s3cret word");

	write_pw(path, "s3cret\n", 0640);
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));

	write_pw(path, "\nafter an empty line\n", 0600);
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), -1);

	a.password_file = NULL;
	write_pw(path, "from the command\n", 0600);
	snprintf(cmd, sizeof(cmd), "cat  %s", path);
	a.password_command = cmd;
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), 0);
	assert_string_equal(pass, "from the command");

	/* No shell: ';' and '$' are plain characters of an argument. */
	snprintf(cmd, sizeof(cmd), "echo $HOME;x");
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), 0);
	assert_string_equal(pass, "$HOME;x");

	snprintf(cmd, sizeof(cmd), "false");
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "failed"));

	snprintf(cmd, sizeof(cmd), "/nonexistent/prog");
	assert_int_equal(account_password(&a, pass, sizeof(pass), err,
	    sizeof(err)), -1);

	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_password_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
