/*
 * test_config.c: postern.conf parsing, listeners, and mailbox paths.
 *
 * Each test writes its config to a fresh temporary file (mkstemp) and
 * removes it afterwards; nothing outside the temporary directory is read
 * or written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/config.h"
#include "lib/fsutil.h"

static char tmpdir[PATH_MAX];

static const char *
tmp_base(void)
{
	const char *t = getenv("TMPDIR");

	return t != NULL && t[0] == '/' ? t : "/tmp";
}

/* Writes len bytes of text to a new temporary file; its path into path. */
static void
write_conf_n(const char *text, size_t len, char *path, size_t size)
{
	int fd;

	assert_true(snprintf(path, size, "%s/postern-conf.XXXXXX",
	    tmp_base()) < (int)size);
	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write_full(fd, text, len), 0);
	assert_int_equal(close(fd), 0);
}

static void
write_conf(const char *text, char *path, size_t size)
{
	write_conf_n(text, strlen(text), path, size);
}

/* Loads text; the test fails with the loader's message if it refuses. */
static void
load_ok(const char *text, struct config *c)
{
	char path[PATH_MAX], err[512];
	int rc;

	write_conf(text, path, sizeof(path));
	rc = config_load(path, c, err, sizeof(err));
	if (rc != 0)
		fail_msg("config refused: %s\n--- config ---\n%s", err, text);
	assert_string_equal(c->path, path);
	unlink(path);
}

/*
 * Loads text, expects a refusal at line `line` whose message contains
 * want; checks that the message is "PATH:LINE: ..." and that c is left
 * freed.
 */
static void
load_err_n(const char *text, size_t len, unsigned int line,
    const char *want)
{
	struct config c;
	char path[PATH_MAX], err[512], prefix[PATH_MAX + 32];

	write_conf_n(text, len, path, sizeof(path));
	memset(&c, 0x5a, sizeof(c));
	if (config_load(path, &c, err, sizeof(err)) != -1)
		fail_msg("config accepted, expected '%s'\n--- config ---\n%s",
		    want, text);
	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", path);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("message '%s' does not start with '%s'", err, prefix);
	if (strstr(err, want) == NULL)
		fail_msg("message '%s' does not contain '%s'", err, want);
	assert_null(c.path);
	assert_null(c.mail_root);
	assert_null(c.greeting);
	config_free(&c);
	unlink(path);
}

static void
load_err(const char *text, unsigned int line, const char *want)
{
	load_err_n(text, strlen(text), line, want);
}

static void
check_v4(const struct listener_conf *l, const char *addr, unsigned int port)
{
	const struct sockaddr_in *s4 =
	    (const struct sockaddr_in *)(const void *)&l->addr;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(s4->sin_port), port);
	assert_non_null(inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
}

static void
check_v6(const struct listener_conf *l, const char *addr, unsigned int port)
{
	const struct sockaddr_in6 *s6 =
	    (const struct sockaddr_in6 *)(const void *)&l->addr;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(l->addrlen, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(s6->sin6_port), port);
	assert_non_null(inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
}

static bool
net_matches(const struct config *c, const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	return cidr_match(c->plaintext_networks, c->n_plaintext_networks,
	    (const struct sockaddr *)&ss);
}

/* The defaults of TLS.md, spelt out rather than taken from config.c. */
#define SPEC_TLS_CIPHERS						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define SPEC_TLS_CIPHERSUITES						\
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"		\
	"TLS_CHACHA20_POLY1305_SHA256"

/* ---- defaults and file syntax ------------------------------------- */

static void
check_tls_defaults(const struct config *c)
{
	assert_null(c->tls_cert);
	assert_null(c->tls_key);
	assert_int_equal(c->n_tls_sni, 0);
	assert_int_equal(c->tls_min_version, 12);
	assert_string_equal(c->tls_ciphers, SPEC_TLS_CIPHERS);
	assert_string_equal(c->tls_ciphersuites, SPEC_TLS_CIPHERSUITES);
	assert_false(c->tls_client_cert);
	assert_null(c->tls_client_ca);
	assert_int_equal(c->tls_handshake_timeout_ms, 30000);
	assert_int_equal(c->tls_handshake_timeout_ms,
	    DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS);
}

static void
check_defaults(const struct config *c)
{
	assert_int_equal(c->n_listeners, 2);
	check_v4(&c->listeners[0], "0.0.0.0", 110);
	assert_string_equal(c->listeners[0].text, "*:110");
	assert_int_equal(c->listeners[0].tls, LISTEN_STARTTLS);
	check_v6(&c->listeners[1], "::", 110);
	assert_string_equal(c->listeners[1].text, "[::]:110");
	assert_int_equal(c->listeners[1].tls, LISTEN_STARTTLS);
	check_tls_defaults(c);
	assert_string_equal(c->mail_root, "/var/mail/postern");
	assert_string_equal(c->mailbox_path, "%u");
	assert_string_equal(c->user_db, "/etc/postern/users");
	assert_string_equal(c->mail_user, "postern");
	assert_string_equal(c->auth_user, "postern");
	assert_int_equal(c->workers, 0);
	assert_int_equal(c->auth_workers, DEFAULT_AUTH_WORKERS);
	assert_int_equal(c->idle_timeout_ms, 600000);
	assert_int_equal(c->max_connections, 10000);
	assert_int_equal(c->max_connections_per_ip, 50);
	assert_int_equal(c->max_line_length, 512);
	assert_int_equal(c->max_pipelined_commands, 64);
	assert_true(c->session_memory_limit == 1024ull * 1024 * 1024);
	assert_true(c->index_cache_size == 64ull * 1024 * 1024);
	assert_true(c->deliver_max_size == 64ull * 1024 * 1024);
	assert_int_equal(c->max_bad_commands, 10);
	assert_int_equal(c->max_auth_failures, 3);
	assert_int_equal(c->auth_fail_delay_ms, 2000);
	assert_int_equal(c->auth_fail_delay_max_ms, 15000);
	assert_false(c->lock_session);
	assert_true(c->expire_days == -1);
	assert_int_equal(c->login_delay_s, 0);
	assert_int_equal(c->plaintext, PLAINTEXT_LOOPBACK_ONLY);
	assert_int_equal(c->n_plaintext_networks, 2);
	assert_true(net_matches(c, "127.0.0.1"));
	assert_true(net_matches(c, "127.255.0.9"));
	assert_true(net_matches(c, "::1"));
	assert_false(net_matches(c, "192.0.2.1"));
	assert_false(net_matches(c, "::2"));
	assert_false(c->apop);
	assert_false(c->log_syslog);
	assert_false(c->log_debug);
	assert_non_null(c->hostname);
	assert_true(c->hostname[0] != '\0');
	assert_null(strpbrk(c->hostname, " <>@"));
	assert_string_equal(c->greeting, "Postern ready.");
}

static void
test_defaults(void **state)
{
	struct config c;

	(void)state;
	config_defaults(&c);
	check_defaults(&c);
	assert_string_equal(c.path, "");
	config_free(&c);
	assert_null(c.mail_root);
	config_free(&c);	/* twice is harmless */
}

static void
test_empty_file(void **state)
{
	struct config c;

	(void)state;
	load_ok("", &c);
	check_defaults(&c);
	config_free(&c);
	load_ok("# only a comment\n\n   \n\t# indented comment\n", &c);
	check_defaults(&c);
	config_free(&c);
}

static void
test_syntax(void **state)
{
	struct config c;

	(void)state;
	load_ok("workers=4\n"
	    "auth_workers =3\n"
	    "max_bad_commands= 7\n"
	    "  \tmax_auth_failures\t=\t5  \t\n"
	    "log_debug = yes\r\n"
	    "greeting = Hello # not a comment\n"
	    "hostname = mail.example.org", &c);	/* no final newline */
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.auth_workers, 3);
	assert_int_equal(c.max_bad_commands, 7);
	assert_int_equal(c.max_auth_failures, 5);
	assert_true(c.log_debug);
	assert_string_equal(c.greeting, "Hello # not a comment");
	assert_string_equal(c.hostname, "mail.example.org");
	config_free(&c);

	/* Quotes keep blanks; inner quotes are kept as they are. */
	load_ok("greeting = \"  two spaces  \"\n", &c);
	assert_string_equal(c.greeting, "  two spaces  ");
	config_free(&c);
	load_ok("greeting = \"say \"hi\"\"\n", &c);
	assert_string_equal(c.greeting, "say \"hi\"");
	config_free(&c);
	load_ok("greeting = \"\"\n", &c);
	assert_string_equal(c.greeting, "");
	config_free(&c);
	load_ok("greeting =\n", &c);
	assert_string_equal(c.greeting, "");
	config_free(&c);
	load_ok("mail_root = \"/srv/mail\"\n", &c);
	assert_string_equal(c.mail_root, "/srv/mail");
	config_free(&c);
}

