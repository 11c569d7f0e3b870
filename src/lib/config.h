/*
 * config.h: postern.conf, parsed into one struct.  Every limit of
 * limits.h that a site may want to change is a field here.
 *
 * The file is "key = value" lines; '#' starts a comment at the beginning
 * of a line; blank lines are ignored; "listen" may repeat.  See
 * postern.conf(5).
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attrs.h"
#include "limits.h"
#include "net.h"

enum listener_tls {
	/* Plain POP3; STLS is offered when a certificate is configured. */
	LISTEN_STARTTLS = 0,
	/* TLS from the first octet (RFC 8314), "tls=implicit". */
	LISTEN_IMPLICIT,
};

struct listener_conf {
	char			text[128];	/* address as written, e.g.
						 * "[::1]:1110" (without the
						 * tls= word) */
	struct sockaddr_storage	addr;
	socklen_t		addrlen;
	enum listener_tls	tls;
};

/* An LMTP listener: "unix:/path" or a TCP address as for listen. */
struct lmtp_listen_conf {
	char			text[128];	/* as written */
	bool			is_unix;
	char			path[108];	/* unix: sun_path */
	struct sockaddr_storage	addr;		/* TCP */
	socklen_t		addrlen;
};

/* A certificate chosen by SNI for one domain (and its subdomains when
 * written "*.example.org"). */
struct tls_sni_conf {
	char			*domain;	/* lower case */
	char			*cert;		/* PEM: certificate, then chain */
	char			*key;		/* PEM private key */
};

enum plaintext_policy {
	/* USER/PASS only over TLS or from plaintext_networks (the
	 * default, disable_plaintext_auth = yes). */
	PLAINTEXT_LOOPBACK_ONLY,
	/* USER/PASS everywhere (disable_plaintext_auth = no). */
	PLAINTEXT_ALLOWED,
};

/* Where users live (postern.conf(5) user_db_type). */
enum userdb_type {
	USERDB_PASSWD_FILE = 0,
	USERDB_SQLITE,
};

/* The forms of a password `postern user add|passwd` writes (bits). */
#define PWFORM_CRYPT		0x01	/* a crypt(3) hash for USER/PASS */
#define PWFORM_SCRAM_SHA1	0x02	/* SCRAM-SHA-1 salt and keys */
#define PWFORM_SCRAM_SHA256	0x04	/* SCRAM-SHA-256 salt and keys */
#define PWFORM_SECRET		0x08	/* plaintext-equivalent (APOP,
					 * CRAM-MD5) */

/* SASL mechanisms (RFC 5034), in the order CAPA lists them. */
enum sasl_mech {
	MECH_SCRAM_SHA_256_PLUS = 0,
	MECH_SCRAM_SHA_256,
	MECH_SCRAM_SHA_1_PLUS,
	MECH_SCRAM_SHA_1,
	MECH_OAUTHBEARER,
	MECH_XOAUTH2,
	MECH_EXTERNAL,
	MECH_CRAM_MD5,
	MECH_PLAIN,
	MECH_LOGIN,
	MECH_COUNT
};
#define MECH_BIT(m)	(1u << (m))

/* The mechanism's name as on the wire, e.g. "SCRAM-SHA-256-PLUS". */
const char *config_mech_name(enum sasl_mech);
/* The mechanism named s (any case), or -1. */
int	config_mech_find(const char *s);

/* Which certificate field names the user of SASL EXTERNAL. */
enum external_user {
	EXTERNAL_USER_CN = 0,	/* the subject's commonName */
	EXTERNAL_USER_EMAIL,	/* the first rfc822Name subjectAltName */
};

/* A trusted token issuer for OAUTHBEARER and XOAUTH2. */
struct oauth_issuer_conf {
	char			*issuer;	/* the exact "iss" value */
	char			*key;		/* PEM public key or cert */
};

/* When XTND XMIT needs TLS (xmit_require_tls). */
enum xmit_tls {
	XMIT_TLS_UNLESS_LOOPBACK = 0,	/* yes: TLS, or a loopback peer */
	XMIT_TLS_ALWAYS,		/* always: TLS, even on loopback */
	XMIT_TLS_NEVER,			/* no */
};

struct config {
	char			*path;		/* the file it came from */

	struct listener_conf	 listeners[MAX_LISTENERS];
	size_t			 n_listeners;

	char			*mail_root;	/* absolute directory */
	char			*mailbox_path;	/* template: %u %n %d %%, after
						 * an optional "mbox:" or
						 * "maildir:" */
	char			*user_db;	/* passwd-file or SQLite path */
	uint64_t		 deliver_max_size;	/* postern deliver */
	enum userdb_type	 user_db_type;
	unsigned int		 password_forms;	/* PWFORM_* */
	unsigned int		 scram_iterations;

	char			*mail_user;	/* workers run as this if root */
	char			*auth_user;	/* auth runs as this if root */

	unsigned int		 workers;	/* 0: one per core */
	unsigned int		 auth_workers;

	uint64_t		 idle_timeout_ms;
	unsigned int		 max_connections;
	unsigned int		 max_connections_per_ip;
	unsigned int		 max_connections_per_user;
	unsigned int		 max_line_length;
	unsigned int		 max_pipelined_commands;
	uint64_t		 session_memory_limit;	/* octets */
	uint64_t		 index_cache_size;	/* octets, per pop3
							 * worker; 0: off */
	unsigned int		 max_bad_commands;
	unsigned int		 max_auth_failures;
	uint64_t		 auth_fail_delay_ms;
	uint64_t		 auth_fail_delay_max_ms;

