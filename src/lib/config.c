/*
 * config.c: postern.conf into struct config, and the mailbox path of a
 * user.
 *
 * Owns: every string of struct config (heap copies, freed by
 * config_free).  Trusts nothing in the file: it is read whole, bounded by
 * CONFIG_MAX_BYTES, split into lines of at most CONFIG_MAX_LINE octets,
 * and each value is checked before it is stored.  Every key is listed
 * once, in keys[] below; its handler parses and stores the value.  A user
 * name given to config_mailbox_path() is treated as hostile.
 *
 * What callers rely on:
 * - config_load() overwrites c without freeing it: pass a struct that is
 *   new or was given to config_free().  On failure c is left as
 *   config_free() leaves it (all pointers NULL), so a reload on SIGHUP
 *   loads into a second struct and swaps only on success.
 * - A relative user_db, tls_cert, tls_key, tls_client_ca or tls_sni
 *   file is resolved against the directory of the config file and stored
 *   absolute, so a later chdir() does not move it.  None of these files is
 *   opened here: the server loads the certificates and keys and reports
 *   what is wrong with them.
 * - Checks that involve several keys run once the whole file is read;
 *   their errors name the line of the key that has to change.
 * - Without a listen line, the listeners are *:110 and [::]:110, and with
 *   a tls_cert also *:995 and [::]:995 with tls=implicit (RFC 8314).
 * - An idle_timeout below 10 minutes (RFC 1939 section 3) is accepted;
 *   warning about it is left to the daemon, which logs it once per load.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "strnum.h"

/* Built-in defaults that are not numbers (those are in limits.h). */
#define DEFAULT_PORT		"110"
#define DEFAULT_MAIL_ROOT	"/var/mail/postern"
#define DEFAULT_MAILBOX_PATH	"%u"
#define DEFAULT_USER_DB		"/etc/postern/users"
#define DEFAULT_RUN_USER	"postern"
#define DEFAULT_GREETING	"Postern ready."
#define DEFAULT_HOSTNAME	"localhost"
#define DEFAULT_OAUTH_USER_CLAIM "sub"
#define DEFAULT_TLS_PORT	"995"		/* RFC 8314 section 7.1 */
#define DEFAULT_TLS_MIN_VERSION	12		/* TLS 1.2 */

/*
 * Forward-secret AEAD suites only (RFC 7525 section 4.2); the server hands
 * the lists to OpenSSL as they are.
 */
#define DEFAULT_TLS_CIPHERS						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
#define DEFAULT_TLS_CIPHERSUITES					\
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"		\
	"TLS_CHACHA20_POLY1305_SHA256"

/*
 * Ranges of the keys that limits.h does not bound.  Each is wide enough
 * for any sane site and narrow enough that no arithmetic on it overflows.
 */
#define AUTH_WORKERS_MAX	64
#define COUNT_MAX		INT_MAX		/* connections, failures */
#define IDLE_TIMEOUT_MIN_MS	1000ull
#define IDLE_TIMEOUT_MAX_MS	(24ull * 3600 * 1000)
#define AUTH_DELAY_MAX_MS	(300ull * 1000)
#define EXPIRE_MAX_DAYS		100000
#define LOGIN_DELAY_MAX_MS	(30ull * 86400 * 1000)
#define GREETING_MAX		200	/* leaves room for the APOP stamp */
#define DEFAULT_XMIT_COMMAND	"/usr/sbin/sendmail"
#define DEFAULT_XMIT_COMMAND_ARG "-i"
#define HOSTNAME_MAX		255	/* RFC 1035 section 2.3.4 */
#define RUN_USER_MAX		32	/* useradd's limit */
#define KEY_NAME_MAX		32
#define TLS_HANDSHAKE_MIN_MS	1000ull
#define TLS_HANDSHAKE_MAX_MS	(300ull * 1000)
#define TLS_CIPHERS_MAX		1024	/* far above any useful list */
#define DOMAIN_MAX		253	/* RFC 1035 section 2.3.4, as text */
#define LABEL_MAX		63

#define KEY_REPEAT		0x01	/* may appear on several lines */
#define KEY_EMPTY_OK		0x02	/* an empty value is allowed */

struct parse;

struct key {
	const char	*name;
	/* Parses and stores one value; 0, or -1 with the message set. */
	int		(*set)(struct parse *, const struct key *,
			    const char *);
	size_t		 off;		/* field of struct config, if generic */
	uint64_t	 min, max;	/* range, for numbers and durations */
	unsigned int	 flags;
};

static bool	username_ok(const char *);

/* The key handlers, defined below in the order of keys[]. */
static int	set_listen(struct parse *, const struct key *,
	    const char *);
static int	set_mail_root(struct parse *, const struct key *,
	    const char *);
static int	set_mailbox_path(struct parse *, const struct key *,
	    const char *);
static int	set_path(struct parse *, const struct key *,
	    const char *);
static int	set_tls_sni(struct parse *, const struct key *,
	    const char *);
static int	set_tls_version(struct parse *, const struct key *,
	    const char *);
static int	set_cipher_list(struct parse *, const struct key *,
	    const char *);
static int	set_run_user(struct parse *, const struct key *,
	    const char *);
static int	set_uint(struct parse *, const struct key *,
	    const char *);
static int	set_duration(struct parse *, const struct key *,
	    const char *);
static int	set_size(struct parse *, const struct key *,
	    const char *);
static int	set_bool(struct parse *, const struct key *,
	    const char *);
static int	set_expire(struct parse *, const struct key *,
	    const char *);
static int	set_login_delay(struct parse *, const struct key *,
	    const char *);
static int	set_plaintext(struct parse *, const struct key *,
	    const char *);
static int	set_networks(struct parse *, const struct key *,
	    const char *);
static int	set_log(struct parse *, const struct key *,
	    const char *);
static int	set_user_db_type(struct parse *, const struct key *,
	    const char *);
static int	set_password_forms(struct parse *, const struct key *,
	    const char *);
static int	set_mechanisms(struct parse *, const struct key *,
	    const char *);
static int	set_master_users(struct parse *, const struct key *,
	    const char *);
static int	set_external_user(struct parse *, const struct key *,
	    const char *);
static int	set_oauth_issuer(struct parse *, const struct key *,
	    const char *);
static int	set_word(struct parse *, const struct key *,
	    const char *);
static int	set_hostname(struct parse *, const struct key *,
	    const char *);
static int	set_greeting(struct parse *, const struct key *,
	    const char *);
static int	set_lmtp_listen(struct parse *, const struct key *,
	    const char *);
static int	set_mode(struct parse *, const struct key *,
	    const char *);
static int	set_delimiter(struct parse *, const struct key *,
	    const char *);
static int	set_xmit_tls(struct parse *, const struct key *,
	    const char *);
static int	set_xmit_domains(struct parse *, const struct key *,
	    const char *);
static int	set_xmit_command(struct parse *, const struct key *,
	    const char *);
static int	set_xmit_relay(struct parse *, const struct key *,
	    const char *);

#define FIELD(f)	offsetof(struct config, f)