static void
test_syntax_errors(void **state)
{
	static const char with_nul[] = "workers = 1\ngreeting = a\0b\n";
	char big[CONFIG_MAX_LINE + 32];
	char *huge;
	size_t i;

	(void)state;
	load_err("listen\n", 1, "missing '=' after 'listen'");
	load_err("# c\n\nworkers 4\n", 3, "missing '='");
	load_err("= 4\n", 1, "missing key name");
	load_err("\n\nidle_timout = 10m\n", 3,
	    "unknown key 'idle_timout' (did you mean 'idle_timeout'?)");
	load_err("frobnicate = 1\n", 1, "unknown key 'frobnicate'");
	load_err("Workers = 1\n", 1, "did you mean 'workers'");
	load_err("workers = 1\n\nworkers = 2\n", 3,
	    "workers: already set on line 1");
	load_err("greeting = \"open\n", 1, "no closing '\"'");
	load_err("greeting = \"\n", 1, "no closing '\"'");
	load_err("mail_root =\n", 1, "mail_root: the value is empty");
	load_err("mail_root = \"\"\n", 1, "mail_root: the value is empty");
	load_err("workers = \t \n", 1, "workers: the value is empty");
	load_err("greeting = a\x01" "b\n", 1, "control character");
	load_err("greeting = a\x7f" "b\n", 1, "control character");
	load_err_n(with_nul, sizeof(with_nul) - 1, 2, "NUL byte");

	memset(big, 'x', sizeof(big));
	memcpy(big, "# ", 2);
	big[CONFIG_MAX_LINE + 1] = '\n';
	big[CONFIG_MAX_LINE + 2] = '\0';
	load_err(big, 1, "longer than 4096 bytes");
	big[CONFIG_MAX_LINE] = '\n';	/* exactly the limit: fine */
	big[CONFIG_MAX_LINE + 1] = '\0';
	{
		struct config c;

		load_ok(big, &c);
		config_free(&c);
	}

	huge = malloc(CONFIG_MAX_BYTES + 2);
	assert_non_null(huge);
	for (i = 0; i < CONFIG_MAX_BYTES + 1; i++)
		huge[i] = i % 64 == 63 ? '\n' : '#';
	huge[CONFIG_MAX_BYTES + 1] = '\0';
	load_err_n(huge, CONFIG_MAX_BYTES + 1, 0, "larger than");
	free(huge);
}

static void
test_unreadable(void **state)
{
	struct config c;
	char err[256], path[PATH_MAX];

	(void)state;
	snprintf(path, sizeof(path), "%s/no-such-dir-%ld/postern.conf",
	    tmp_base(), (long)getpid());
	assert_int_equal(config_load(path, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot read"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	assert_null(c.path);

	assert_int_equal(config_load(tmpdir, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));

	/* A tiny error buffer is filled but never overrun. */
	assert_int_equal(config_load(path, &c, err, 8), -1);
	assert_int_equal(strlen(err), 7);
	assert_int_equal(config_load(path, &c, NULL, 0), -1);
}

/* ---- every key ---------------------------------------------------- */

static void
test_all_keys(void **state)
{
	struct config c;

	(void)state;
	load_ok("listen = 127.0.0.1:1110\n"
	    "listen = [::1]:1110\n"
	    "mail_root = /srv/mail/\n"
	    "mailbox_path = %d/%n\n"
	    "user_db = /etc/postern/virtual\n"
	    "mail_user = vmail\n"
	    "auth_user = postern-auth\n"
	    "workers = 8\n"
	    "auth_workers = 4\n"
	    "idle_timeout = 30m\n"
	    "max_connections = 500\n"
	    "max_connections_per_ip = 20\n"
	    "max_line_length = 1024\n"
	    "max_pipelined_commands = 16\n"
	    "session_memory_limit = 512M\n"
	    "index_cache_size = 0\n"
	    "deliver_max_size = 10k\n"
	    "max_bad_commands = 5\n"
	    "max_auth_failures = 2\n"
	    "auth_fail_delay = 500ms\n"
	    "auth_fail_delay_max = 1m\n"
	    "lock_session = on\n"
	    "expire = 30\n"
	    "login_delay = 15m\n"
	    "disable_plaintext_auth = no\n"
	    "plaintext_networks = 10.0.0.0/8 2001:db8::/32\n"
	    "apop = TRUE\n"
	    "log = syslog\n"
	    "log_debug = true\n"
	    "hostname = pop.example.org\n"
	    "greeting = Welcome to Example POP.\n", &c);
	assert_int_equal(c.n_listeners, 2);
	check_v4(&c.listeners[0], "127.0.0.1", 1110);
	check_v6(&c.listeners[1], "::1", 1110);
	assert_string_equal(c.mail_root, "/srv/mail");
	assert_string_equal(c.mailbox_path, "%d/%n");
	assert_string_equal(c.user_db, "/etc/postern/virtual");
	assert_string_equal(c.mail_user, "vmail");
	assert_string_equal(c.auth_user, "postern-auth");
	assert_int_equal(c.workers, 8);
	assert_int_equal(c.auth_workers, 4);
	assert_int_equal(c.idle_timeout_ms, 30 * 60 * 1000);
	assert_int_equal(c.max_connections, 500);
	assert_int_equal(c.max_connections_per_ip, 20);
	assert_int_equal(c.max_line_length, 1024);
	assert_int_equal(c.max_pipelined_commands, 16);
	assert_true(c.session_memory_limit == 512ull * 1024 * 1024);
	assert_true(c.index_cache_size == 0);
	assert_true(c.deliver_max_size == 10240);
	assert_int_equal(c.max_bad_commands, 5);
	assert_int_equal(c.max_auth_failures, 2);
	assert_int_equal(c.auth_fail_delay_ms, 500);
	assert_int_equal(c.auth_fail_delay_max_ms, 60000);
	assert_true(c.lock_session);
	assert_true(c.expire_days == 30);
	assert_int_equal(c.login_delay_s, 900);
	assert_int_equal(c.plaintext, PLAINTEXT_ALLOWED);
	assert_int_equal(c.n_plaintext_networks, 2);
	assert_true(net_matches(&c, "10.1.2.3"));
	assert_true(net_matches(&c, "2001:db8::7"));
	assert_false(net_matches(&c, "127.0.0.1"));
	assert_true(c.apop);
	assert_true(c.log_syslog);
	assert_true(c.log_debug);
	assert_string_equal(c.hostname, "pop.example.org");
	assert_string_equal(c.greeting, "Welcome to Example POP.");
	config_free(&c);
}

static void
test_numbers(void **state)
{
	struct config c;

	(void)state;
	load_ok("workers = 0\nauth_workers = 1\nmax_line_length = 255\n"
	    "max_connections = 1\nmax_connections_per_ip = 1\n"
	    "max_bad_commands = 1\nmax_auth_failures = 1\n", &c);
	assert_int_equal(c.workers, 0);
	assert_int_equal(c.auth_workers, 1);
	assert_int_equal(c.max_line_length, 255);
	assert_int_equal(c.max_connections, 1);
	config_free(&c);
	load_ok("workers = 256\nauth_workers = 64\nmax_line_length = 8192\n"
	    "max_connections = 2147483647\n", &c);
	assert_int_equal(c.workers, MAX_WORKERS);
	assert_int_equal(c.auth_workers, 64);
	assert_int_equal(c.max_line_length, HARD_MAX_LINE_LENGTH);
	assert_int_equal(c.max_connections, 2147483647);
	config_free(&c);

	load_err("workers = 257\n", 1, "workers: '257' is out of range "
	    "(use 0 to 256)");
	load_err("workers = -1\n", 1, "workers: '-1' is not a number");
	load_err("workers = +1\n", 1, "not a number");
	load_err("workers = 1x\n", 1, "not a number");
	load_err("workers = 4294967297\n", 1, "out of range");
	load_err("auth_workers = 0\n", 1, "out of range (use 1 to 64)");
	load_err("auth_workers = 65\n", 1, "out of range (use 1 to 64)");
	load_err("max_line_length = 254\n", 1, "(use 255 to 8192)");
	load_err("max_line_length = 8193\n", 1, "(use 255 to 8192)");
	load_err("max_connections = 0\n", 1, "max_connections: '0' is out");
	load_err("max_connections = 2147483648\n", 1, "out of range");
	load_err("max_connections_per_ip = 0\n", 1, "out of range");
	load_err("max_bad_commands = 0\n", 1, "out of range");
	load_err("max_auth_failures = 0\n", 1, "out of range");
	load_err("max_auth_failures = ten\n", 1, "not a number");

	load_ok("max_pipelined_commands = 1\n", &c);
	assert_int_equal(c.max_pipelined_commands, 1);
	config_free(&c);
	load_ok("max_pipelined_commands = 10000\n", &c);
	assert_int_equal(c.max_pipelined_commands, HARD_MAX_PIPELINED_COMMANDS);
	config_free(&c);
	load_err("max_pipelined_commands = 0\n", 1, "max_pipelined_commands: "
	    "'0' is out of range (use 1 to 10000)");
	load_err("max_pipelined_commands = 10001\n", 1,
	    "out of range (use 1 to 10000)");
	load_err("max_pipelined_commands = 4294967360\n", 1, "out of range");
	load_err("max_pipelined_commands = 64k\n", 1, "not a number");
}

/* session_memory_limit: a size, 1M to 4G. */
static void
test_sizes(void **state)
{
	static const struct {
		const char	*text;
		uint64_t	 v;
	} good[] = {
		{ "1M", 1024 * 1024 }, { "1024k", 1024 * 1024 },
		{ "1024K", 1024 * 1024 }, { "1048576", 1024 * 1024 },
		{ "256M", 256ull * 1024 * 1024 },
		{ "1G", 1024ull * 1024 * 1024 },
		{ "4G", 4096ull * 1024 * 1024 },
		{ "4096M", 4096ull * 1024 * 1024 },
		{ "4294967296", 4096ull * 1024 * 1024 },
		{ "1048577", 1024 * 1024 + 1 },
	};
	struct config c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "session_memory_limit = %s\n",
		    good[i].text);
		load_ok(text, &c);
		assert_true(c.session_memory_limit == good[i].v);
		config_free(&c);
	}
	load_err("session_memory_limit = 1023k\n", 1, "session_memory_limit: "
	    "'1023k' is out of range (use 1M to 4G)");
	load_err("session_memory_limit = 1048575\n", 1,
	    "out of range (use 1M to 4G)");
	load_err("session_memory_limit = 0\n", 1, "out of range");
	load_err("session_memory_limit = 4294967297\n", 1, "out of range");
	load_err("session_memory_limit = 5G\n", 1, "out of range");
	load_err("session_memory_limit = 4097M\n", 1, "out of range");
	load_err("session_memory_limit = 99999999999999999999\n", 1,
	    "out of range");
	load_err("session_memory_limit = 99999999999G\n", 1, "out of range");
	load_err("session_memory_limit = 1T\n", 1, "session_memory_limit: "
	    "'1T' is not a size (use digits with k, M or G");
	load_err("session_memory_limit = 1 G\n", 1, "not a size");
	load_err("session_memory_limit = 1GB\n", 1, "not a size");
	load_err("session_memory_limit = 1m\n", 1, "not a size");
	load_err("session_memory_limit = -1G\n", 1, "not a size");
	load_err("session_memory_limit = G\n", 1, "not a size");
	load_err("session_memory_limit = 1G\nsession_memory_limit = 2G\n",
	    2, "already set on line 1");
}