	bool			 lock_session;
	uint64_t		 mbox_lock_timeout_ms;	/* both mbox locks */
	uint64_t		 mbox_dotlock_stale_ms;	/* FILE.lock age */
	int64_t			 expire_days;	/* -1: NEVER */
	uint64_t		 login_delay_s;	/* 0: none */
	/* The UIDL guard of the store (store.h mailbox_opts). */
	unsigned int		 uidl_guard_share;	/* percent */
	unsigned int		 uidl_guard_min;	/* messages */

	enum plaintext_policy	 plaintext;
	/* Networks treated like loopback for the plaintext policy. */
	struct cidr		 plaintext_networks[MAX_NETWORKS];
	size_t			 n_plaintext_networks;
	bool			 apop;		/* offer APOP if the store can */

	/* SASL (RFC 5034). */
	unsigned int		 mechanisms;	/* MECH_BIT()s allowed */
	unsigned int		 max_sasl_line_length;
	char			*master_users[MAX_MASTER_USERS];
	size_t			 n_master_users;
	/* Networks exempt from the failed-login delay. */
	struct cidr		 trusted_networks[MAX_NETWORKS];
	size_t			 n_trusted_networks;
	enum external_user	 external_user;
	struct oauth_issuer_conf oauth_issuers[MAX_OAUTH_ISSUERS];
	size_t			 n_oauth_issuers;
	char			*oauth_audience;
	char			*oauth_user_claim;

	/* TLS (RFC 2595 STLS, RFC 8314 implicit TLS).  No tls_cert: no
	 * TLS at all, STLS not offered, implicit listeners refused. */
	char			*tls_cert;	/* PEM: certificate, then chain */
	char			*tls_key;
	struct tls_sni_conf	 tls_sni[MAX_TLS_SNI];
	size_t			 n_tls_sni;
	unsigned int		 tls_min_version;	/* 12 or 13 */
	char			*tls_ciphers;		/* TLS 1.2 list */
	char			*tls_ciphersuites;	/* TLS 1.3 list */
	bool			 tls_client_cert;	/* ask for one (optional) */
	char			*tls_client_ca;		/* CAs to verify it */
	uint64_t		 tls_handshake_timeout_ms;

	/* LMTP (RFC 2033) and quotas.  No lmtp_listen: no lmtp process. */
	struct lmtp_listen_conf	 lmtp_listeners[MAX_LMTP_LISTENERS];
	size_t			 n_lmtp_listeners;
	unsigned int		 lmtp_socket_mode;	/* unix: sockets */
	bool			 lmtp_allow_remote;	/* non-loopback TCP */
	unsigned int		 lmtp_max_connections;
	unsigned int		 lmtp_max_recipients;
	unsigned int		 lmtp_max_line_length;	/* DATA lines */
	uint64_t		 lmtp_idle_timeout_ms;
	char			 lmtp_recipient_delimiter;	/* '\0': none */
	uint64_t		 quota_bytes;		/* 0: unlimited */
	unsigned int		 quota_messages;	/* 0: unlimited */
	bool			 quota_temporary;	/* 452 4.2.2, exit 75 */
	uint64_t		 restart_interval_ms;	/* between restarts */
	/* XTND XMIT (postern.conf(5)). */
	bool			 xmit;		/* offered at all */
	enum xmit_tls		 xmit_require_tls;
	bool			 xmit_check_from;
	char			*xmit_domains[MAX_XMIT_DOMAINS];
	size_t			 n_xmit_domains;
	/* xmit_command split into words (NULL-terminated), or none when
	 * xmit_relay is set. */
	char			*xmit_argv[XMIT_MAX_COMMAND_WORDS + 1];
	size_t			 n_xmit_argv;
	char			*xmit_relay_host;	/* NULL: the command */
	char			*xmit_relay_port;
	bool			 xmit_relay_starttls;
	char			*xmit_relay_ca;		/* NULL: system CAs */
	uint64_t		 xmit_max_size;
	unsigned int		 xmit_max_recipients;
	unsigned int		 xmit_max_per_hour;
	uint64_t		 xmit_timeout_ms;

	bool			 log_syslog;	/* else stderr */
	bool			 log_debug;
	char			*hostname;	/* for the APOP timestamp */
	char			*greeting;	/* text after "+OK " */
};

/* Fills c with the built-in defaults.  Strings are heap copies. */
void	config_defaults(struct config *c);

/*
 * Reads and validates path into c (which it first resets to defaults).
 * On error returns -1 and writes one line "PATH:LINE: what is wrong" (or
 * "PATH: ..." when no line applies) into err.
 */
int	config_load(const char *path, struct config *c, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* Parses "host:port", "[v6]:port" or "*:port"; 0 or -1. */
int	config_parse_listener(const char *text, struct listener_conf *l)
	    ATTR_WARN_UNUSED;

/*
 * Expands the mailbox template for user into out: the absolute path
 * mail_root/expanded, with the template's "mbox:" or "maildir:" prefix
 * in front if it has one (the store's location string, store.h).
 * Refuses user names that could escape the mail root (empty, "/",
 * leading '.', "..", control characters).  0 or -1.
 */
int	config_mailbox_path(const struct config *c, const char *user,
	    char *out, size_t outsize) ATTR_WARN_UNUSED;

void	config_free(struct config *c);

#endif