/* The only list of keys; postern.conf(5) documents them in this order. */
static const struct key keys[] = {
	{ "listen", set_listen, 0, 0, 0, KEY_REPEAT },
	{ "tls_cert", set_path, FIELD(tls_cert), 0, 0, 0 },
	{ "tls_key", set_path, FIELD(tls_key), 0, 0, 0 },
	{ "tls_sni", set_tls_sni, 0, 0, 0, KEY_REPEAT },
	{ "tls_min_version", set_tls_version, FIELD(tls_min_version), 0, 0,
	    0 },
	{ "tls_ciphers", set_cipher_list, FIELD(tls_ciphers), 0, 0, 0 },
	{ "tls_ciphersuites", set_cipher_list, FIELD(tls_ciphersuites), 0, 0,
	    0 },
	{ "tls_client_cert", set_bool, FIELD(tls_client_cert), 0, 0, 0 },
	{ "tls_client_ca", set_path, FIELD(tls_client_ca), 0, 0, 0 },
	{ "tls_handshake_timeout", set_duration,
	    FIELD(tls_handshake_timeout_ms), TLS_HANDSHAKE_MIN_MS,
	    TLS_HANDSHAKE_MAX_MS, 0 },
	{ "mail_root", set_mail_root, FIELD(mail_root), 0, 0, 0 },
	{ "mailbox_path", set_mailbox_path, FIELD(mailbox_path), 0, 0, 0 },
	{ "user_db", set_path, FIELD(user_db), 0, 0, 0 },
	{ "user_db_type", set_user_db_type, FIELD(user_db_type), 0, 0, 0 },
	{ "deliver_max_size", set_size, FIELD(deliver_max_size), 1,
	    HARD_DELIVER_MAX_SIZE, 0 },
	{ "password_forms", set_password_forms, FIELD(password_forms), 0, 0,
	    0 },
	{ "scram_iterations", set_uint, FIELD(scram_iterations),
	    SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS, 0 },
	{ "mail_user", set_run_user, FIELD(mail_user), 0, 0, 0 },
	{ "auth_user", set_run_user, FIELD(auth_user), 0, 0, 0 },
	{ "workers", set_uint, FIELD(workers), 0, MAX_WORKERS, 0 },
	{ "auth_workers", set_uint, FIELD(auth_workers), 1,
	    AUTH_WORKERS_MAX, 0 },
	{ "idle_timeout", set_duration, FIELD(idle_timeout_ms),
	    IDLE_TIMEOUT_MIN_MS, IDLE_TIMEOUT_MAX_MS, 0 },
	{ "max_connections", set_uint, FIELD(max_connections), 1,
	    COUNT_MAX, 0 },
	{ "max_connections_per_ip", set_uint, FIELD(max_connections_per_ip),
	    1, COUNT_MAX, 0 },
	{ "max_connections_per_user", set_uint,
	    FIELD(max_connections_per_user), 1, COUNT_MAX, 0 },
	{ "max_line_length", set_uint, FIELD(max_line_length),
	    POP3_RFC_LINE_MAX, HARD_MAX_LINE_LENGTH, 0 },
	{ "max_pipelined_commands", set_uint, FIELD(max_pipelined_commands),
	    1, HARD_MAX_PIPELINED_COMMANDS, 0 },
	{ "session_memory_limit", set_size, FIELD(session_memory_limit),
	    SESSION_MEMORY_LIMIT_MIN, SESSION_MEMORY_LIMIT_MAX, 0 },
	{ "index_cache_size", set_size, FIELD(index_cache_size), 0,
	    INDEX_CACHE_SIZE_MAX, 0 },
	{ "max_bad_commands", set_uint, FIELD(max_bad_commands), 1,
	    COUNT_MAX, 0 },
	{ "max_auth_failures", set_uint, FIELD(max_auth_failures), 1,
	    COUNT_MAX, 0 },
	{ "auth_fail_delay", set_duration, FIELD(auth_fail_delay_ms), 0,
	    AUTH_DELAY_MAX_MS, 0 },
	{ "auth_fail_delay_max", set_duration, FIELD(auth_fail_delay_max_ms),
	    0, AUTH_DELAY_MAX_MS, 0 },
	{ "lock_session", set_bool, FIELD(lock_session), 0, 0, 0 },
	{ "mbox_lock_timeout", set_duration, FIELD(mbox_lock_timeout_ms), 0,
	    MBOX_LOCK_TIMEOUT_MAX_MS, 0 },
	{ "mbox_dotlock_stale", set_duration, FIELD(mbox_dotlock_stale_ms),
	    MBOX_DOTLOCK_STALE_MIN_SEC * 1000ull,
	    MBOX_DOTLOCK_STALE_MAX_SEC * 1000ull, 0 },
	{ "expire", set_expire, FIELD(expire_days), 0, EXPIRE_MAX_DAYS, 0 },
	{ "login_delay", set_login_delay, FIELD(login_delay_s), 0,
	    LOGIN_DELAY_MAX_MS, 0 },
	{ "uidl_guard_share", set_uint, FIELD(uidl_guard_share), 1, 100, 0 },
	{ "uidl_guard_min", set_uint, FIELD(uidl_guard_min), 1,
	    MAX_MESSAGES_PER_MAILBOX, 0 },
	{ "disable_plaintext_auth", set_plaintext, FIELD(plaintext), 0, 0,
	    0 },
	{ "plaintext_networks", set_networks, 0, 0, 0, 0 },
	{ "apop", set_bool, FIELD(apop), 0, 0, 0 },
	{ "auth_mechanisms", set_mechanisms, FIELD(mechanisms), 0, 0, 0 },
	{ "max_sasl_line_length", set_uint, FIELD(max_sasl_line_length),
	    POP3_RFC_LINE_MAX, HARD_MAX_SASL_LINE_LENGTH, 0 },
	{ "auth_master_users", set_master_users, 0, 0, 0, 0 },
	{ "trusted_networks", set_networks, 0, 0, 0, 0 },
	{ "external_user", set_external_user, FIELD(external_user), 0, 0,
	    0 },
	{ "oauth_issuer", set_oauth_issuer, 0, 0, 0, KEY_REPEAT },
	{ "oauth_audience", set_word, FIELD(oauth_audience), 0, 0, 0 },
	{ "oauth_user_claim", set_word, FIELD(oauth_user_claim), 0, 0, 0 },
	{ "xmit", set_bool, FIELD(xmit), 0, 0, 0 },
	{ "xmit_require_tls", set_xmit_tls, FIELD(xmit_require_tls), 0, 0,
	    0 },
	{ "xmit_check_from", set_bool, FIELD(xmit_check_from), 0, 0, 0 },
	{ "xmit_domain", set_xmit_domains, 0, 0, 0, KEY_REPEAT },
	{ "xmit_command", set_xmit_command, 0, 0, 0, 0 },
	{ "xmit_relay", set_xmit_relay, 0, 0, 0, 0 },
	{ "xmit_relay_starttls", set_bool, FIELD(xmit_relay_starttls), 0, 0,
	    0 },
	{ "xmit_relay_ca", set_path, FIELD(xmit_relay_ca), 0, 0, 0 },
	{ "xmit_max_size", set_size, FIELD(xmit_max_size), 1,
	    HARD_XMIT_MAX_SIZE, 0 },
	{ "xmit_max_recipients", set_uint, FIELD(xmit_max_recipients), 1,
	    HARD_XMIT_MAX_RECIPIENTS, 0 },
	{ "xmit_max_per_hour", set_uint, FIELD(xmit_max_per_hour), 1,
	    HARD_XMIT_MAX_PER_HOUR, 0 },
	{ "xmit_timeout", set_duration, FIELD(xmit_timeout_ms),
	    XMIT_TIMEOUT_MIN_MS, XMIT_TIMEOUT_MAX_MS, 0 },
	{ "log", set_log, FIELD(log_syslog), 0, 0, 0 },
	{ "log_debug", set_bool, FIELD(log_debug), 0, 0, 0 },
	{ "hostname", set_hostname, FIELD(hostname), 0, 0, 0 },
	{ "greeting", set_greeting, FIELD(greeting), 0, 0, KEY_EMPTY_OK },
	{ "lmtp_listen", set_lmtp_listen, 0, 0, 0, KEY_REPEAT },
	{ "lmtp_socket_mode", set_mode, FIELD(lmtp_socket_mode), 0, 0777, 0 },
	{ "lmtp_allow_remote", set_bool, FIELD(lmtp_allow_remote), 0, 0, 0 },
	{ "lmtp_max_connections", set_uint, FIELD(lmtp_max_connections), 1,
	    COUNT_MAX, 0 },
	{ "lmtp_max_recipients", set_uint, FIELD(lmtp_max_recipients), 1,
	    HARD_LMTP_MAX_RECIPIENTS, 0 },
	{ "lmtp_max_line_length", set_uint, FIELD(lmtp_max_line_length),
	    LMTP_MIN_LINE_LENGTH, HARD_LMTP_MAX_LINE_LENGTH, 0 },
	{ "lmtp_idle_timeout", set_duration, FIELD(lmtp_idle_timeout_ms),
	    IDLE_TIMEOUT_MIN_MS, IDLE_TIMEOUT_MAX_MS, 0 },
	{ "lmtp_recipient_delimiter", set_delimiter,
	    FIELD(lmtp_recipient_delimiter), 0, 0, 0 },
	{ "quota_bytes", set_size, FIELD(quota_bytes), 0, HARD_QUOTA_BYTES,
	    0 },
	{ "quota_messages", set_uint, FIELD(quota_messages), 0,
	    HARD_QUOTA_MESSAGES, 0 },
	{ "quota_temporary", set_bool, FIELD(quota_temporary), 0, 0, 0 },
	{ "restart_interval", set_duration, FIELD(restart_interval_ms), 10,
	    60000, 0 },
};

struct parse {
	struct config	*c;
	const char	*path;
	char		*err;
	size_t		 errsize;
	unsigned int	 line;		/* 0: no line applies */
	unsigned int	 seen[N_ELEMENTS(keys)];	/* line that set it */
	unsigned int	 listen_line[MAX_LISTENERS];
	unsigned int	 sni_line[MAX_TLS_SNI];
	unsigned int	 issuer_line[MAX_OAUTH_ISSUERS];
	unsigned int	 lmtp_line[MAX_LMTP_LISTENERS];
	bool		 listen_given;	/* the defaults were replaced */
	char		 shown[72];	/* a value, made safe to print */
};

static void err_set(struct parse *, const char *, ...) ATTR_PRINTF(2, 3);

/* "PATH:LINE: message" into the caller's buffer (truncated if small). */
static void
err_set(struct parse *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->err == NULL || p->errsize == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		(void)snprintf(p->err, p->errsize, "%s:%u: %s", p->path,
		    p->line, msg);
	else
		(void)snprintf(p->err, p->errsize, "%s: %s", p->path, msg);
}

/* A value as it may appear in a message: ASCII only, shortened. */
static const char *
shown(struct parse *p, const char *value)
{
	return log_safe(p->shown, sizeof(p->shown), value);
}

static void *
field(struct parse *p, const struct key *k)
{
	return (char *)p->c + k->off;
}