static void
test_durations(void **state)
{
	static const struct {
		const char	*text;
		uint64_t	 ms;
	} good[] = {
		{ "600", 600000 }, { "10m", 600000 }, { "1h", 3600000 },
		{ "1s", 1000 }, { "1000ms", 1000 }, { "24h", 86400000 },
		{ "1d", 86400000 },
	};
	struct config c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "idle_timeout = %s\n",
		    good[i].text);
		load_ok(text, &c);
		assert_int_equal(c.idle_timeout_ms, good[i].ms);
		config_free(&c);
	}
	load_err("# x\n# y\n# z\n# w\n# v\n# u\n# t\n# s\n# r\n# q\n# p\n"
	    "idle_timeout = 5x\n", 12, "idle_timeout: '5x' is not a "
	    "duration (use e.g. 600, 10m, 1h)");
	load_err("idle_timeout = 0\n", 1, "'0' is out of range (use 1s to "
	    "1d)");
	load_err("idle_timeout = 999ms\n", 1, "out of range");
	load_err("idle_timeout = 25h\n", 1, "out of range");
	load_err("idle_timeout = 10 m\n", 1, "not a duration");
	load_err("idle_timeout = m\n", 1, "not a duration");
	load_err("idle_timeout = 99999999999999999999\n", 1, "out of range");

	load_ok("auth_fail_delay = 0\nauth_fail_delay_max = 300s\n", &c);
	assert_int_equal(c.auth_fail_delay_ms, 0);
	assert_int_equal(c.auth_fail_delay_max_ms, 300000);
	config_free(&c);
	load_ok("auth_fail_delay = 5s\nauth_fail_delay_max = 5s\n", &c);
	assert_int_equal(c.auth_fail_delay_ms, 5000);
	config_free(&c);
	load_err("auth_fail_delay_max = 301s\n", 1, "(use 0 to 5m)");
	load_err("auth_fail_delay = 6m\n", 1, "out of range");
	load_err("auth_fail_delay = 20s\n", 1,
	    "auth_fail_delay (20s) is longer than auth_fail_delay_max (15s)");
	load_err("auth_fail_delay_max = 1s\n\n", 1,
	    "auth_fail_delay (2s) is longer than auth_fail_delay_max (1s)");
	load_err("auth_fail_delay_max = 1s\n\nauth_fail_delay = 3s\n", 3,
	    "is longer than");

	load_ok("login_delay = 30d\n", &c);
	assert_int_equal(c.login_delay_s, 30 * 86400);
	config_free(&c);
	load_ok("login_delay = 90\n", &c);
	assert_int_equal(c.login_delay_s, 90);
	config_free(&c);
	load_ok("login_delay = 0\n", &c);
	assert_int_equal(c.login_delay_s, 0);
	config_free(&c);
	load_err("login_delay = 31d\n", 1, "out of range (use 0 to 30d)");
	load_err("login_delay = 1500ms\n", 1, "not a whole number of seconds");
	load_err("login_delay = soon\n", 1, "not a duration");
}

static void
test_switches(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "YES", "On" };
	static const char *const no[] = { "no", "false", "off", "No", "FALSE" };
	struct config c;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "lock_session = %s\napop = %s\n"
		    "log_debug = %s\ndisable_plaintext_auth = %s\n", yes[i],
		    yes[i], yes[i], yes[i]);
		load_ok(text, &c);
		assert_true(c.lock_session && c.apop && c.log_debug);
		assert_int_equal(c.plaintext, PLAINTEXT_LOOPBACK_ONLY);
		config_free(&c);
		snprintf(text, sizeof(text), "lock_session = %s\napop = %s\n"
		    "log_debug = %s\ndisable_plaintext_auth = %s\n", no[i],
		    no[i], no[i], no[i]);
		load_ok(text, &c);
		assert_false(c.lock_session || c.apop || c.log_debug);
		assert_int_equal(c.plaintext, PLAINTEXT_ALLOWED);
		config_free(&c);
	}
	load_err("apop = maybe\n", 1, "apop: 'maybe' is not a boolean "
	    "(use yes or no)");
	load_err("lock_session = 1\n", 1, "not a boolean");
	load_err("disable_plaintext_auth = y\n", 1, "not a boolean");
	load_err("log_debug = yes please\n", 1, "not a boolean");

	load_ok("log = SysLog\n", &c);
	assert_true(c.log_syslog);
	config_free(&c);
	load_ok("log = stderr\n", &c);
	assert_false(c.log_syslog);
	config_free(&c);
	load_err("log = file\n", 1, "log: 'file' is not a log target "
	    "(use stderr or syslog)");

	load_ok("expire = never\n", &c);
	assert_true(c.expire_days == -1);
	config_free(&c);
	load_ok("expire = 0\n", &c);
	assert_true(c.expire_days == 0);
	config_free(&c);
	load_ok("expire = 100000\n", &c);
	assert_true(c.expire_days == 100000);
	config_free(&c);
	load_err("expire = 100001\n", 1, "(use never, or 0 to 100000)");
	load_err("expire = -1\n", 1, "not 'never' or a number of days");
	load_ok("expire = Never\n", &c);
	assert_true(c.expire_days == -1);
	config_free(&c);
	load_err("expire = 3d\n", 1, "not 'never'");
}

static void
test_strings(void **state)
{
	struct config c;
	char text[512];

	(void)state;
	load_ok("mail_root = /\n", &c);
	assert_string_equal(c.mail_root, "/");
	config_free(&c);
	load_ok("mail_root = /var/mail//\n", &c);
	assert_string_equal(c.mail_root, "/var/mail");
	config_free(&c);
	load_err("mail_root = var/mail\n", 1, "mail_root: 'var/mail' is not "
	    "an absolute path");
	load_err("mail_root = ~/mail\n", 1, "not an absolute path");

	load_ok("mail_user = _vmail.1\nauth_user = a-b\n", &c);
	assert_string_equal(c.mail_user, "_vmail.1");
	assert_string_equal(c.auth_user, "a-b");
	config_free(&c);
	load_err("mail_user = bad user\n", 1, "mail_user: 'bad user' is not "
	    "a user name");
	load_err("auth_user = -x\n", 1, "auth_user: '-x' is not a user name");
	load_err("auth_user = a:b\n", 1, "not a user name");
	load_err("auth_user = abcdefghijabcdefghijabcdefghijabc\n", 1,
	    "not a user name");

	load_err("hostname = a b\n", 1, "hostname: 'a b' is not usable");
	load_err("hostname = <x>\n", 1, "not usable");
	load_err("hostname = a@b\n", 1, "not usable");
	load_err("hostname = h\xc3\xa9\n", 1, "not usable");
	load_ok("hostname = [192.0.2.1]\n", &c);
	assert_string_equal(c.hostname, "[192.0.2.1]");
	config_free(&c);

	memset(text, 0, sizeof(text));
	memcpy(text, "greeting = ", 11);
	memset(text + 11, 'g', 200);
	text[211] = '\n';
	load_ok(text, &c);
	assert_int_equal(strlen(c.greeting), 200);
	config_free(&c);
	text[211] = 'g';
	text[212] = '\n';
	load_err(text, 1, "greeting: the text is longer than 200");
	load_err("greeting = caf\xc3\xa9\n", 1, "not printable ASCII");
	load_err("greeting = a\tb\n", 1, "not printable ASCII");
}

