/*
 * account.h: the accounts of `postern fetch`, from fetch.conf.
 *
 * The file is lines of "account NAME" (starting a section) and
 * "key = value" (belonging to the last section); '#' starts a comment
 * line; blank lines are ignored.  The parser is strict: an unknown key,
 * a key given twice, a key outside a section, a bad value or a missing
 * required key is an error "FILE:LINE: reason".  The keys are documented
 * in postern(1).
 */
#ifndef POSTERN_CLIENT_ACCOUNT_H
#define POSTERN_CLIENT_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/client_limits.h"
#include "lib/attrs.h"

enum account_tls {
	ACCOUNT_TLS_IMPLICIT,	/* TLS from the first octet (RFC 8314) */
	ACCOUNT_TLS_STARTTLS,	/* STLS (RFC 2595), never without it */
	ACCOUNT_TLS_NONE,	/* plain text: needs insecure = yes */
};

/* The login methods of auth = ...: SASL mechanisms, APOP and USER (USER
 * and PASS), both RFC 1939; strongest first. */
enum account_auth {
	ACCOUNT_AUTH_EXTERNAL,
	ACCOUNT_AUTH_OAUTHBEARER,
	ACCOUNT_AUTH_XOAUTH2,
	ACCOUNT_AUTH_SCRAM_SHA_256_PLUS,
	ACCOUNT_AUTH_SCRAM_SHA_256,
	ACCOUNT_AUTH_SCRAM_SHA_1,
	ACCOUNT_AUTH_CRAM_MD5,
	ACCOUNT_AUTH_APOP,
	ACCOUNT_AUTH_PLAIN,
	ACCOUNT_AUTH_USER,
	ACCOUNT_AUTH_COUNT
};

/* The name of a login method ("SCRAM-SHA-256", "USER"...). */
const char *account_auth_name(enum account_auth);

struct account {
	char		*name;		/* [A-Za-z0-9._-], 1..FETCH_MAX_NAME */
	unsigned int	 line;		/* of its "account" line */
	char		*host;
	uint16_t	 port;
	enum account_tls tls;
	bool		 insecure;
	char		*ca_file;	/* NULL: the system CAs */
	/* tls_pin: SHA-256 of the certificate or of its public key
	 * (SPKI), any of which must match. */
	unsigned char	 pins[FETCH_MAX_PINS][32];
	size_t		 npins;
	int		 tls_min;	/* TLS1_2_VERSION or TLS1_3_VERSION */
	char		*tls_cert;	/* a client certificate and its key */
	char		*tls_key;
	char		*token_command;	/* OAUTHBEARER, XOAUTH2 */
	/* auth = the login methods to try, in this order (account_auth
	 * names), or none: strongest first. */
	uint8_t		 auth[ACCOUNT_AUTH_COUNT];
	size_t		 nauth;
	char		*user;
	char		*password_file;	/* at most one of these two; */
	char		*password_command; /* none: tls_cert, or a prompt */
	bool		 keep;		/* leave the mail on the server */
	uint32_t	 keep_days;	/* with keep: delete after; 0 never */
	bool		 only_new;	/* false: fetch journaled ones again */
	uint64_t	 max_size;	/* skip larger (LIST size); 0 none */
	bool		 max_size_headers; /* store their headers instead */
	char		*maildir;	/* exactly one target: maildir, */
	char		*mbox;		/* an mbox file (locked as the
					 * server locks it), */
	char		*mda;		/* or a command (split on blanks) */
	uint64_t	 timeout_ms;
};

struct fetch_conf {
	char		*path;
	struct account	*accounts;
	size_t		 count;
};

/* Parses text (len octets) as the file path.  0, or -1 with
 * "path:line: reason" in err; *fc is then empty. */
int	fetch_conf_parse(const char *path, const char *text, size_t len,
	    struct fetch_conf *fc, char *err, size_t errsize) ATTR_WARN_UNUSED;

/* Reads and parses the file at path. */
int	fetch_conf_load(const char *path, struct fetch_conf *fc, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

/* The account called name, or NULL. */
const struct account *fetch_conf_find(const struct fetch_conf *,
	    const char *name);

void	fetch_conf_free(struct fetch_conf *);

/*
 * Splits cmd on blanks (no shell, no quoting) into argv (at least
 * FETCH_MAX_COMMAND_ARGS + 1 entries, NULL-terminated), whose words
 * point into a copy returned in *copy_r for the caller to free.  With
 * argv and copy_r NULL, only checks.  The number of words, or -1 if
 * there are none, more than FETCH_MAX_COMMAND_ARGS, or no memory.
 */
int	account_command_split(const char *cmd, char **copy_r, char **argv)
	    ATTR_WARN_UNUSED;

/*
 * Reads the password of a into pass (size octets, NUL-terminated): the
 * first line of password_file, which must not be readable or writable
 * by group or others, or the first line that password_command (split on
 * blanks, run with execvp, never through a shell) prints, and which
 * must exit 0.  0, or -1 with a reason in err.  The caller wipes pass.
 */
int	account_password(const struct account *a, char *pass, size_t size,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/*
 * Runs the account's token_command (as password_command) for the
 * OAuth 2.0 bearer token of OAUTHBEARER and XOAUTH2: the first line of
 * its output, into token.  0, or -1 with err.  The caller wipes token.
 */
int	account_token(const struct account *a, char *token, size_t size,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/*
 * How account_password asks the user for the password of an account
 * with neither password_file, password_command nor tls_cert: fn (a
 * terminal prompt, cli/prompt.c) gets the account and fills pass; 0 or
 * -1 (having told the user why).  Without fn, such an account fails.
 */
void	account_set_prompt(int (*fn)(const struct account *, char *pass,
	    size_t size));

#endif