/* Replaces the string field of k; the old one is freed. */
static int
store_str(struct parse *p, const struct key *k, const char *value)
{
	char **dst = field(p, k);
	char *s;

	if ((s = strdup(value)) == NULL) {
		err_set(p, "%s: out of memory", k->name);
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* "90s", "10m", "24h": the largest unit that divides ms exactly. */
static const char *
duration_str(uint64_t ms, char *buf, size_t size)
{
	static const struct {
		const char	*unit;
		uint64_t	 ms;
	} units[] = {
		{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 },
		{ "s", 1000 }, { "ms", 1 },
	};
	size_t i;

	if (ms == 0) {
		(void)snprintf(buf, size, "0");
		return buf;
	}
	for (i = 0; i < N_ELEMENTS(units) - 1; i++)
		if (ms % units[i].ms == 0)
			break;
	(void)snprintf(buf, size, "%" PRIu64 "%s", ms / units[i].ms,
	    units[i].unit);
	return buf;
}

/* "512k", "256M", "4G": the largest unit that divides n exactly. */
static const char *
size_str(uint64_t n, char *buf, size_t size)
{
	static const struct {
		const char	*unit;
		uint64_t	 mult;
	} units[] = {
		{ "G", 1024ull * 1024 * 1024 }, { "M", 1024 * 1024 },
		{ "k", 1024 }, { "", 1 },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(units) - 1; i++)
		if (n != 0 && n % units[i].mult == 0)
			break;
	(void)snprintf(buf, size, "%" PRIu64 "%s", n / units[i].mult,
	    units[i].unit);
	return buf;
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Printable ASCII; space allowed only if asked for. */
static bool
is_print(unsigned char ch, bool space_ok)
{
	return (ch > 0x20 && ch < 0x7f) || (space_ok && ch == ' ');
}

/* ---- listeners ---------------------------------------------------- */

/* Parses a listen address; *why_r says what is wrong on failure. */
static int
listener_parse(const char *text, struct listener_conf *l,
    const char **why_r)
{
	struct listener_conf t;
	char host[INET6_ADDRSTRLEN];
	const char *hs, *he, *port;
	size_t len = strlen(text), hlen;
	uint32_t pn;
	bool v6 = false;

	memset(&t, 0, sizeof(t));
	if (len >= sizeof(t.text)) {
		*why_r = "is too long";
		return -1;
	}
	if (text[0] == '[') {
		hs = text + 1;
		if ((he = strchr(hs, ']')) == NULL) {
			*why_r = "has '[' without ']' (use e.g. [::1]:1110)";
			return -1;
		}
		if (he[1] != ':') {
			*why_r = "has no ':port' after ']' (use e.g. "
			    "[::1]:1110)";
			return -1;
		}
		port = he + 2;
		v6 = true;
	} else {
		hs = text;
		if ((he = strchr(text, ':')) == NULL) {
			*why_r = "has no port (use host:port, e.g. "
			    "127.0.0.1:1110)";
			return -1;
		}
		port = he + 1;
		if (strchr(port, ':') != NULL) {
			*why_r = "is ambiguous (put an IPv6 address in "
			    "brackets, e.g. [::1]:1110)";
			return -1;
		}
	}
	hlen = (size_t)(he - hs);
	if (hlen == 0) {
		*why_r = "has no address (use * for every IPv4 address, "
		    "[::] for every IPv6 address)";
		return -1;
	}
	if (parse_u32(port, 65535, &pn) != PARSE_OK || pn == 0) {
		*why_r = "has no valid port (use 1 to 65535)";
		return -1;
	}
	if (hlen >= sizeof(host))
		goto badhost;
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t.addr;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
			*why_r = "has no valid IPv6 address in brackets";
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		t.addrlen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t.addr;

		if (strcmp(host, "*") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (strcasecmp(host, "localhost") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto badhost;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		t.addrlen = sizeof(*s4);
	}
	memcpy(t.text, text, len + 1);
	*l = t;
	return 0;
badhost:
	*why_r = "has no valid address (use a numeric IPv4 address, "
	    "[IPv6], * or localhost; names are not looked up)";
	return -1;
}

int
config_parse_listener(const char *text, struct listener_conf *l)
{
	const char *why;

	return listener_parse(text, l, &why);
}

/* The address octets, their length, and the port of a listener. */
static const uint8_t *
listener_addr(const struct listener_conf *l, size_t *len_r,
    unsigned int *port_r)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->addr;

	*port_r = addr_port(sa);
	if (sa->sa_family == AF_INET6) {
		*len_r = 16;
		return ((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr.s6_addr;
	}
	*len_r = 4;
	return (const uint8_t *)&((const struct sockaddr_in *)
	    (const void *)sa)->sin_addr;
}

static bool
all_zero(const uint8_t *a, size_t n)
{
	while (n-- > 0)
		if (*a++ != 0)
			return false;
	return true;
}

/*
 * 1: same address and port; 2: one is the wildcard of the other's family
 * on the same port, so the second bind() would fail; 0: independent.
 * IPv6 listeners are IPv6-only (listen_tcp), so [::] and * do not clash.
 */
static int
listener_clash(const struct listener_conf *a, const struct listener_conf *b)
{
	const uint8_t *aa, *ba;
	size_t alen, blen;
	unsigned int aport, bport;

	aa = listener_addr(a, &alen, &aport);
	ba = listener_addr(b, &blen, &bport);
	if (alen != blen || aport != bport)
		return 0;
	if (memcmp(aa, ba, alen) == 0)
		return 1;
	if (all_zero(aa, alen) || all_zero(ba, blen))
		return 2;
	return 0;
}

/*
 * "ADDRESS:PORT [tls=implicit|tls=starttls]".  A listener is named by its
 * address alone: the tls= word does not make a second socket on the same
 * port possible, so clashes are checked on the address.
 */
static int
set_listen(struct parse *p, const struct key *k, const char *value)
{
	struct config *c = p->c;
	struct listener_conf l;
	char addr[sizeof(l.text)];
	const char *why, *word;
	size_t i, alen, wlen;

	/* The first listen line replaces the two default listeners. */
	if (!p->listen_given) {
		c->n_listeners = 0;
		p->listen_given = true;
	}
	alen = strcspn(value, " \t");
	if (alen >= sizeof(addr)) {
		err_set(p, "%s: '%s' is too long", k->name, shown(p, value));
		return -1;
	}
	memcpy(addr, value, alen);
	addr[alen] = '\0';
	if (listener_parse(addr, &l, &why) == -1) {
		err_set(p, "%s: '%s' %s", k->name, shown(p, addr), why);
		return -1;
	}
	for (word = value + alen; is_blank(*word); word++)
		continue;
	if (*word != '\0') {
		wlen = strcspn(word, " \t");
		if (word[wlen] != '\0') {
			err_set(p, "%s: '%s' has more than one word after the "
			    "address (use e.g. *:995 tls=implicit)", k->name,
			    shown(p, value));
			return -1;
		}
		if (strcasecmp(word, "tls=implicit") == 0)
			l.tls = LISTEN_IMPLICIT;
		else if (strcasecmp(word, "tls=starttls") != 0) {
			err_set(p, "%s: '%s' after the address is not "
			    "understood (use tls=implicit or tls=starttls)",
			    k->name, shown(p, word));
			return -1;
		}
	}
	for (i = 0; i < c->n_listeners; i++) {
		int clash = listener_clash(&c->listeners[i], &l);

		if (clash == 1) {
			err_set(p, "%s: '%s' is already listed on line %u "
			    "(remove one of them)", k->name, shown(p, addr),
			    p->listen_line[i]);
			return -1;
		}
		if (clash == 2) {
			err_set(p, "%s: '%s' overlaps '%s' on line %u (a "
			    "wildcard address already covers every address "
			    "on that port; keep one of them)", k->name,
			    shown(p, addr), c->listeners[i].text,
			    p->listen_line[i]);
			return -1;
		}
	}
	if (c->n_listeners == MAX_LISTENERS) {
		err_set(p, "%s: more than %d listen lines (merge them with "
		    "a wildcard address such as *:110)", k->name,
		    MAX_LISTENERS);
		return -1;
	}
	p->listen_line[c->n_listeners] = p->line;
	c->listeners[c->n_listeners++] = l;
	return 0;
}

/* ---- paths and names ---------------------------------------------- */

static int
set_mail_root(struct parse *p, const struct key *k, const char *value)
{
	char tmp[MAX_PATH_LEN];
	size_t len = strlen(value);

	if (value[0] != '/') {
		err_set(p, "%s: '%s' is not an absolute path (use e.g. "
		    "/var/mail/postern)", k->name, shown(p, value));
		return -1;
	}
	if (len >= sizeof(tmp)) {
		err_set(p, "%s: the path is longer than %d bytes", k->name,
		    MAX_PATH_LEN - 1);
		return -1;
	}
	memcpy(tmp, value, len + 1);
	while (len > 1 && tmp[len - 1] == '/')
		tmp[--len] = '\0';
	return store_str(p, k, tmp);
}

/*
 * Checks the components of a relative path: none may be empty, "." or
 * "..".  Returns a reason, or NULL if it is fine.
 */
static const char *
bad_component(const char *s, size_t len)
{
	size_t i = 0, start;

	do {
		start = i;
		while (i < len && s[i] != '/')
			i++;
		if (i == start)
			return "an empty path component";
		if ((i - start == 1 && s[start] == '.') ||
		    (i - start == 2 && s[start] == '.' && s[start + 1] == '.'))
			return "a '.' or '..' component";
	} while (i++ < len);
	return NULL;
}

/*
 * The length of a mailbox format prefix, "mbox:" or "maildir:", at the
 * start of a mailbox_path template (0 if none); the store reads it from
 * the path config_mailbox_path returns.
 */
static size_t
format_prefix_len(const char *t)
{
	static const char *const prefixes[] = { "mbox:", "maildir:" };
	size_t i;

	for (i = 0; i < N_ELEMENTS(prefixes); i++)
		if (strncmp(t, prefixes[i], strlen(prefixes[i])) == 0)
			return strlen(prefixes[i]);
	return 0;
}

static int
set_mailbox_path(struct parse *p, const struct key *k, const char *value)
{
	const char *s, *why, *tmpl = value + format_prefix_len(value);
	bool user = false;

	if (tmpl[0] == '/') {
		err_set(p, "%s: '%s' must be relative to mail_root (remove "
		    "the leading '/')", k->name, shown(p, value));
		return -1;
	}
	if (strlen(value) >= MAX_PATH_LEN) {
		err_set(p, "%s: the template is longer than %d bytes",
		    k->name, MAX_PATH_LEN - 1);
		return -1;
	}
	for (s = tmpl; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		if (*s == 'u' || *s == 'n')
			user = true;
		else if (*s != 'd' && *s != '%') {
			if (*s == '\0')
				err_set(p, "%s: '%s' ends with a lone '%%' "
				    "(write %%%% for a '%%')", k->name,
				    shown(p, value));
			else
				err_set(p, "%s: '%s' uses '%%%c' (only %%u, "
				    "%%n, %%d and %%%% are allowed)", k->name,
				    shown(p, value), is_print((unsigned char)*s,
				    false) ? *s : '?');
			return -1;
		}
	}
	if ((why = bad_component(tmpl, strlen(tmpl))) != NULL) {
		err_set(p, "%s: '%s' has %s (write e.g. %%d/%%n)", k->name,
		    shown(p, value), why);
		return -1;
	}
	if (!user) {
		err_set(p, "%s: '%s' contains neither %%u nor %%n, so every "
		    "user would share one mailbox (use e.g. %%u or %%d/%%n)",
		    k->name, shown(p, value));
		return -1;
	}
	return store_str(p, k, value);
}

/*
 * A path as the file gives it, made absolute into out: a relative one is
 * taken against the directory that holds the config file.  0, or -1 with
 * the message set.
 */
static int
resolve_path(struct parse *p, const char *name, const char *value,
    char *out, size_t outsize)
{
	char dir[MAX_PATH_LEN], *real;
	const char *slash;

	if (value[0] == '/') {
		if (str_fmt(out, outsize, "%s", value) == -1) {
			err_set(p, "%s: the path is longer than %zu bytes",
			    name, outsize - 1);
			return -1;
		}
		return 0;
	}
	slash = strrchr(p->path, '/');
	if (slash == NULL)
		(void)snprintf(dir, sizeof(dir), ".");
	else if (slash == p->path)
		(void)snprintf(dir, sizeof(dir), "/");
	else if (str_fmt(dir, sizeof(dir), "%.*s", (int)(slash - p->path),
	    p->path) == -1) {
		err_set(p, "%s: the config path is too long", name);
		return -1;
	}
	if ((real = realpath(dir, NULL)) == NULL) {
		err_set(p, "%s: cannot resolve '%s' against the directory "
		    "of the config file: %s (give an absolute path)", name,
		    shown(p, value), strerror(errno));
		return -1;
	}
	if (str_fmt(out, outsize, "%s%s%s", real,
	    strcmp(real, "/") == 0 ? "" : "/", value) == -1) {
		free(real);
		err_set(p, "%s: the path is longer than %zu bytes", name,
		    outsize - 1);
		return -1;
	}
	free(real);
	return 0;
}

/* A file: user_db, tls_cert, tls_key, tls_client_ca.  Not opened here. */
static int
set_path(struct parse *p, const struct key *k, const char *value)
{
	char full[MAX_PATH_LEN];

	if (resolve_path(p, k->name, value, full, sizeof(full)) == -1)
		return -1;
	return store_str(p, k, full);
}

/*
 * A domain for tls_sni, lower-cased into out (DOMAIN_MAX + 1 bytes):
 * labels of letters, digits and '-', 1 to LABEL_MAX long, not starting or
 * ending with '-', joined by '.', at most DOMAIN_MAX in all, optionally
 * after "*." (a wildcard stands for exactly one label, RFC 6125 section
 * 6.4.3).  A client's SNI never ends with '.' (RFC 6066 section 3), so
 * neither may the domain.  NULL, or what is wrong.
 */
static const char *
sni_domain(const char *s, char *out)
{
	size_t len = strlen(s), i = 0, label = 0;

	if (len > DOMAIN_MAX)
		return "is longer than 253 characters";
	if (strncmp(s, "*.", 2) == 0) {
		out[0] = '*';
		out[1] = '.';
		i = 2;
	}
	if (s[i] == '\0')
		return "has no domain name";
	for (; i <= len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0)
				return "has an empty label (no leading, "
				    "trailing or double '.')";
			if (s[i - 1] == '-')
				return "has a label ending with '-'";
			label = 0;
		} else if (ch == '-') {
			if (label == 0)
				return "has a label starting with '-'";
			label++;
		} else if ((ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
			label++;
		else if (ch == '*')
			return "has a '*' that is not a leading \"*.\"";
		else
			return "has a character other than letters, digits, "
			    "'-' and '.'";
		if (label > LABEL_MAX)
			return "has a label longer than 63 characters";
		out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
	}
	return NULL;
}

/* One blank-separated word of *sp into out; false if there is none. */
static bool
next_word(const char **sp, char *out, size_t outsize, bool *long_r)
{
	const char *s = *sp;
	size_t len;

	while (is_blank(*s))
		s++;
	len = strcspn(s, " \t");
	*long_r = len >= outsize;
	if (len == 0)
		return false;
	if (!*long_r) {
		memcpy(out, s, len);
		out[len] = '\0';
	} else
		out[0] = '\0';
	*sp = s + len;
	return true;
}

/* "DOMAIN CERTFILE KEYFILE": one more certificate, chosen by SNI. */
static int
set_tls_sni(struct parse *p, const struct key *k, const char *value)
{
	struct config *c = p->c;
	struct tls_sni_conf *sc;
	char word[3][MAX_PATH_LEN], domain[DOMAIN_MAX + 1];
	char cert[MAX_PATH_LEN], keyf[MAX_PATH_LEN];
	const char *s = value, *why;
	bool too_long;
	size_t i, n;

	for (n = 0; n < 3; n++) {
		if (!next_word(&s, word[n], sizeof(word[n]), &too_long))
			break;
		if (too_long) {
			err_set(p, "%s: a word of the value is longer than %d "
			    "bytes", k->name, MAX_PATH_LEN - 1);
			return -1;
		}
	}
	while (is_blank(*s))
		s++;
	if (n < 3 || *s != '\0') {
		err_set(p, "%s: '%s' is not three words (use DOMAIN CERTFILE "
		    "KEYFILE, e.g. mail.example.org /etc/ssl/mail.pem "
		    "/etc/ssl/mail.key)", k->name, shown(p, value));
		return -1;
	}
	if ((why = sni_domain(word[0], domain)) != NULL) {
		err_set(p, "%s: the domain '%s' %s (use e.g. mail.example.org "
		    "or *.example.org)", k->name, shown(p, word[0]), why);
		return -1;
	}
	for (i = 0; i < c->n_tls_sni; i++)
		if (strcmp(c->tls_sni[i].domain, domain) == 0) {
			err_set(p, "%s: the domain '%s' is already listed on "
			    "line %u (remove one of them)", k->name, domain,
			    p->sni_line[i]);
			return -1;
		}
	if (c->n_tls_sni == MAX_TLS_SNI) {
		err_set(p, "%s: more than %d domains (use a certificate with "
		    "several names, or a wildcard)", k->name, MAX_TLS_SNI);
		return -1;
	}
	if (resolve_path(p, k->name, word[1], cert, sizeof(cert)) == -1 ||
	    resolve_path(p, k->name, word[2], keyf, sizeof(keyf)) == -1)
		return -1;
	sc = &c->tls_sni[c->n_tls_sni];
	sc->domain = strdup(domain);
	sc->cert = strdup(cert);
	sc->key = strdup(keyf);
	/* Counted at once, so that config_free() frees a partial entry. */
	p->sni_line[c->n_tls_sni++] = p->line;
	if (sc->domain == NULL || sc->cert == NULL || sc->key == NULL) {
		err_set(p, "%s: out of memory", k->name);
		return -1;
	}
	return 0;
}

/* "TLSv1.2" or "TLSv1.3": 12 or 13. */
static int
set_tls_version(struct parse *p, const struct key *k, const char *value)
{
	unsigned int *v = field(p, k);

	if (strcasecmp(value, "TLSv1.2") == 0)
		*v = 12;
	else if (strcasecmp(value, "TLSv1.3") == 0)
		*v = 13;
	else {
		err_set(p, "%s: '%s' is not a TLS version (use TLSv1.2 or "
		    "TLSv1.3)", k->name, shown(p, value));
		return -1;
	}
	return 0;
}

/*
 * An OpenSSL cipher list, kept as written: whether OpenSSL knows its
 * names is for the server to find out when it loads the certificates.
 */
static int
set_cipher_list(struct parse *p, const struct key *k, const char *value)
{
	const char *s;

	if (strlen(value) > TLS_CIPHERS_MAX) {
		err_set(p, "%s: the list is longer than %d characters",
		    k->name, TLS_CIPHERS_MAX);
		return -1;
	}
	for (s = value; *s != '\0'; s++)
		if (!is_print((unsigned char)*s, false)) {
			err_set(p, "%s: '%s' is not a cipher list (use "
			    "OpenSSL names separated by ':', printable ASCII "
			    "without spaces)", k->name, shown(p, value));
			return -1;
		}
	return store_str(p, k, value);
}

/* The portable user-name set of POSIX: letters, digits, '.', '_', '-'. */
static int
set_run_user(struct parse *p, const struct key *k, const char *value)
{
	size_t n = strspn(value, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	if (value[n] != '\0' || value[0] == '-' || n > RUN_USER_MAX) {
		err_set(p, "%s: '%s' is not a user name (use at most %d "
		    "letters, digits, '.', '_' or '-', not starting with "
		    "'-')", k->name, shown(p, value), RUN_USER_MAX);
		return -1;
	}
	return store_str(p, k, value);
}

static bool
hostname_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > HOSTNAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!is_print((unsigned char)*s, false) || *s == '<' ||
		    *s == '>' || *s == '@')
			return false;
	return true;
}

static int
set_hostname(struct parse *p, const struct key *k, const char *value)
{
	if (!hostname_ok(value)) {
		err_set(p, "%s: '%s' is not usable in the APOP timestamp (use "
		    "at most %d printable ASCII characters without spaces, "
		    "'<', '>' or '@', e.g. mail.example.org)", k->name,
		    shown(p, value), HOSTNAME_MAX);
		return -1;
	}
	return store_str(p, k, value);
}

static int
set_greeting(struct parse *p, const struct key *k, const char *value)
{
	const char *s;

	if (strlen(value) > GREETING_MAX) {
		err_set(p, "%s: the text is longer than %d characters "
		    "(shorten it)", k->name, GREETING_MAX);
		return -1;
	}
	for (s = value; *s != '\0'; s++)
		if (!is_print((unsigned char)*s, true)) {
			err_set(p, "%s: '%s' is not printable ASCII (use "
			    "plain ASCII text)", k->name, shown(p, value));
			return -1;
		}
	return store_str(p, k, value);
}

/* ---- LMTP ------------------------------------------------------------ */

/*
 * "unix:/absolute/path" or an address as for listen.  Non-loopback TCP
 * addresses are checked once the file is read (lmtp_allow_remote may
 * come later).
 */
static int
set_lmtp_listen(struct parse *p, const struct key *k, const char *value)
{
	struct config *c = p->c;
	struct lmtp_listen_conf l;
	struct listener_conf tl;
	const char *why;
	size_t i;

	memset(&l, 0, sizeof(l));
	if (strlen(value) >= sizeof(l.text)) {
		err_set(p, "%s: '%s' is too long", k->name, shown(p, value));
		return -1;
	}
	memcpy(l.text, value, strlen(value) + 1);
	if (strncmp(value, "unix:", 5) == 0) {
		const char *path = value + 5;

		if (path[0] != '/' || strlen(path) >= sizeof(l.path)) {
			err_set(p, "%s: '%s' wants an absolute socket path of "
			    "at most %zu bytes (use e.g. unix:/run/postern/"
			    "lmtp)", k->name, shown(p, value),
			    sizeof(l.path) - 1);
			return -1;
		}
		l.is_unix = true;
		memcpy(l.path, path, strlen(path) + 1);
	} else {
		if (listener_parse(value, &tl, &why) == -1) {
			err_set(p, "%s: '%s' %s (or use unix:/path)", k->name,
			    shown(p, value), why);
			return -1;
		}
		l.addr = tl.addr;
		l.addrlen = tl.addrlen;
	}
	for (i = 0; i < c->n_lmtp_listeners; i++)
		if (strcmp(c->lmtp_listeners[i].text, l.text) == 0) {
			err_set(p, "%s: '%s' is already listed on line %u "
			    "(remove one of them)", k->name, shown(p, value),
			    p->lmtp_line[i]);
			return -1;
		}
	if (c->n_lmtp_listeners == MAX_LMTP_LISTENERS) {
		err_set(p, "%s: more than %d lmtp_listen lines", k->name,
		    MAX_LMTP_LISTENERS);
		return -1;
	}
	p->lmtp_line[c->n_lmtp_listeners] = p->line;
	c->lmtp_listeners[c->n_lmtp_listeners++] = l;
	return 0;
}

/* An octal file mode, e.g. 0660, within the range of k. */
static int
set_mode(struct parse *p, const struct key *k, const char *value)
{
	unsigned long v = 0;
	const char *s;

	for (s = value; *s >= '0' && *s <= '7' && v <= k->max; s++)
		v = v * 8 + (unsigned long)(*s - '0');
	if (*s != '\0' || s == value || s - value > 4 || v > k->max) {
		err_set(p, "%s: '%s' is not an octal mode (use e.g. 0660)",
		    k->name, shown(p, value));
		return -1;
	}
	*(unsigned int *)field(p, k) = (unsigned int)v;
	return 0;
}

/* One character that separates a detail from the local part, or none. */
static int
set_delimiter(struct parse *p, const struct key *k, const char *value)
{
	char *dst = field(p, k);

	if (strcasecmp(value, "none") == 0) {
		*dst = '\0';
		return 0;
	}
	if (strlen(value) != 1 || strchr("+-_.=", value[0]) == NULL) {
		err_set(p, "%s: '%s' is not one of + - _ . = (or none)",
		    k->name, shown(p, value));
		return -1;
	}
	*dst = value[0];
	return 0;
}

/* TCP LMTP listeners off loopback need lmtp_allow_remote: LMTP has no
 * authentication. */
static int
check_lmtp(struct parse *p)
{
	const struct config *c = p->c;
	size_t i;

	for (i = 0; i < c->n_lmtp_listeners; i++) {
		const struct lmtp_listen_conf *l = &c->lmtp_listeners[i];

		if (l->is_unix || c->lmtp_allow_remote ||
		    addr_is_loopback((const struct sockaddr *)&l->addr))
			continue;
		p->line = p->lmtp_line[i];
		err_set(p, "lmtp_listen: '%s' is not a loopback address; "
		    "LMTP has no authentication, so anyone who reaches it "
		    "can deliver mail (use 127.0.0.1, [::1] or unix:, or set "
		    "lmtp_allow_remote = yes)", l->text);
		return -1;
	}
	return 0;
}

/* ---- numbers, durations, switches --------------------------------- */

static int
set_uint(struct parse *p, const struct key *k, const char *value)
{
	uint32_t v;

	switch (parse_u32(value, (uint32_t)k->max, &v)) {
	case PARSE_OK:
		if (v >= k->min)
			break;
		ATTR_FALLTHROUGH;
	case PARSE_RANGE:
		err_set(p, "%s: '%s' is out of range (use %" PRIu64 " to %"
		    PRIu64 ")", k->name, shown(p, value), k->min, k->max);
		return -1;
	case PARSE_SYNTAX:
	default:
		err_set(p, "%s: '%s' is not a number (use digits only, %"
		    PRIu64 " to %" PRIu64 ")", k->name, shown(p, value),
		    k->min, k->max);
		return -1;
	}
	*(unsigned int *)field(p, k) = v;
	return 0;
}

/* A duration within the range of k, in milliseconds. */
static int
parse_duration_key(struct parse *p, const struct key *k, const char *value,
    uint64_t *ms_r)
{
	char lo[32], hi[32];

	switch (parse_duration_ms(value, k->max, ms_r)) {
	case PARSE_OK:
		if (*ms_r >= k->min)
			return 0;
		ATTR_FALLTHROUGH;
	case PARSE_RANGE:
		err_set(p, "%s: '%s' is out of range (use %s to %s)", k->name,
		    shown(p, value), duration_str(k->min, lo, sizeof(lo)),
		    duration_str(k->max, hi, sizeof(hi)));
		return -1;
	case PARSE_SYNTAX:
	default:
		err_set(p, "%s: '%s' is not a duration (use e.g. 600, 10m, "
		    "1h)", k->name, shown(p, value));
		return -1;
	}
}

static int
set_duration(struct parse *p, const struct key *k, const char *value)
{
	uint64_t ms;

	if (parse_duration_key(p, k, value, &ms) == -1)
		return -1;
	*(uint64_t *)field(p, k) = ms;
	return 0;
}

/* A size in octets within the range of k: digits, then k, M or G. */
static int
set_size(struct parse *p, const struct key *k, const char *value)
{
	char lo[32], hi[32];
	uint64_t v;

	switch (parse_size(value, k->max, &v)) {
	case PARSE_OK:
		if (v >= k->min)
			break;
		ATTR_FALLTHROUGH;
	case PARSE_RANGE:
		err_set(p, "%s: '%s' is out of range (use %s to %s)", k->name,
		    shown(p, value), size_str(k->min, lo, sizeof(lo)),
		    size_str(k->max, hi, sizeof(hi)));
		return -1;
	case PARSE_SYNTAX:
	default:
		err_set(p, "%s: '%s' is not a size (use digits with k, M or G "
		    "for KiB, MiB or GiB, e.g. 256M or 1G)", k->name,
		    shown(p, value));
		return -1;
	}
	*(uint64_t *)field(p, k) = v;
	return 0;
}

static int
set_login_delay(struct parse *p, const struct key *k, const char *value)
{
	uint64_t ms;

	if (parse_duration_key(p, k, value, &ms) == -1)
		return -1;
	if (ms % 1000 != 0) {
		err_set(p, "%s: '%s' is not a whole number of seconds (use "
		    "e.g. 0, 90, 15m, 1h)", k->name, shown(p, value));
		return -1;
	}
	*(uint64_t *)field(p, k) = ms / 1000;
	return 0;
}

static int
set_expire(struct parse *p, const struct key *k, const char *value)
{
	uint64_t days;

	if (strcasecmp(value, "never") == 0) {
		*(int64_t *)field(p, k) = -1;
		return 0;
	}
	if (parse_u64(value, k->max, &days) != PARSE_OK) {
		err_set(p, "%s: '%s' is not 'never' or a number of days (use "
		    "never, or 0 to %" PRIu64 ")", k->name, shown(p, value),
		    k->max);
		return -1;
	}
	*(int64_t *)field(p, k) = (int64_t)days;
	return 0;
}

/*
 * yes/no, true/false, on/off: 1, 0, or -1 with a message.  Like every
 * keyword of the file (never, none, stderr, syslog), in any case.
 */
static int
parse_bool(struct parse *p, const struct key *k, const char *value)
{
	static const char *const words[][2] = {
		{ "yes", "no" }, { "true", "false" }, { "on", "off" },
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(words); i++) {
		if (strcasecmp(value, words[i][0]) == 0)
			return 1;
		if (strcasecmp(value, words[i][1]) == 0)
			return 0;
	}
	err_set(p, "%s: '%s' is not a boolean (use yes or no)", k->name,
	    shown(p, value));
	return -1;
}

static int
set_bool(struct parse *p, const struct key *k, const char *value)
{
	int v = parse_bool(p, k, value);

	if (v == -1)
		return -1;
	*(bool *)field(p, k) = v == 1;
	return 0;
}

static int
set_plaintext(struct parse *p, const struct key *k, const char *value)
{
	int v = parse_bool(p, k, value);

	if (v == -1)
		return -1;
	*(enum plaintext_policy *)field(p, k) = v == 1 ?
	    PLAINTEXT_LOOPBACK_ONLY : PLAINTEXT_ALLOWED;
	return 0;
}

static int
set_log(struct parse *p, const struct key *k, const char *value)
{
	bool *syslog_r = field(p, k);

	if (strcasecmp(value, "stderr") == 0)
		*syslog_r = false;
	else if (strcasecmp(value, "syslog") == 0)
		*syslog_r = true;
	else {
		err_set(p, "%s: '%s' is not a log target (use stderr or "
		    "syslog)", k->name, shown(p, value));
		return -1;
	}
	return 0;
}

/* Blank-separated CIDRs, or "none"; replaces the default list. */
static int
set_networks(struct parse *p, const struct key *k, const char *value)
{
	struct cidr nets[MAX_NETWORKS], *dst;
	size_t *n_dst;
	char tok[64];
	size_t n = 0, len;
	const char *s = value;

	if (strcmp(k->name, "trusted_networks") == 0) {
		dst = p->c->trusted_networks;
		n_dst = &p->c->n_trusted_networks;
	} else {
		dst = p->c->plaintext_networks;
		n_dst = &p->c->n_plaintext_networks;
	}
	if (strcasecmp(value, "none") == 0) {
		*n_dst = 0;
		return 0;
	}
	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		len = strcspn(s, " \t");
		if (n == MAX_NETWORKS) {
			err_set(p, "%s: more than %d networks (merge them into "
			    "larger ones)", k->name, MAX_NETWORKS);
			return -1;
		}
		if (len < sizeof(tok)) {
			memcpy(tok, s, len);
			tok[len] = '\0';
		} else
			tok[0] = '\0';		/* too long for any network */
		if (tok[0] == '\0' || cidr_parse(tok, &nets[n]) == -1) {
			err_set(p, "%s: '%s' is not a network (use e.g. "
			    "127.0.0.0/8 ::1/128 192.0.2.0/24, or none)",
			    k->name, shown(p, tok[0] != '\0' ? tok : s));
			return -1;
		}
		n++;
		s += len;
	}
	if (n == 0) {
		err_set(p, "%s: no network given (list some, or write none)",
		    k->name);
		return -1;
	}
	memcpy(dst, nets, n * sizeof(nets[0]));
	*n_dst = n;
	return 0;
}

/* ---- authentication ----------------------------------------------- */

static const char *const mech_names[MECH_COUNT] = {
	[MECH_SCRAM_SHA_256_PLUS] = "SCRAM-SHA-256-PLUS",
	[MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
	[MECH_SCRAM_SHA_1_PLUS] = "SCRAM-SHA-1-PLUS",
	[MECH_SCRAM_SHA_1] = "SCRAM-SHA-1",
	[MECH_OAUTHBEARER] = "OAUTHBEARER",
	[MECH_XOAUTH2] = "XOAUTH2",
	[MECH_EXTERNAL] = "EXTERNAL",
	[MECH_CRAM_MD5] = "CRAM-MD5",
	[MECH_PLAIN] = "PLAIN",
	[MECH_LOGIN] = "LOGIN",
};

const char *
config_mech_name(enum sasl_mech m)
{
	return (unsigned int)m < MECH_COUNT ? mech_names[m] : "?";
}

int
config_mech_find(const char *s)
{
	int i;

	for (i = 0; i < MECH_COUNT; i++)
		if (strcasecmp(s, mech_names[i]) == 0)
			return i;
	return -1;
}

/*
 * Calls fn for each blank-separated word of value (at most size - 1
 * octets each; a longer one is passed truncated with *toolong set).
 * Stops at the first -1.
 */
static int
each_word(struct parse *p, const struct key *k, const char *value,
    int (*fn)(struct parse *, const struct key *, const char *, void *),
    void *arg)
{
	char tok[256];
	bool toolong;

	while (next_word(&value, tok, sizeof(tok), &toolong)) {
		if (toolong) {
			err_set(p, "%s: '%s...' is too long", k->name,
			    shown(p, tok));
			return -1;
		}
		if (fn(p, k, tok, arg) == -1)
			return -1;
	}
	return 0;
}

static int
set_user_db_type(struct parse *p, const struct key *k, const char *value)
{
	enum userdb_type *t = field(p, k);

	if (strcasecmp(value, "passwd-file") == 0)
		*t = USERDB_PASSWD_FILE;
	else if (strcasecmp(value, "sqlite") == 0)
		*t = USERDB_SQLITE;
	else {
		err_set(p, "%s: '%s' is not a user database type (use "
		    "passwd-file or sqlite)", k->name, shown(p, value));
		return -1;
	}
	return 0;
}

static int
add_form(struct parse *p, const struct key *k, const char *w, void *arg)
{
	static const struct {
		const char	*name;
		unsigned int	 bit;
	} forms[] = {
		{ "crypt", PWFORM_CRYPT },
		{ "scram-sha-1", PWFORM_SCRAM_SHA1 },
		{ "scram-sha-256", PWFORM_SCRAM_SHA256 },
		{ "secret", PWFORM_SECRET },
	};
	unsigned int *bits = arg;
	size_t i;

	for (i = 0; i < N_ELEMENTS(forms); i++)
		if (strcasecmp(w, forms[i].name) == 0) {
			*bits |= forms[i].bit;
			return 0;
		}
	err_set(p, "%s: '%s' is not a password form (use crypt, "
	    "scram-sha-1, scram-sha-256 or secret)", k->name, shown(p, w));
	return -1;
}

static int
set_password_forms(struct parse *p, const struct key *k, const char *value)
{
	unsigned int bits = 0;

	if (each_word(p, k, value, add_form, &bits) == -1)
		return -1;
	if ((bits & ~PWFORM_SECRET) == 0) {
		err_set(p, "%s: name crypt or a scram form (a secret alone "
		    "would store only a plaintext-equivalent password)",
		    k->name);
		return -1;
	}
	*(unsigned int *)field(p, k) = bits;
	return 0;
}

static int
add_mech(struct parse *p, const struct key *k, const char *w, void *arg)
{
	unsigned int *bits = arg;
	int m = config_mech_find(w);

	if (m < 0) {
		err_set(p, "%s: '%s' is not a mechanism Postern knows (use "
		    "SCRAM-SHA-256-PLUS, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, "
		    "SCRAM-SHA-1, OAUTHBEARER, XOAUTH2, EXTERNAL, CRAM-MD5, "
		    "PLAIN, LOGIN, or none)", k->name, shown(p, w));
		return -1;
	}
	*bits |= MECH_BIT(m);
	return 0;
}

static int
set_mechanisms(struct parse *p, const struct key *k, const char *value)
{
	unsigned int bits = 0;

	if (strcasecmp(value, "none") != 0 &&
	    each_word(p, k, value, add_mech, &bits) == -1)
		return -1;
	*(unsigned int *)field(p, k) = bits;
	return 0;
}

static int
add_master(struct parse *p, const struct key *k, const char *w, void *arg)
{
	struct config *c = p->c;
	size_t i;

	if (!username_ok(w)) {
		err_set(p, "%s: '%s' is not a user name", k->name,
		    shown(p, w));
		return -1;
	}
	for (i = 0; i < c->n_master_users; i++)
		if (strcmp(c->master_users[i], w) == 0)
			return 0;
	if (c->n_master_users == MAX_MASTER_USERS) {
		err_set(p, "%s: more than %d master users", k->name,
		    MAX_MASTER_USERS);
		return -1;
	}
	if ((c->master_users[c->n_master_users] = strdup(w)) == NULL) {
		err_set(p, "out of memory");
		return -1;
	}
	c->n_master_users++;
	return 0;
}

static int
set_master_users(struct parse *p, const struct key *k, const char *value)
{
	size_t i;

	for (i = 0; i < p->c->n_master_users; i++)
		free(p->c->master_users[i]);
	p->c->n_master_users = 0;
	if (strcasecmp(value, "none") == 0)
		return 0;
	return each_word(p, k, value, add_master, NULL);
}

static int
set_external_user(struct parse *p, const struct key *k, const char *value)
{
	enum external_user *e = field(p, k);

	if (strcasecmp(value, "cn") == 0)
		*e = EXTERNAL_USER_CN;
	else if (strcasecmp(value, "email") == 0)
		*e = EXTERNAL_USER_EMAIL;
	else {
		err_set(p, "%s: '%s' is not a certificate field (use cn or "
		    "email)", k->name, shown(p, value));
		return -1;
	}
	return 0;
}

/* "ISSUER KEYFILE": the exact iss value, then its public key. */
static int
set_oauth_issuer(struct parse *p, const struct key *k, const char *value)
{
	struct config *c = p->c;
	struct oauth_issuer_conf *o;
	char iss[512], file[MAX_PATH_LEN], full[MAX_PATH_LEN], extra[8];
	const char *s = value;
	bool l1, l2, l3;
	size_t i;

	if (!next_word(&s, iss, sizeof(iss), &l1) ||
	    !next_word(&s, file, sizeof(file), &l2) || l1 || l2 ||
	    next_word(&s, extra, sizeof(extra), &l3)) {
		err_set(p, "%s: use 'ISSUER KEYFILE', e.g. oauth_issuer = "
		    "https://id.example.org /etc/postern/idp.pem", k->name);
		return -1;
	}
	for (i = 0; i < c->n_oauth_issuers; i++)
		if (strcmp(c->oauth_issuers[i].issuer, iss) == 0) {
			err_set(p, "%s: issuer '%s' is already given on line "
			    "%u", k->name, shown(p, iss), p->issuer_line[i]);
			return -1;
		}
	if (c->n_oauth_issuers == MAX_OAUTH_ISSUERS) {
		err_set(p, "%s: more than %d issuers", k->name,
		    MAX_OAUTH_ISSUERS);
		return -1;
	}
	if (resolve_path(p, k->name, file, full, sizeof(full)) == -1)
		return -1;
	o = &c->oauth_issuers[c->n_oauth_issuers];
	o->issuer = strdup(iss);
	o->key = strdup(full);
	if (o->issuer == NULL || o->key == NULL) {
		free(o->issuer);
		free(o->key);
		o->issuer = o->key = NULL;
		err_set(p, "out of memory");
		return -1;
	}
	p->issuer_line[c->n_oauth_issuers++] = p->line;
	return 0;
}

/* One word of printable ASCII. */
static int
set_word(struct parse *p, const struct key *k, const char *value)
{
	const char *s;

	if (strlen(value) > 255) {
		err_set(p, "%s: the value is longer than 255 characters",
		    k->name);
		return -1;
	}
	for (s = value; *s != '\0'; s++)
		if (!is_print((unsigned char)*s, false)) {
			err_set(p, "%s: '%s' must be one word of printable "
			    "ASCII", k->name, shown(p, value));
			return -1;
		}
	return store_str(p, k, value);
}

/* ---- XTND XMIT ---------------------------------------------------- */

static int
set_xmit_tls(struct parse *p, const struct key *k, const char *value)
{
	enum xmit_tls *t = field(p, k);

	if (strcasecmp(value, "always") == 0) {
		*t = XMIT_TLS_ALWAYS;
		return 0;
	}
	switch (parse_bool(p, k, value)) {
	case 1:
		*t = XMIT_TLS_UNLESS_LOOPBACK;
		return 0;
	case 0:
		*t = XMIT_TLS_NEVER;
		return 0;
	default:
		err_set(p, "%s: '%s' is not yes, always or no", k->name,
		    shown(p, value));
		return -1;
	}
}

static int
add_xmit_domain(struct parse *p, const struct key *k, const char *word,
    void *arg)
{
	struct config *c = p->c;
	char *d;
	size_t i;

	if (word[0] == '.' || word[0] == '-' || strchr(word, '@') != NULL ||
	    strstr(word, "..") != NULL || !hostname_ok(word)) {
		err_set(p, "%s: '%s' is not a domain (use e.g. example.org)",
		    k->name, shown(p, word));
		return -1;
	}
	if (c->n_xmit_domains == MAX_XMIT_DOMAINS) {
		err_set(p, "%s: more than %d domains", k->name,
		    MAX_XMIT_DOMAINS);
		return -1;
	}
	if ((d = strdup(word)) == NULL) {
		err_set(p, "%s: out of memory", k->name);
		return -1;
	}
	for (i = 0; d[i] != '\0'; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	c->xmit_domains[c->n_xmit_domains++] = d;
	return 0;
}

/* One or more domains on a line; the key may repeat. */
static int
set_xmit_domains(struct parse *p, const struct key *k, const char *value)
{
	return each_word(p, k, value, add_xmit_domain, NULL);
}

static void
free_xmit_argv(struct config *c)
{
	size_t i;

	for (i = 0; i < c->n_xmit_argv && i < XMIT_MAX_COMMAND_WORDS; i++)
		free(c->xmit_argv[i]);
	memset(c->xmit_argv, 0, sizeof(c->xmit_argv));
	c->n_xmit_argv = 0;
}

static int
add_xmit_word(struct parse *p, const struct key *k, const char *word,
    void *arg)
{
	struct config *c = p->c;

	if (c->n_xmit_argv == 0 && word[0] != '/') {
		err_set(p, "%s: '%s' is not an absolute path (use e.g. "
		    "/usr/sbin/sendmail -i)", k->name, shown(p, word));
		return -1;
	}
	/* The recipients are arguments; -t would take them from the
	 * header, where the Bcc field no longer is. */
	if (strcmp(word, "-t") == 0) {
		err_set(p, "%s: remove -t: posternd gives the recipients as "
		    "arguments (see postern.conf(5))", k->name);
		return -1;
	}
	if (c->n_xmit_argv == XMIT_MAX_COMMAND_WORDS) {
		err_set(p, "%s: more than %d words", k->name,
		    XMIT_MAX_COMMAND_WORDS);
		return -1;
	}
	if ((c->xmit_argv[c->n_xmit_argv] = strdup(word)) == NULL) {
		err_set(p, "%s: out of memory", k->name);
		return -1;
	}
	c->n_xmit_argv++;
	return 0;
}

/* Words split at spaces and tabs, never through a shell. */
static int
set_xmit_command(struct parse *p, const struct key *k, const char *value)
{
	free_xmit_argv(p->c);
	if (each_word(p, k, value, add_xmit_word, NULL) == -1)
		return -1;
	return 0;
}

/* "HOST:PORT", "[IPv6]:PORT", or "none" (use xmit_command). */
static int
set_xmit_relay(struct parse *p, const struct key *k, const char *value)
{
	struct config *c = p->c;
	char host[HOSTNAME_MAX + 1];
	const char *colon, *h = value, *port;
	size_t hlen;
	uint32_t n;

	free(c->xmit_relay_host);
	free(c->xmit_relay_port);
	c->xmit_relay_host = c->xmit_relay_port = NULL;
	if (strcasecmp(value, "none") == 0)
		return 0;
	colon = strrchr(value, ':');
	if (value[0] == '[') {
		const char *rb = strchr(value, ']');

		if (rb == NULL || rb[1] != ':')
			goto bad;
		h = value + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else if (colon == NULL)
		goto bad;
	else
		hlen = (size_t)(colon - value);
	port = colon + 1;
	if (hlen == 0 || hlen > HOSTNAME_MAX ||
	    parse_u32(port, 65535, &n) != PARSE_OK || n == 0)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (!hostname_ok(host) || host[0] == '-')
		goto bad;
	c->xmit_relay_host = strdup(host);
	c->xmit_relay_port = strdup(port);
	if (c->xmit_relay_host == NULL || c->xmit_relay_port == NULL) {
		err_set(p, "%s: out of memory", k->name);
		return -1;
	}
	return 0;
bad:
	err_set(p, "%s: '%s' is not HOST:PORT (use e.g. 127.0.0.1:25, "
	    "[::1]:587 or none)", k->name, shown(p, value));
	return -1;
}

/* ---- the file ----------------------------------------------------- */

/* Levenshtein distance of two short names, for "did you mean". */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t row[KEY_NAME_MAX + 1];
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > KEY_NAME_MAX || lb > KEY_NAME_MAX)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void
err_unknown_key(struct parse *p, const char *name)
{
	const char *best = NULL;
	size_t i, d, bestd = 3;

	for (i = 0; i < N_ELEMENTS(keys); i++)
		if ((d = edit_distance(name, keys[i].name)) < bestd) {
			bestd = d;
			best = keys[i].name;
		}
	if (best != NULL)
		err_set(p, "unknown key '%s' (did you mean '%s'?)",
		    shown(p, name), best);
	else
		err_set(p, "unknown key '%s' (see postern.conf(5) for the "
		    "keys)", shown(p, name));
}

/* One line, without its line end, NUL-terminated; modified in place. */
static int
parse_line(struct parse *p, char *line)
{
	const struct key *k;
	char *s = line, *name, *name_end, *value, *end;
	size_t i, len;

	while (is_blank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	name = s;
	while (*s != '\0' && *s != '=' && !is_blank(*s))
		s++;
	name_end = s;
	while (is_blank(*s))
		s++;
	if (name_end == name) {
		err_set(p, "missing key name before '=' (write key = value)");
		return -1;
	}
	if (*s != '=') {
		*name_end = '\0';
		err_set(p, "missing '=' after '%s' (write key = value; only "
		    "lines starting with '#' are comments)", shown(p, name));
		return -1;
	}
	value = s + 1;
	*name_end = '\0';
	for (i = 0; i < N_ELEMENTS(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			break;
	if (i == N_ELEMENTS(keys)) {
		err_unknown_key(p, name);
		return -1;
	}
	k = &keys[i];

	while (is_blank(*value))
		value++;
	len = strlen(value);
	while (len > 0 && is_blank(value[len - 1]))
		value[--len] = '\0';
	for (end = value; *end != '\0'; end++) {
		unsigned char ch = (unsigned char)*end;

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			err_set(p, "%s: the value contains a control character "
			    "(remove it)", k->name);
			return -1;
		}
	}
	if (value[0] == '"') {
		if (len < 2 || value[len - 1] != '"') {
			err_set(p, "%s: the quoted value has no closing '\"' "
			    "(end the line with '\"')", k->name);
			return -1;
		}
		value[len - 1] = '\0';
		value++;
	}
	if (value[0] == '\0' && !(k->flags & KEY_EMPTY_OK)) {
		err_set(p, "%s: the value is empty (give one, or remove the "
		    "line to keep the default)", k->name);
		return -1;
	}
	if (p->seen[i] != 0 && !(k->flags & KEY_REPEAT)) {
		err_set(p, "%s: already set on line %u (only listen and "
		    "tls_sni may repeat; remove one of them)", k->name,
		    p->seen[i]);
		return -1;
	}
	p->seen[i] = p->line;
	return k->set(p, k, value);
}

static int
parse_text(struct parse *p, const char *text, size_t len)
{
	char line[CONFIG_MAX_LINE + 1];
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		size_t n = end - pos;

		p->line++;
		if (memchr(text + pos, '\0', n) != NULL) {
			err_set(p, "the line contains a NUL byte (the file "
			    "must be plain text)");
			return -1;
		}
		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE) {
			err_set(p, "the line is longer than %d bytes "
			    "(shorten it)", CONFIG_MAX_LINE);
			return -1;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (parse_line(p, line) == -1)
			return -1;
		pos = end + 1;
	}
	return 0;
}

static unsigned int
seen_line(const struct parse *p, const char *name)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return p->seen[i];
	return 0;
}

/*
 * The TLS keys that need each other (TLS.md), then the default implicit
 * TLS listeners.  Each error names the line of the key that is wrong
 * without the other.
 */
static int
check_tls(struct parse *p)
{
	struct config *c = p->c;
	size_t i;

	if (c->tls_cert != NULL && c->tls_key == NULL) {
		p->line = seen_line(p, "tls_cert");
		err_set(p, "tls_cert is set but tls_key is not (add tls_key = "
		    "the file with the certificate's private key)");
		return -1;
	}
	if (c->tls_key != NULL && c->tls_cert == NULL) {
		p->line = seen_line(p, "tls_key");
		err_set(p, "tls_key is set but tls_cert is not (add tls_cert "
		    "= the certificate file, or remove tls_key)");
		return -1;
	}
	for (i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].tls == LISTEN_IMPLICIT &&
		    c->tls_cert == NULL) {
			p->line = p->listen_line[i];
			err_set(p, "listen: '%s' has tls=implicit but no "
			    "tls_cert is set (add tls_cert and tls_key, or "
			    "remove tls=implicit)", c->listeners[i].text);
			return -1;
		}
	if (c->n_tls_sni > 0 && c->tls_cert == NULL) {
		p->line = p->sni_line[0];
		err_set(p, "tls_sni needs tls_cert (add tls_cert and tls_key "
		    "for clients that send no or another name)");
		return -1;
	}
	if (c->tls_client_cert && c->tls_client_ca == NULL) {
		p->line = seen_line(p, "tls_client_cert");
		err_set(p, "tls_client_cert is yes but tls_client_ca is not "
		    "set (add tls_client_ca = the CA certificates to verify "
		    "client certificates with)");
		return -1;
	}
	if (!p->listen_given && c->tls_cert != NULL) {
		p->line = 0;
		if (config_parse_listener("*:" DEFAULT_TLS_PORT,
		    &c->listeners[c->n_listeners]) == -1 ||
		    config_parse_listener("[::]:" DEFAULT_TLS_PORT,
		    &c->listeners[c->n_listeners + 1]) == -1)
			panic("config: built-in defaults do not parse");
		c->listeners[c->n_listeners++].tls = LISTEN_IMPLICIT;
		c->listeners[c->n_listeners++].tls = LISTEN_IMPLICIT;
	}
	return 0;
}

/* Checks that involve more than one key, once the file is read. */
static int
check_whole(struct parse *p)
{
	const struct config *c = p->c;
	unsigned int a, b;
	char d1[32], d2[32];

	if (c->auth_fail_delay_ms > c->auth_fail_delay_max_ms) {
		a = seen_line(p, "auth_fail_delay");
		b = seen_line(p, "auth_fail_delay_max");
		p->line = a > b ? a : b;
		err_set(p, "auth_fail_delay (%s) is longer than "
		    "auth_fail_delay_max (%s) (lower the first or raise the "
		    "second)", duration_str(c->auth_fail_delay_ms, d1,
		    sizeof(d1)), duration_str(c->auth_fail_delay_max_ms, d2,
		    sizeof(d2)));
		return -1;
	}
	if (c->n_oauth_issuers > 0 && c->oauth_audience == NULL) {
		p->line = p->issuer_line[0];
		err_set(p, "oauth_issuer needs oauth_audience (add "
		    "oauth_audience = the aud value tokens for this server "
		    "carry)");
		return -1;
	}
	if (check_lmtp(p) == -1)
		return -1;
	if (c->xmit_relay_starttls && c->xmit_relay_host == NULL) {
		p->line = seen_line(p, "xmit_relay_starttls");
		err_set(p, "xmit_relay_starttls needs xmit_relay (set the "
		    "relay's HOST:PORT)");
		return -1;
	}
	return check_tls(p);
}

/* The defaults, or -1 (ENOMEM) with c freed. */
static int
defaults(struct config *c)
{
	char host[HOSTNAME_MAX + 1];

	memset(c, 0, sizeof(*c));
	if (config_parse_listener("*:" DEFAULT_PORT, &c->listeners[0]) == -1 ||
	    config_parse_listener("[::]:" DEFAULT_PORT,
	    &c->listeners[1]) == -1 ||
	    cidr_parse("127.0.0.0/8", &c->plaintext_networks[0]) == -1 ||
	    cidr_parse("::1/128", &c->plaintext_networks[1]) == -1)
		panic("config: built-in defaults do not parse");
	c->n_listeners = 2;
	c->n_plaintext_networks = 2;
	c->n_trusted_networks = 0;
	c->user_db_type = USERDB_PASSWD_FILE;
	c->password_forms = PWFORM_CRYPT | PWFORM_SCRAM_SHA1 |
	    PWFORM_SCRAM_SHA256;
	c->scram_iterations = DEFAULT_SCRAM_ITERATIONS;
	c->max_connections_per_user = DEFAULT_MAX_CONNECTIONS_PER_USER;
	c->lmtp_socket_mode = DEFAULT_LMTP_SOCKET_MODE;
	c->lmtp_max_connections = DEFAULT_LMTP_MAX_CONNECTIONS;
	c->lmtp_max_recipients = DEFAULT_LMTP_MAX_RECIPIENTS;
	c->lmtp_max_line_length = DEFAULT_LMTP_MAX_LINE_LENGTH;
	c->lmtp_idle_timeout_ms = DEFAULT_LMTP_IDLE_TIMEOUT_SEC * 1000ull;
	c->restart_interval_ms = RESTART_MIN_INTERVAL_MS;
	c->mechanisms = (1u << MECH_COUNT) - 1;
	c->max_sasl_line_length = DEFAULT_MAX_SASL_LINE_LENGTH;
	c->external_user = EXTERNAL_USER_CN;

	c->workers = 0;
	c->auth_workers = DEFAULT_AUTH_WORKERS;
	c->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_SEC * 1000ull;
	c->max_connections = DEFAULT_MAX_CONNECTIONS;
	c->max_connections_per_ip = DEFAULT_MAX_CONNECTIONS_PER_IP;
	c->max_line_length = DEFAULT_MAX_LINE_LENGTH;
	c->max_pipelined_commands = DEFAULT_MAX_PIPELINED_COMMANDS;
	c->session_memory_limit = DEFAULT_SESSION_MEMORY_LIMIT;
	c->index_cache_size = DEFAULT_INDEX_CACHE_SIZE;
	c->deliver_max_size = DEFAULT_DELIVER_MAX_SIZE;
	c->max_bad_commands = DEFAULT_MAX_BAD_COMMANDS;
	c->max_auth_failures = DEFAULT_MAX_AUTH_FAILURES;
	c->auth_fail_delay_ms = DEFAULT_AUTH_FAIL_DELAY_MS;
	c->auth_fail_delay_max_ms = DEFAULT_AUTH_FAIL_DELAY_MAX_MS;
	c->lock_session = false;
	c->mbox_lock_timeout_ms = DEFAULT_MBOX_LOCK_TIMEOUT_MS;
	c->mbox_dotlock_stale_ms = DEFAULT_MBOX_DOTLOCK_STALE_SEC * 1000ull;
	c->expire_days = -1;
	c->login_delay_s = 0;
	c->uidl_guard_share = DEFAULT_UIDL_GUARD_SHARE;
	c->uidl_guard_min = DEFAULT_UIDL_GUARD_MIN;
	c->plaintext = PLAINTEXT_LOOPBACK_ONLY;
	c->apop = false;
	c->log_syslog = false;
	c->log_debug = false;
	c->tls_min_version = DEFAULT_TLS_MIN_VERSION;
	c->tls_client_cert = false;
	c->tls_handshake_timeout_ms = DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
	c->xmit = false;
	c->xmit_require_tls = XMIT_TLS_UNLESS_LOOPBACK;
	c->xmit_check_from = true;
	c->xmit_max_size = DEFAULT_XMIT_MAX_SIZE;
	c->xmit_max_recipients = DEFAULT_XMIT_MAX_RECIPIENTS;
	c->xmit_max_per_hour = DEFAULT_XMIT_MAX_PER_HOUR;
	c->xmit_timeout_ms = DEFAULT_XMIT_TIMEOUT_MS;
	c->xmit_argv[0] = strdup(DEFAULT_XMIT_COMMAND);
	c->xmit_argv[1] = strdup(DEFAULT_XMIT_COMMAND_ARG);
	c->n_xmit_argv = 2;
	if (c->xmit_argv[0] == NULL || c->xmit_argv[1] == NULL) {
		config_free(c);
		errno = ENOMEM;
		return -1;
	}

	if (gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	if (!hostname_ok(host))
		(void)snprintf(host, sizeof(host), "%s", DEFAULT_HOSTNAME);

	c->path = strdup("");
	c->mail_root = strdup(DEFAULT_MAIL_ROOT);
	c->mailbox_path = strdup(DEFAULT_MAILBOX_PATH);
	c->user_db = strdup(DEFAULT_USER_DB);
	c->mail_user = strdup(DEFAULT_RUN_USER);
	c->auth_user = strdup(DEFAULT_RUN_USER);
	c->hostname = strdup(host);
	c->greeting = strdup(DEFAULT_GREETING);
	c->tls_ciphers = strdup(DEFAULT_TLS_CIPHERS);
	c->tls_ciphersuites = strdup(DEFAULT_TLS_CIPHERSUITES);
	c->oauth_user_claim = strdup(DEFAULT_OAUTH_USER_CLAIM);
	if (c->oauth_user_claim == NULL || c->path == NULL || c->mail_root == NULL ||
	    c->mailbox_path == NULL || c->user_db == NULL ||
	    c->mail_user == NULL || c->auth_user == NULL ||
	    c->hostname == NULL || c->greeting == NULL ||
	    c->tls_ciphers == NULL || c->tls_ciphersuites == NULL) {
		config_free(c);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void
config_defaults(struct config *c)
{
	if (defaults(c) == -1)
		fatal("config defaults");
}

int
config_load(const char *path, struct config *c, char *err, size_t errsize)
{
	struct parse p;
	struct buf b;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	p.c = c;
	p.path = path;
	p.err = err;
	p.errsize = errsize;
	if (err != NULL && errsize > 0)
		err[0] = '\0';
	if (defaults(c) == -1) {
		err_set(&p, "out of memory");
		return -1;
	}
	free(c->path);
	if ((c->path = strdup(path)) == NULL) {
		err_set(&p, "out of memory");
		config_free(c);
		return -1;
	}
	buf_init(&b, CONFIG_MAX_BYTES);
	if (read_file(path, CONFIG_MAX_BYTES, &b) == -1) {
		if (errno == EFBIG || errno == EMSGSIZE)
			err_set(&p, "the file is larger than %d bytes",
			    CONFIG_MAX_BYTES);
		else if (errno == EINVAL)
			err_set(&p, "not a regular file");
		else
			err_set(&p, "cannot read: %s", strerror(errno));
	} else if (parse_text(&p, b.data, b.len) == 0 &&
	    check_whole(&p) == 0)
		rc = 0;
	buf_clear(&b);
	if (rc == -1)
		config_free(c);
	return rc;
}

/* ---- mailboxes ---------------------------------------------------- */

/*
 * A user name that can only name a mailbox under mail_root: 1 to
 * MAX_USERNAME_LEN bytes, no '/', no spaces or control characters, not
 * starting with '.', no "..".
 */
static bool
username_ok(const char *user)
{
	size_t len = strlen(user), i;

	if (len == 0 || len > MAX_USERNAME_LEN || user[0] == '.' ||
	    strstr(user, "..") != NULL)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)user[i];

		if (ch <= 0x20 || ch == 0x7f || ch == '/')
			return false;
	}
	return true;
}

int
config_mailbox_path(const struct config *c, const char *user, char *out,
    size_t outsize)
{
	char rel[MAX_PATH_LEN];
	const char *t, *at, *ins, *dom;
	size_t ulen, nlen, dlen, ilen, plen, rlen = 0;

	if (c->mail_root == NULL || c->mailbox_path == NULL ||
	    !username_ok(user)) {
		errno = EINVAL;
		return -1;
	}
	ulen = strlen(user);
	at = strrchr(user, '@');
	nlen = at != NULL ? (size_t)(at - user) : ulen;
	dom = at != NULL ? at + 1 : user + ulen;
	dlen = strlen(dom);
	plen = format_prefix_len(c->mailbox_path);

	for (t = c->mailbox_path + plen; *t != '\0'; t++) {
		if (*t != '%') {
			ins = t;
			ilen = 1;
		} else {
			switch (*++t) {
			case 'u':
				ins = user;
				ilen = ulen;
				break;
			case 'n':
				ins = user;
				ilen = nlen;
				break;
			case 'd':
				ins = dom;
				ilen = dlen;
				/* "%d/%n" for "bob" is "bob", not "/bob". */
				if (dlen == 0 && t[1] == '/')
					t++;
				break;
			case '%':
				ins = t;
				ilen = 1;
				break;
			default:
				/* config_load refuses such templates. */
				errno = EINVAL;
				return -1;
			}
		}
		if (ilen >= sizeof(rel) - rlen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(rel + rlen, ins, ilen);
		rlen += ilen;
	}
	rel[rlen] = '\0';
	/* "@example.org" under "%d/%n" would name the domain directory. */
	if (rlen == 0 || bad_component(rel, rlen) != NULL) {
		errno = EINVAL;
		return -1;
	}
	return str_fmt(out, outsize, "%.*s%s%s%s", (int)plen, c->mailbox_path,
	    c->mail_root, strcmp(c->mail_root, "/") == 0 ? "" : "/", rel);
}

void
config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < c->n_tls_sni && i < MAX_TLS_SNI; i++) {
		free(c->tls_sni[i].domain);
		free(c->tls_sni[i].cert);
		free(c->tls_sni[i].key);
	}
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ciphers);
	free(c->tls_ciphersuites);
	free(c->tls_client_ca);
	for (i = 0; i < c->n_master_users && i < MAX_MASTER_USERS; i++)
		free(c->master_users[i]);
	for (i = 0; i < c->n_oauth_issuers && i < MAX_OAUTH_ISSUERS; i++) {
		free(c->oauth_issuers[i].issuer);
		free(c->oauth_issuers[i].key);
	}
	free(c->oauth_audience);
	free(c->oauth_user_claim);
	for (i = 0; i < c->n_xmit_domains && i < MAX_XMIT_DOMAINS; i++)
		free(c->xmit_domains[i]);
	free_xmit_argv(c);
	free(c->xmit_relay_host);
	free(c->xmit_relay_port);
	free(c->xmit_relay_ca);
	free(c->path);
	free(c->mail_root);
	free(c->mailbox_path);
	free(c->user_db);
	free(c->mail_user);
	free(c->auth_user);
	free(c->hostname);
	free(c->greeting);
	memset(c, 0, sizeof(*c));
}