static void
test_user_db_relative(void **state)
{
	struct config c;
	char dir[PATH_MAX], path[PATH_MAX], want[PATH_MAX + 16], err[512];
	char *real;
	FILE *f;

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/sub", tmpdir), 0);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(str_fmt(path, sizeof(path), "%s/postern.conf", dir),
	    0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("user_db = db/users\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	real = realpath(dir, NULL);
	assert_non_null(real);
	snprintf(want, sizeof(want), "%s/db/users", real);
	free(real);
	assert_string_equal(c.user_db, want);
	config_free(&c);

	/* The same through a relative config path. */
	{
		char cwd[PATH_MAX];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(dir), 0);
		assert_int_equal(config_load("postern.conf", &c, err,
		    sizeof(err)), 0);
		assert_int_equal(chdir(cwd), 0);
		assert_string_equal(c.user_db, want);
		assert_string_equal(c.path, "postern.conf");
		config_free(&c);
	}
	unlink(path);
	rmdir(dir);

	load_ok("user_db = /abs/users\n", &c);
	assert_string_equal(c.user_db, "/abs/users");
	config_free(&c);
}

static void
test_reload(void **state)
{
	struct config c;

	(void)state;
	load_ok("greeting = one\nlisten = 127.0.0.1:1110\n", &c);
	assert_string_equal(c.greeting, "one");
	config_free(&c);
	load_ok("greeting = two\n", &c);
	assert_string_equal(c.greeting, "two");
	assert_int_equal(c.n_listeners, 2);
	check_v4(&c.listeners[0], "0.0.0.0", 110);
	config_free(&c);
	config_free(&c);
}

/* ---- listeners ---------------------------------------------------- */

