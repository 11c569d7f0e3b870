/*
 * cli.h: what the files of the `postern` command share.
 *
 * Every subcommand is "int cmd_NAME(int argc, char **argv)" with argv[0]
 * the subcommand's own name, and returns the process exit status.
 */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/attrs.h"

/* Exit statuses (spec: 0 ok, 1 usage, 2 error). */
#define CLI_EXIT_OK		0
#define CLI_EXIT_USAGE		1	/* bad command line, no change */
#define CLI_EXIT_FAIL		2	/* failed; one line on stderr */

#define CLI_DEFAULT_CONFIG	"/etc/postern/postern.conf"
#define CLI_CONFIG_ENV		"POSTERN_CONFIG"

int	cmd_user(int argc, char **argv);
int	cmd_check(int argc, char **argv);
/* deliver returns sysexits(3) statuses, which MTAs read, instead. */
int	cmd_deliver(int argc, char **argv);
/* fetch returns 0, 1, 75 or 77 (see cmd_fetch.c). */
int	cmd_fetch(int argc, char **argv);
/* migrate-uidl returns sysexits(3) statuses (see cmd_migrate.c). */
int	cmd_migrate(int argc, char **argv);

/* Offline reading (cmd_read.c): 0, 1 usage, 2 failed, 3 no such
 * message or part. */
int	cmd_list(int argc, char **argv);
int	cmd_show(int argc, char **argv);
int	cmd_save(int argc, char **argv);
int	cmd_mark(int argc, char **argv);
int	cmd_delete(int argc, char **argv);
int	cmd_move(int argc, char **argv);
int	cmd_export(int argc, char **argv);

/* The default fetch.conf: $XDG_CONFIG_HOME/postern/fetch.conf, else
 * ~/.config/postern/fetch.conf.  0, or -1 without either variable. */
int	cli_fetch_conf_default(char *out, size_t size) ATTR_WARN_UNUSED;

/* One usage error on stderr, "postern CMD: MESSAGE; see 'HINT'", and
 * status returned, for `return cli_usage_error(...)`. */
int	cli_usage_error(const char *cmd, const char *hint, int status,
	    const char *fmt, ...) ATTR_PRINTF(4, 5);

/* The full usage text. */
void	cli_usage(FILE *fp);

/* The configuration file to use: opt (from -c) if not NULL, else
 * $POSTERN_CONFIG if set and not empty, else CLI_DEFAULT_CONFIG. */
const char *cli_config_path(const char *opt);

/*
 * Reads a new password into pass (size octets, NUL-terminated): from
 * /dev/tty with echo off, asked twice, when standard input is a
 * terminal; else exactly one line of standard input, its LF or CRLF
 * removed.  Refuses an empty password and one longer than size - 1.
 * 0, or -1 after printing one line to stderr.  The caller wipes pass.
 */
int	cli_read_password(char *pass, size_t size) ATTR_WARN_UNUSED;

/* Asks once on /dev/tty, with echo off, showing prompt; an empty
 * answer is refused.  0, or -1 after one line on stderr. */
int	cli_prompt_secret(const char *prompt, char *pass, size_t size)
	    ATTR_WARN_UNUSED;

#endif