static void
test_parse_listener(void **state)
{
	struct listener_conf l;
	char longtext[200];

	(void)state;
	assert_int_equal(config_parse_listener("127.0.0.1:1110", &l), 0);
	check_v4(&l, "127.0.0.1", 1110);
	assert_string_equal(l.text, "127.0.0.1:1110");
	assert_int_equal(config_parse_listener("*:110", &l), 0);
	check_v4(&l, "0.0.0.0", 110);
	assert_string_equal(l.text, "*:110");
	assert_int_equal(config_parse_listener("localhost:65535", &l), 0);
	check_v4(&l, "127.0.0.1", 65535);
	assert_int_equal(config_parse_listener("[::1]:1110", &l), 0);
	check_v6(&l, "::1", 1110);
	assert_string_equal(l.text, "[::1]:1110");
	assert_int_equal(config_parse_listener("[::]:110", &l), 0);
	check_v6(&l, "::", 110);
	assert_int_equal(config_parse_listener("[2001:db8::5]:995", &l), 0);
	check_v6(&l, "2001:db8::5", 995);

	/* On failure l is left alone. */
	assert_int_equal(config_parse_listener("127.0.0.1:0", &l), -1);
	check_v6(&l, "2001:db8::5", 995);
	assert_int_equal(config_parse_listener("127.0.0.1:65536", &l), -1);
	assert_int_equal(config_parse_listener("127.0.0.1:", &l), -1);
	assert_int_equal(config_parse_listener("127.0.0.1:+1", &l), -1);
	assert_int_equal(config_parse_listener("127.0.0.1:1x", &l), -1);
	assert_int_equal(config_parse_listener("127.0.0.1", &l), -1);
	assert_int_equal(config_parse_listener(":110", &l), -1);
	assert_int_equal(config_parse_listener("", &l), -1);
	assert_int_equal(config_parse_listener("example.org:110", &l), -1);
	assert_int_equal(config_parse_listener("127.1:110", &l), -1);
	assert_int_equal(config_parse_listener("::1:110", &l), -1);
	assert_int_equal(config_parse_listener("[::1]110", &l), -1);
	assert_int_equal(config_parse_listener("[::1:110", &l), -1);
	assert_int_equal(config_parse_listener("[127.0.0.1]:110", &l), -1);
	assert_int_equal(config_parse_listener("[*]:110", &l), -1);
	assert_int_equal(config_parse_listener("[]:110", &l), -1);
	assert_int_equal(config_parse_listener("[fe80::1%lo]:110", &l), -1);
	memset(longtext, '1', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = '\0';
	assert_int_equal(config_parse_listener(longtext, &l), -1);
}

static void
test_listen_lines(void **state)
{
	struct config c;
	char text[4096];
	size_t i, n = 0;

	(void)state;
	load_ok("listen = [::1]:1110\n", &c);
	assert_int_equal(c.n_listeners, 1);
	check_v6(&c.listeners[0], "::1", 1110);
	config_free(&c);

	load_ok("listen = *:110\nlisten = [::]:110\nlisten = *:995\n", &c);
	assert_int_equal(c.n_listeners, 3);
	check_v4(&c.listeners[0], "0.0.0.0", 110);
	check_v6(&c.listeners[1], "::", 110);
	check_v4(&c.listeners[2], "0.0.0.0", 995);
	config_free(&c);

	load_ok("listen = 127.0.0.1:1110\nlisten = 127.0.0.2:1110\n"
	    "listen = 127.0.0.1:1111\n", &c);
	assert_int_equal(c.n_listeners, 3);
	config_free(&c);

	load_err("listen = 127.0.0.1:1110\n# x\nlisten = 127.0.0.1:1110\n", 3,
	    "listen: '127.0.0.1:1110' is already listed on line 1");
	load_err("listen = localhost:1110\nlisten = 127.0.0.1:1110\n", 2,
	    "already listed on line 1");
	load_err("listen = [::1]:1110\nlisten = [0:0::1]:1110\n", 2,
	    "already listed");
	load_err("listen = *:110\nlisten = 127.0.0.1:110\n", 2,
	    "listen: '127.0.0.1:110' overlaps '*:110' on line 1");
	load_err("listen = [::1]:110\nlisten = [::]:110\n", 2, "overlaps");
	load_err("listen = 127.0.0.1:99999\n", 1,
	    "listen: '127.0.0.1:99999' has no valid port (use 1 to 65535)");
	load_err("listen = mail.example.org:110\n", 1,
	    "has no valid address");
	load_err("listen = ::1:110\n", 1, "put an IPv6 address in brackets");
	load_err("listen = 127.0.0.1\n", 1, "has no port");
	load_err("listen = [::1]\n", 1, "no ':port' after ']'");
	load_err("listen = [::1:110\n", 1, "'[' without ']'");
	load_err("listen = [1.2.3.4]:110\n", 1, "no valid IPv6 address");

	for (i = 0; i <= MAX_LISTENERS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "listen = 127.0.0.1:%zu\n", 2000 + i);
	load_err(text, MAX_LISTENERS + 1, "more than 32 listen lines");
	text[n - strlen("listen = 127.0.0.1:2032\n")] = '\0';
	load_ok(text, &c);
	assert_int_equal(c.n_listeners, MAX_LISTENERS);
	check_v4(&c.listeners[MAX_LISTENERS - 1], "127.0.0.1", 2031);
	config_free(&c);
}

static void
test_plaintext_networks(void **state)
{
	struct config c;
	char text[4096];
	size_t i, n;

	(void)state;
	load_ok("plaintext_networks = 127.0.0.1/32\n", &c);
	assert_int_equal(c.n_plaintext_networks, 1);
	assert_true(net_matches(&c, "127.0.0.1"));
	assert_false(net_matches(&c, "127.0.0.2"));
	assert_false(net_matches(&c, "::1"));
	assert_true(net_matches(&c, "::ffff:127.0.0.1"));
	assert_int_equal(c.plaintext, PLAINTEXT_LOOPBACK_ONLY);
	config_free(&c);

	load_ok("plaintext_networks = 192.0.2.0/24\t 2001:db8::/32  "
	    "198.51.100.7\n", &c);
	assert_int_equal(c.n_plaintext_networks, 3);
	assert_true(net_matches(&c, "192.0.2.200"));
	assert_true(net_matches(&c, "198.51.100.7"));
	assert_false(net_matches(&c, "198.51.100.8"));
	assert_true(net_matches(&c, "2001:db8:1::1"));
	assert_false(net_matches(&c, "127.0.0.1"));
	config_free(&c);

	load_ok("plaintext_networks = None\n", &c);
	assert_int_equal(c.n_plaintext_networks, 0);
	assert_false(net_matches(&c, "127.0.0.1"));
	config_free(&c);

	load_err("plaintext_networks = \"  \"\n", 1, "no network given");
	load_err("plaintext_networks = 127.0.0.1/33\n", 1,
	    "plaintext_networks: '127.0.0.1/33' is not a network");
	load_err("plaintext_networks = 10.0.0.0/8 localhost\n", 1,
	    "'localhost' is not a network");
	load_err("plaintext_networks = 10.0.0.0/8,10.1.0.0/16\n", 1,
	    "is not a network");
	load_err("plaintext_networks = 10.0.0.0/8\n"
	    "plaintext_networks = ::1\n", 2, "already set on line 1");

	n = (size_t)snprintf(text, sizeof(text), "plaintext_networks =");
	for (i = 0; i < MAX_NETWORKS; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " 10.0.%zu.0/24", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	load_ok(text, &c);
	assert_int_equal(c.n_plaintext_networks, MAX_NETWORKS);
	assert_true(net_matches(&c, "10.0.63.1"));
	config_free(&c);
	snprintf(text + n, sizeof(text) - n, " 10.1.0.0/16\n");
	load_err(text, 1, "more than 64 networks");
}

/* ---- TLS ---------------------------------------------------------- */

/* Two lines that give a certificate and its key. */
#define CERT_KEY							\
	"tls_cert = /etc/ssl/mail.pem\n"				\
	"tls_key = /etc/ssl/mail.key\n"

static void
test_tls_all_keys(void **state)
{
	struct config c;

	(void)state;
	load_ok("tls_cert = /etc/letsencrypt/live/mail.example.org/"
	    "fullchain.pem\n"
	    "tls_key = /etc/letsencrypt/live/mail.example.org/privkey.pem\n"
	    "tls_sni = Mail.Example.NET /etc/ssl/net.pem /etc/ssl/net.key\n"
	    "tls_sni = *.example.com\t/etc/ssl/com.pem   /etc/ssl/com.key\n"
	    "tls_min_version = TLSv1.3\n"
	    "tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256:!aNULL\n"
	    "tls_ciphersuites = TLS_AES_256_GCM_SHA384\n"
	    "tls_client_cert = yes\n"
	    "tls_client_ca = /etc/postern/clients.pem\n"
	    "tls_handshake_timeout = 10s\n"
	    "listen = 127.0.0.1:1110\n"
	    "listen = 127.0.0.1:1995 tls=implicit\n", &c);
	assert_string_equal(c.tls_cert,
	    "/etc/letsencrypt/live/mail.example.org/fullchain.pem");
	assert_string_equal(c.tls_key,
	    "/etc/letsencrypt/live/mail.example.org/privkey.pem");
	assert_int_equal(c.n_tls_sni, 2);
	assert_string_equal(c.tls_sni[0].domain, "mail.example.net");
	assert_string_equal(c.tls_sni[0].cert, "/etc/ssl/net.pem");
	assert_string_equal(c.tls_sni[0].key, "/etc/ssl/net.key");
	assert_string_equal(c.tls_sni[1].domain, "*.example.com");
	assert_string_equal(c.tls_sni[1].cert, "/etc/ssl/com.pem");
	assert_string_equal(c.tls_sni[1].key, "/etc/ssl/com.key");
	assert_int_equal(c.tls_min_version, 13);
	assert_string_equal(c.tls_ciphers,
	    "ECDHE-RSA-AES128-GCM-SHA256:!aNULL");
	assert_string_equal(c.tls_ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_true(c.tls_client_cert);
	assert_string_equal(c.tls_client_ca, "/etc/postern/clients.pem");
	assert_int_equal(c.tls_handshake_timeout_ms, 10000);
	assert_int_equal(c.n_listeners, 2);
	check_v4(&c.listeners[0], "127.0.0.1", 1110);
	assert_string_equal(c.listeners[0].text, "127.0.0.1:1110");
	assert_int_equal(c.listeners[0].tls, LISTEN_STARTTLS);
	check_v4(&c.listeners[1], "127.0.0.1", 1995);
	assert_string_equal(c.listeners[1].text, "127.0.0.1:1995");
	assert_int_equal(c.listeners[1].tls, LISTEN_IMPLICIT);
	config_free(&c);
	assert_null(c.tls_cert);
	assert_null(c.tls_ciphers);
	assert_int_equal(c.n_tls_sni, 0);
	config_free(&c);

	/* The same file may hold the certificate and its key. */
	load_ok("tls_cert = /etc/ssl/both.pem\ntls_key = /etc/ssl/both.pem\n",
	    &c);
	assert_string_equal(c.tls_cert, c.tls_key);
	assert_int_equal(c.tls_min_version, 12);
	assert_string_equal(c.tls_ciphers, SPEC_TLS_CIPHERS);
	config_free(&c);

	load_err("tls_cert = /a.pem\ntls_key = /a.key\ntls_cert = /b.pem\n",
	    3, "tls_cert: already set on line 1");
	load_err(CERT_KEY "tls_key = /b.key\n", 3, "tls_key: already set on "
	    "line 2");
	load_err("tls_cert =\n", 1, "tls_cert: the value is empty");
	load_err("tls_client_ca = \"\"\n", 1, "the value is empty");
	load_err("tls_min_version = TLSv1.2\ntls_min_version = TLSv1.3\n", 2,
	    "already set on line 1");
	load_err("tls_sertificate = /a.pem\n", 1, "unknown key");
	load_err("tls_cret = /a.pem\n", 1, "did you mean 'tls_cert'?");
}

static void
test_tls_listen(void **state)
{
	struct config c;
	struct listener_conf l;

	(void)state;
	load_ok(CERT_KEY "listen = [::1]:1995 tls=implicit\n"
	    "listen = [::1]:1110 tls=starttls\n"
	    "listen = 127.0.0.1:995\t TLS=Implicit  \n"
	    "listen = \"127.0.0.1:110 tls=STARTTLS\"\n"
	    "listen = 127.0.0.2:110\n", &c);
	assert_int_equal(c.n_listeners, 5);
	check_v6(&c.listeners[0], "::1", 1995);
	assert_string_equal(c.listeners[0].text, "[::1]:1995");
	assert_int_equal(c.listeners[0].tls, LISTEN_IMPLICIT);
	assert_string_equal(c.listeners[1].text, "[::1]:1110");
	assert_int_equal(c.listeners[1].tls, LISTEN_STARTTLS);
	check_v4(&c.listeners[2], "127.0.0.1", 995);
	assert_string_equal(c.listeners[2].text, "127.0.0.1:995");
	assert_int_equal(c.listeners[2].tls, LISTEN_IMPLICIT);
	assert_string_equal(c.listeners[3].text, "127.0.0.1:110");
	assert_int_equal(c.listeners[3].tls, LISTEN_STARTTLS);
	assert_string_equal(c.listeners[4].text, "127.0.0.2:110");
	assert_int_equal(c.listeners[4].tls, LISTEN_STARTTLS);
	config_free(&c);

	/* tls=starttls needs no certificate: STLS is simply not offered. */
	load_ok("listen = 127.0.0.1:1110 tls=starttls\n", &c);
	assert_int_equal(c.listeners[0].tls, LISTEN_STARTTLS);
	assert_null(c.tls_cert);
	config_free(&c);

	load_err("listen = 127.0.0.1:1110 tls=yes\n", 1, "listen: 'tls=yes' "
	    "after the address is not understood (use tls=implicit or "
	    "tls=starttls)");
	load_err("listen = 127.0.0.1:1110 implicit\n", 1, "not understood");
	load_err("listen = 127.0.0.1:1110 tls=\n", 1, "not understood");
	load_err(CERT_KEY "listen = 127.0.0.1:1110 tls = implicit\n", 3,
	    "has more than one word after the address");
	load_err(CERT_KEY "listen = 127.0.0.1:1110 tls=implicit x\n", 3,
	    "more than one word");
	load_err("listen = tls=implicit 127.0.0.1:995\n", 1,
	    "listen: 'tls=implicit' has no port");
	load_err("listen = 127.0.0.1 tls=implicit\n", 1,
	    "listen: '127.0.0.1' has no port");
	load_err("listen = 127.0.0.1:99999 tls=implicit\n", 1,
	    "'127.0.0.1:99999' has no valid port");

	/* A listener is its address, whatever its tls= word. */
	load_err(CERT_KEY "listen = 127.0.0.1:1110\n"
	    "listen = 127.0.0.1:1110 tls=implicit\n", 4,
	    "listen: '127.0.0.1:1110' is already listed on line 3");
	load_err(CERT_KEY "listen = *:995 tls=implicit\n"
	    "listen = 127.0.0.1:995 tls=implicit\n", 4,
	    "listen: '127.0.0.1:995' overlaps '*:995' on line 3");

	/* Implicit TLS needs a certificate, wherever it is given. */
	load_err("# c\nlisten = 127.0.0.1:1110\n"
	    "listen = 127.0.0.1:1995 tls=implicit\n", 3,
	    "listen: '127.0.0.1:1995' has tls=implicit but no tls_cert is "
	    "set");
	load_ok("listen = 127.0.0.1:1995 tls=implicit\n" CERT_KEY, &c);
	assert_int_equal(c.listeners[0].tls, LISTEN_IMPLICIT);
	config_free(&c);

	/* The programmatic parser takes the address only. */
	assert_int_equal(config_parse_listener("127.0.0.1:1995", &l), 0);
	assert_int_equal(l.tls, LISTEN_STARTTLS);
	assert_int_equal(config_parse_listener("127.0.0.1:1995 tls=implicit",
	    &l), -1);
}

static void
test_tls_default_listeners(void **state)
{
	struct config c;

	(void)state;
	load_ok(CERT_KEY, &c);
	assert_int_equal(c.n_listeners, 4);
	check_v4(&c.listeners[0], "0.0.0.0", 110);
	assert_string_equal(c.listeners[0].text, "*:110");
	assert_int_equal(c.listeners[0].tls, LISTEN_STARTTLS);
	check_v6(&c.listeners[1], "::", 110);
	assert_string_equal(c.listeners[1].text, "[::]:110");
	assert_int_equal(c.listeners[1].tls, LISTEN_STARTTLS);
	check_v4(&c.listeners[2], "0.0.0.0", 995);
	assert_string_equal(c.listeners[2].text, "*:995");
	assert_int_equal(c.listeners[2].tls, LISTEN_IMPLICIT);
	check_v6(&c.listeners[3], "::", 995);
	assert_string_equal(c.listeners[3].text, "[::]:995");
	assert_int_equal(c.listeners[3].tls, LISTEN_IMPLICIT);
	config_free(&c);

	/* A listen line replaces all of them. */
	load_ok(CERT_KEY "listen = 127.0.0.1:1110\n", &c);
	assert_int_equal(c.n_listeners, 1);
	assert_int_equal(c.listeners[0].tls, LISTEN_STARTTLS);
	config_free(&c);

	/* Without a certificate, port 110 only; and again after a reload. */
	load_ok("tls_min_version = TLSv1.3\n", &c);
	assert_int_equal(c.n_listeners, 2);
	assert_int_equal(c.listeners[0].tls, LISTEN_STARTTLS);
	assert_int_equal(c.listeners[1].tls, LISTEN_STARTTLS);
	config_free(&c);
	load_ok(CERT_KEY, &c);
	assert_int_equal(c.n_listeners, 4);
	config_free(&c);
	load_ok("", &c);
	check_defaults(&c);
	config_free(&c);
}

static void
test_tls_cross_checks(void **state)
{
	struct config c;

	(void)state;
	load_err("tls_cert = /a.pem\n", 1,
	    "tls_cert is set but tls_key is not");
	load_err("# c\n\ntls_key = /a.key\nworkers = 2\n", 3,
	    "tls_key is set but tls_cert is not");
	load_err("workers = 2\ntls_sni = a.example.org /a.pem /a.key\n"
	    "tls_sni = b.example.org /b.pem /b.key\n", 2,
	    "tls_sni needs tls_cert");
	load_err(CERT_KEY "\ntls_client_cert = yes\n", 4,
	    "tls_client_cert is yes but tls_client_ca is not set");
	load_err("tls_client_cert = on\n", 1, "tls_client_ca is not set");
	load_err("tls_client_ca = /ca.pem\ntls_client_cert = true\n"
	    "tls_cert = /a.pem\n", 3, "tls_key is not");

	/* Keys that only tune TLS are accepted, and unused, without it. */
	load_ok("tls_client_ca = /ca.pem\ntls_client_cert = no\n"
	    "tls_min_version = TLSv1.3\ntls_ciphers = HIGH\n"
	    "tls_handshake_timeout = 5s\n", &c);
	assert_null(c.tls_cert);
	assert_false(c.tls_client_cert);
	assert_string_equal(c.tls_client_ca, "/ca.pem");
	config_free(&c);
	load_ok(CERT_KEY "tls_client_cert = yes\ntls_client_ca = /ca.pem\n",
	    &c);
	assert_true(c.tls_client_cert);
	config_free(&c);
}

static void
test_tls_sni(void **state)
{
	static const struct {
		const char	*domain;
		const char	*want;
	} bad[] = {
		{ "*", "that is not a leading \"*.\"" },
		{ "*.", "has no domain name" },
		{ "**.example.org", "that is not a leading" },
		{ "*example.org", "that is not a leading" },
		{ "mail.*.example.org", "that is not a leading" },
		{ "*.*.example.org", "that is not a leading" },
		{ ".example.org", "has an empty label" },
		{ "example.org.", "has an empty label" },
		{ "mail..example.org", "has an empty label" },
		{ "*..example.org", "has an empty label" },
		{ "-mail.example.org", "starting with '-'" },
		{ "mail-.example.org", "ending with '-'" },
		{ "mail.example-", "ending with '-'" },
		{ "mail_1.example.org", "other than letters, digits" },
		{ "m\xc3\xa4il.example.org", "other than letters, digits" },
		{ "[192.0.2.1]", "other than letters, digits" },
		{ "mail.example.org:995", "other than letters, digits" },
	};
	struct config c;
	char text[16384], dom[300];
	size_t i, n;

	(void)state;
	load_ok(CERT_KEY "tls_sni = xn--bcher-kva.EXAMPLE /b.pem /b.key\n"
	    "tls_sni = *.Example.Org /w.pem /w.key\n"
	    "tls_sni = example.org /o.pem /o.key\n"
	    "tls_sni = \"  a-1.b2 /a.pem /a.key  \"\n"
	    "tls_sni = localhost /l.pem /l.key\n", &c);
	assert_int_equal(c.n_tls_sni, 5);
	assert_string_equal(c.tls_sni[0].domain, "xn--bcher-kva.example");
	assert_string_equal(c.tls_sni[1].domain, "*.example.org");
	assert_string_equal(c.tls_sni[1].cert, "/w.pem");
	assert_string_equal(c.tls_sni[2].domain, "example.org");
	assert_string_equal(c.tls_sni[3].domain, "a-1.b2");
	assert_string_equal(c.tls_sni[3].key, "/a.key");
	assert_string_equal(c.tls_sni[4].domain, "localhost");
	config_free(&c);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[128];

		snprintf(text, sizeof(text), CERT_KEY "tls_sni = %s /a /b\n",
		    bad[i].domain);
		snprintf(want, sizeof(want), "tls_sni: the domain '");
		load_err(text, 3, want);
		load_err(text, 3, bad[i].want);
	}

	/* Labels up to 63 characters, names up to 253. */
	memset(dom, 'a', 63);
	memcpy(dom + 63, ".org", 5);
	snprintf(text, sizeof(text), CERT_KEY "tls_sni = %s /a /b\n", dom);
	load_ok(text, &c);
	assert_string_equal(c.tls_sni[0].domain, dom);
	config_free(&c);
	memset(dom, 'a', 64);
	memcpy(dom + 64, ".org", 5);
	snprintf(text, sizeof(text), CERT_KEY "tls_sni = %s /a /b\n", dom);
	load_err(text, 3, "has a label longer than 63 characters");
	for (i = 0; i < 253; i++)
		dom[i] = i % 2 == 0 ? 'a' : '.';
	dom[253] = '\0';
	snprintf(text, sizeof(text), CERT_KEY "tls_sni = %s /a /b\n", dom);
	load_ok(text, &c);
	assert_int_equal(strlen(c.tls_sni[0].domain), 253);
	config_free(&c);
	snprintf(text, sizeof(text), CERT_KEY "tls_sni = *.%s /a /b\n", dom);
	load_err(text, 3, "is longer than 253 characters");

	/* Three words, no more and no fewer. */
	load_err(CERT_KEY "tls_sni = mail.example.org /a.pem\n", 3,
	    "tls_sni: 'mail.example.org /a.pem' is not three words (use "
	    "DOMAIN CERTFILE KEYFILE");
	load_err(CERT_KEY "tls_sni = mail.example.org\n", 3,
	    "is not three words");
	load_err(CERT_KEY "tls_sni = a.example.org /a.pem /a.key /x\n", 3,
	    "is not three words");

	/* Duplicates, in any case. */
	load_err(CERT_KEY "tls_sni = Mail.example.org /a.pem /a.key\n"
	    "tls_sni = *.example.org /w.pem /w.key\n"
	    "tls_sni = mail.EXAMPLE.org /b.pem /b.key\n", 5,
	    "tls_sni: the domain 'mail.example.org' is already listed on "
	    "line 3");

	/* At most MAX_TLS_SNI; the error comes after some were stored. */
	n = (size_t)snprintf(text, sizeof(text), CERT_KEY);
	for (i = 0; i < MAX_TLS_SNI; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    "tls_sni = d%zu.example.org /c%zu.pem /k%zu.pem\n", i, i,
		    i);
	load_ok(text, &c);
	assert_int_equal(c.n_tls_sni, MAX_TLS_SNI);
	assert_string_equal(c.tls_sni[MAX_TLS_SNI - 1].domain,
	    "d63.example.org");
	assert_string_equal(c.tls_sni[MAX_TLS_SNI - 1].key, "/k63.pem");
	config_free(&c);
	snprintf(text + n, sizeof(text) - n,
	    "tls_sni = last.example.org /c.pem /k.pem\n");
	load_err(text, MAX_TLS_SNI + 3, "tls_sni: more than 64 domains");
	snprintf(text + n, sizeof(text) - n, "workers = many\n");
	load_err(text, MAX_TLS_SNI + 3, "workers: 'many' is not a number");
}

static void
test_tls_values(void **state)
{
	static const char *const bad_versions[] = {
		"1.2", "TLSv1", "TLSv1.0", "TLSv1.1", "TLSv1.4", "SSLv3",
		"TLS1.2", "TLSv1.2+",
	};
	struct config c;
	char text[2048];
	size_t i;

	(void)state;
	load_ok("tls_min_version = tlsv1.2\n", &c);
	assert_int_equal(c.tls_min_version, 12);
	config_free(&c);
	load_ok("tls_min_version = TLSV1.3\n", &c);
	assert_int_equal(c.tls_min_version, 13);
	config_free(&c);
	for (i = 0; i < sizeof(bad_versions) / sizeof(bad_versions[0]); i++) {
		snprintf(text, sizeof(text), "\ntls_min_version = %s\n",
		    bad_versions[i]);
		load_err(text, 2, "is not a TLS version (use TLSv1.2 or "
		    "TLSv1.3)");
	}

	load_ok("tls_ciphers = HIGH:!aNULL:!MD5:@STRENGTH\n"
	    "tls_ciphersuites = TLS_CHACHA20_POLY1305_SHA256\n", &c);
	assert_string_equal(c.tls_ciphers, "HIGH:!aNULL:!MD5:@STRENGTH");
	assert_string_equal(c.tls_ciphersuites,
	    "TLS_CHACHA20_POLY1305_SHA256");
	config_free(&c);
	load_err("tls_ciphers = HIGH !aNULL\n", 1, "tls_ciphers: 'HIGH "
	    "!aNULL' is not a cipher list");
	load_err("tls_ciphers = HIGH:\tMEDIUM\n", 1, "is not a cipher list");
	load_err("tls_ciphersuites = TLS_AES_128_GCM_SHA256 "
	    "TLS_AES_256_GCM_SHA384\n", 1, "tls_ciphersuites: ");
	load_err("tls_ciphersuites = TLS_\xc3\xa9\n", 1,
	    "is not a cipher list");
	memcpy(text, "tls_ciphers = ", 14);
	memset(text + 14, 'A', 1024);
	memcpy(text + 14 + 1024, "\n", 2);
	load_ok(text, &c);
	assert_int_equal(strlen(c.tls_ciphers), 1024);
	config_free(&c);
	memcpy(text + 14 + 1024, "A\n", 3);
	load_err(text, 1, "tls_ciphers: the list is longer than 1024");

	load_ok("tls_handshake_timeout = 1s\n", &c);
	assert_int_equal(c.tls_handshake_timeout_ms, 1000);
	config_free(&c);
	load_ok("tls_handshake_timeout = 5m\n", &c);
	assert_int_equal(c.tls_handshake_timeout_ms, 300000);
	config_free(&c);
	load_ok("tls_handshake_timeout = 1500ms\n", &c);
	assert_int_equal(c.tls_handshake_timeout_ms, 1500);
	config_free(&c);
	load_ok("tls_handshake_timeout = 45\n", &c);
	assert_int_equal(c.tls_handshake_timeout_ms, 45000);
	config_free(&c);
	load_err("tls_handshake_timeout = 999ms\n", 1,
	    "tls_handshake_timeout: '999ms' is out of range (use 1s to 5m)");
	load_err("tls_handshake_timeout = 0\n", 1, "out of range");
	load_err("tls_handshake_timeout = 301s\n", 1, "out of range");
	load_err("tls_handshake_timeout = soon\n", 1, "not a duration");

	load_ok("tls_client_cert = On\ntls_client_ca = /ca.pem\n", &c);
	assert_true(c.tls_client_cert);
	config_free(&c);
	load_err("tls_client_cert = optional\n", 1, "tls_client_cert: "
	    "'optional' is not a boolean");
}

static void
test_tls_relative_paths(void **state)
{
	struct config c;
	char dir[PATH_MAX], path[PATH_MAX], err[512], cwd[PATH_MAX];
	char want[PATH_MAX + 64], *real;
	FILE *f;

	(void)state;
	assert_int_equal(str_fmt(dir, sizeof(dir), "%s/etc", tmpdir), 0);
	assert_int_equal(mkdir_p(dir, 0700), 0);
	assert_int_equal(str_fmt(path, sizeof(path), "%s/postern.conf", dir),
	    0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("tls_cert = certs/fullchain.pem\n"
	    "tls_key = ../keys/privkey.pem\n"
	    "tls_client_ca = clients.pem\n"
	    "tls_sni = other.example.org other/cert.pem /abs/other.key\n", f);
	assert_int_equal(fclose(f), 0);
	real = realpath(dir, NULL);
	assert_non_null(real);

	/* The config path given absolute, then relative to the cwd. */
	assert_int_equal(config_load(path, &c, err, sizeof(err)), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	{
		struct config c2;

		assert_int_equal(config_load("postern.conf", &c2, err,
		    sizeof(err)), 0);
		assert_int_equal(chdir(cwd), 0);
		assert_string_equal(c2.tls_cert, c.tls_cert);
		assert_string_equal(c2.tls_key, c.tls_key);
		assert_string_equal(c2.tls_client_ca, c.tls_client_ca);
		assert_string_equal(c2.tls_sni[0].cert, c.tls_sni[0].cert);
		config_free(&c2);
	}
	snprintf(want, sizeof(want), "%s/certs/fullchain.pem", real);
	assert_string_equal(c.tls_cert, want);
	snprintf(want, sizeof(want), "%s/../keys/privkey.pem", real);
	assert_string_equal(c.tls_key, want);
	snprintf(want, sizeof(want), "%s/clients.pem", real);
	assert_string_equal(c.tls_client_ca, want);
	assert_string_equal(c.tls_sni[0].domain, "other.example.org");
	snprintf(want, sizeof(want), "%s/other/cert.pem", real);
	assert_string_equal(c.tls_sni[0].cert, want);
	assert_string_equal(c.tls_sni[0].key, "/abs/other.key");
	config_free(&c);
	free(real);
	unlink(path);
	rmdir(dir);
}

/* ---- mailbox paths ------------------------------------------------ */

static void
test_mailbox_path(void **state)
{
	struct config c;
	char out[MAX_PATH_LEN];

	(void)state;
	config_defaults(&c);
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)), 0);
	assert_string_equal(out, "/var/mail/postern/bob");
	assert_int_equal(config_mailbox_path(&c, "bob@example.org", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/var/mail/postern/bob@example.org");
	config_free(&c);

	load_ok("mail_root = /srv/mail\nmailbox_path = %d/%n\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob@example.org", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/srv/mail/example.org/bob");
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/mail/bob");
	/* The last '@' splits; an empty domain drops its '/'. */
	assert_int_equal(config_mailbox_path(&c, "a@b@c.org", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/srv/mail/c.org/a@b");
	assert_int_equal(config_mailbox_path(&c, "bob@", out, sizeof(out)),
	    0);
	assert_string_equal(out, "/srv/mail/bob");
	/* An empty local part would name the domain's own directory. */
	errno = 0;
	assert_int_equal(config_mailbox_path(&c, "@example.org", out,
	    sizeof(out)), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(config_mailbox_path(&c, "x@.", out, sizeof(out)),
	    -1);
	assert_int_equal(config_mailbox_path(&c, "@", out, sizeof(out)), -1);
	config_free(&c);

	load_ok("mail_root = /\nmailbox_path = users/%u/Maildir%%\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)), 0);
	assert_string_equal(out, "/users/bob/Maildir%");
	config_free(&c);

	load_ok("mail_root = /m\nmailbox_path = %n.%d\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob@x.org", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/m/bob.x.org");
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)), 0);
	assert_string_equal(out, "/m/bob.");
	config_free(&c);

	load_ok("mail_root = /m\nmailbox_path = %n/%d\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)),
	    -1);	/* "bob/" has an empty last component */
	config_free(&c);
}

/* "mbox:" and "maildir:" choose the store's format and stay in front of
 * the path; the rest of the template is checked as without them. */
static void
test_mailbox_path_format(void **state)
{
	struct config c;
	char out[MAX_PATH_LEN];

	(void)state;
	load_ok("mail_root = /var/mail\nmailbox_path = mbox:%u\n"
	    "mbox_lock_timeout = 2s\nmbox_dotlock_stale = 1m\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)), 0);
	assert_string_equal(out, "mbox:/var/mail/bob");
	assert_int_equal(c.mbox_lock_timeout_ms, 2000);
	assert_int_equal(c.mbox_dotlock_stale_ms, 60000);
	assert_int_equal(config_mailbox_path(&c, "../x", out, sizeof(out)),
	    -1);
	config_free(&c);
	load_ok("mail_root = /srv\nmailbox_path = maildir:%d/%n\n", &c);
	assert_int_equal(config_mailbox_path(&c, "bob@x.org", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "maildir:/srv/x.org/bob");
	assert_int_equal(config_mailbox_path(&c, "@x.org", out,
	    sizeof(out)), -1);
	config_free(&c);
	config_defaults(&c);
	assert_int_equal(c.mbox_lock_timeout_ms, 10000);
	assert_int_equal(c.mbox_dotlock_stale_ms, 300000);
	config_free(&c);
	load_err("mailbox_path = mbox:/var/mail/%u\n", 1, "relative");
	load_err("mailbox_path = mbox:\n", 1, "empty");
	load_err("mailbox_path = mbox:mail/../%u\n", 1, "'..'");
	load_err("mailbox_path = mbox:%x\n", 1, "%x");
	load_err("mbox_dotlock_stale = 1s\n", 1, "range");
	load_err("mbox_lock_timeout = 1h\n", 1, "range");
}

static void
test_mailbox_hostile(void **state)
{
	static const char *const bad[] = {
		"", "../x", ".x", "a/b", "a\n", ".", "..", "a..b", "x/..",
		"a b", "a\tb", "a\rb", "tab\x7f", "/etc", "bob/",
	};
	struct config c;
	char out[MAX_PATH_LEN], name[MAX_USERNAME_LEN + 2];
	size_t i;

	(void)state;
	config_defaults(&c);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		if (config_mailbox_path(&c, bad[i], out, sizeof(out)) != -1)
			fail_msg("user name #%zu accepted: %s", i, out);
		assert_int_equal(errno, EINVAL);
	}
	memset(name, 'a', MAX_USERNAME_LEN);
	name[MAX_USERNAME_LEN] = '\0';
	assert_int_equal(config_mailbox_path(&c, name, out, sizeof(out)), 0);
	name[MAX_USERNAME_LEN] = 'a';
	name[MAX_USERNAME_LEN + 1] = '\0';
	assert_int_equal(config_mailbox_path(&c, name, out, sizeof(out)), -1);

	/* UTF-8 names are not control characters. */
	assert_int_equal(config_mailbox_path(&c, "j\xc3\xb6rg", out,
	    sizeof(out)), 0);

	/* Truncation is an error, never a shorter path. */
	errno = 0;
	assert_int_equal(config_mailbox_path(&c, "bob", out, 21), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(config_mailbox_path(&c, "bob", out, 22), 0);
	assert_string_equal(out, "/var/mail/postern/bob");
	config_free(&c);

	/* A freed config names no mailbox. */
	assert_int_equal(config_mailbox_path(&c, "bob", out, sizeof(out)),
	    -1);
}

static void
test_mailbox_templates(void **state)
{
	struct config c;

	(void)state;
	load_err("mailbox_path = /var/mail/%u\n", 1, "mailbox_path: "
	    "'/var/mail/%u' must be relative to mail_root");
	load_err("mailbox_path = %u/%x\n", 1, "uses '%x' (only %u, %n, %d "
	    "and %% are allowed)");
	load_err("mailbox_path = %u%\n", 1, "ends with a lone '%'");
	load_err("mailbox_path = ../%u\n", 1, "has a '.' or '..' component");
	load_err("mailbox_path = %u/..\n", 1, "'.' or '..'");
	load_err("mailbox_path = %d/../%n\n", 1, "'.' or '..'");
	load_err("mailbox_path = ./%u\n", 1, "'.' or '..'");
	load_err("mailbox_path = a//%u\n", 1, "an empty path component");
	load_err("mailbox_path = %u/\n", 1, "an empty path component");
	load_err("mailbox_path = shared\n", 1, "contains neither %u nor %n");
	load_err("mailbox_path = %d\n", 1, "every user would share");
	load_err("mailbox_path = %%u\n", 1, "contains neither");

	load_ok("mailbox_path = ..%u/x..y\n", &c);
	assert_string_equal(c.mailbox_path, "..%u/x..y");
	config_free(&c);
}

static void
test_lmtp_and_quota_keys(void **state)
{
	const struct sockaddr_in *s4;
	struct config c;

	(void)state;
	load_ok("", &c);
	assert_int_equal(c.n_lmtp_listeners, 0);
	assert_int_equal(c.lmtp_socket_mode, 0660);
	assert_int_equal(c.lmtp_max_recipients, 100);
	assert_int_equal(c.quota_bytes, 0);
	assert_int_equal(c.quota_messages, 0);
	assert_false(c.quota_temporary);
	assert_int_equal(c.restart_interval_ms, 1000);
	config_free(&c);

	load_ok("lmtp_listen = unix:/run/postern/lmtp\n"
	    "lmtp_listen = 127.0.0.1:24\nlmtp_listen = [::1]:24\n"
	    "lmtp_socket_mode = 0600\nlmtp_recipient_delimiter = +\n"
	    "quota_bytes = 2G\nquota_messages = 1000\n"
	    "quota_temporary = yes\nrestart_interval = 50ms\n", &c);
	assert_int_equal(c.n_lmtp_listeners, 3);
	assert_true(c.lmtp_listeners[0].is_unix);
	assert_string_equal(c.lmtp_listeners[0].path, "/run/postern/lmtp");
	assert_false(c.lmtp_listeners[1].is_unix);
	s4 = (const struct sockaddr_in *)(const void *)
	    &c.lmtp_listeners[1].addr;
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 24);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(c.lmtp_socket_mode, 0600);
	assert_int_equal(c.lmtp_recipient_delimiter, '+');
	assert_int_equal(c.quota_bytes, 2ull << 30);
	assert_int_equal(c.quota_messages, 1000);
	assert_true(c.quota_temporary);
	assert_int_equal(c.restart_interval_ms, 50);
	config_free(&c);

	load_ok("lmtp_listen = 192.0.2.1:24\nlmtp_allow_remote = yes\n", &c);
	assert_int_equal(c.n_lmtp_listeners, 1);
	config_free(&c);

	load_err("lmtp_listen = 192.0.2.1:24\n", 1,
	    "lmtp_listen: '192.0.2.1:24' is not a loopback address");
	load_err("# x\nlmtp_listen = *:24\n", 2, "lmtp_allow_remote");
	load_err("lmtp_listen = unix:run/lmtp\n", 1, "absolute socket path");
	load_err("lmtp_listen = 127.0.0.1:24\nlmtp_listen = 127.0.0.1:24\n",
	    2, "already listed on line 1");
	load_err("lmtp_listen = 127.0.0.1\n", 1, "has no port");
	load_err("lmtp_socket_mode = 0868\n", 1, "not an octal mode");
	load_err("lmtp_socket_mode = 01777\n", 1, "not an octal mode");
	load_err("lmtp_recipient_delimiter = ++\n", 1, "is not one of");
	load_err("lmtp_max_line_length = 100\n", 1, "out of range");
	load_err("quota_bytes = 2P\n", 1, "quota_bytes");
	load_err("quota_messages = 4294967296\n", 1, "quota_messages");
	load_err("restart_interval = 1ms\n", 1, "restart_interval");
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "%s/postern-test.XXXXXX",
	    tmp_base());
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_switches),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_user_db_relative),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_parse_listener),
		cmocka_unit_test(test_listen_lines),
		cmocka_unit_test(test_plaintext_networks),
		cmocka_unit_test(test_tls_all_keys),
		cmocka_unit_test(test_tls_listen),
		cmocka_unit_test(test_tls_default_listeners),
		cmocka_unit_test(test_tls_cross_checks),
		cmocka_unit_test(test_tls_sni),
		cmocka_unit_test(test_tls_values),
		cmocka_unit_test(test_tls_relative_paths),
		cmocka_unit_test(test_mailbox_path),
		cmocka_unit_test(test_mailbox_path_format),
		cmocka_unit_test(test_mailbox_hostile),
		cmocka_unit_test(test_mailbox_templates),
		cmocka_unit_test(test_lmtp_and_quota_keys),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
