/*
 * prompt.c: reading a new password for `postern user`, from the
 * terminal with echo off or from one line of standard input.
 *
 * Owns: the terminal's mode while it prompts (restored on every path,
 * signals included) and every octet of the password it reads, wiped
 * unless handed to the caller.  Trusts: nothing it reads: lengths are
 * bounded, NULs refused.  Never stdio for the secret: its buffers are
 * not wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/fsutil.h"
#include "lib/limits.h"

enum read_rc {
	READ_OK,
	READ_EOF,	/* end of input before any octet */
	READ_LONG,	/* more than size - 1 octets */
	READ_NUL,	/* a NUL octet */
	READ_ERR,	/* errno set */
	READ_SIGNAL,	/* interrupted by a signal we catch */
};

static volatile sig_atomic_t caught;

/* Signals after which the terminal must get its echo back. */
static const int tty_signals[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU,
};

static void
on_signal(int sig)
{
	caught = sig;
}

/*
 * Reads one line from fd, one octet at a time so that nothing past the
 * line is consumed.  The LF and a CR before it are dropped; an overlong
 * line is read to its end and refused.
 */
static enum read_rc
read_line(int fd, char *pass, size_t size)
{
	enum read_rc rc = READ_OK;
	size_t len = 0;
	ssize_t n;
	char c = '\0';

	for (;;) {
		n = read(fd, &c, 1);
		if (n == -1) {
			if (errno == EINTR && caught == 0)
				continue;
			rc = errno == EINTR ? READ_SIGNAL : READ_ERR;
			break;
		}
		if (n == 0) {
			if (len == 0 && rc == READ_OK)
				rc = READ_EOF;
			break;
		}
		if (c == '\n')
			break;
		if (c == '\0' && rc == READ_OK)
			rc = READ_NUL;
		if (len + 1 >= size) {
			if (rc == READ_OK)
				rc = READ_LONG;
			continue;
		}
		pass[len++] = c;
	}
	if (len > 0 && pass[len - 1] == '\r')
		len--;
	pass[len] = '\0';
	c = '\0';
	explicit_bzero(&c, sizeof(c));
	if (rc != READ_OK)
		explicit_bzero(pass, size);
	return rc;
}

/* Prompts on the terminal fd with echo off and reads one line. */
static enum read_rc
tty_read(int fd, const char *prompt, char *pass, size_t size)
{
	struct sigaction sa, saved[N_ELEMENTS(tty_signals)];
	struct termios old, noecho;
	enum read_rc rc;
	size_t i;
	int sig;

	if (tcgetattr(fd, &old) == -1)
		return READ_ERR;
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: read returns */
	sigemptyset(&sa.sa_mask);
	caught = 0;
	for (i = 0; i < N_ELEMENTS(tty_signals); i++)
		(void)sigaction(tty_signals[i], &sa, &saved[i]);

	if (tcsetattr(fd, TCSAFLUSH, &noecho) == -1)
		rc = READ_ERR;
	else {
		if (write_full(fd, prompt, strlen(prompt)) == -1)
			rc = READ_ERR;
		else
			rc = read_line(fd, pass, size);
		if (write_full(fd, "\n", 1) == -1 && rc == READ_OK)
			rc = READ_ERR;
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	}

	for (i = 0; i < N_ELEMENTS(tty_signals); i++)
		(void)sigaction(tty_signals[i], &saved[i], NULL);
	if ((sig = caught) != 0) {
		/* The terminal is sane again: let the signal do what it
		 * would have done (usually end the process). */
		explicit_bzero(pass, size);
		(void)raise(sig);
		rc = READ_SIGNAL;
	}
	return rc;
}

static int
report(enum read_rc rc, bool tty, size_t size)
{
	switch (rc) {
	case READ_OK:
		return 0;
	case READ_EOF:
		if (tty)
			fprintf(stderr, "postern: no password given; nothing "
			    "changed\n");
		else
			fprintf(stderr, "postern: no password on standard "
			    "input; give it as one line\n");
		break;
	case READ_LONG:
		fprintf(stderr, "postern: password longer than %zu octets; "
		    "choose a shorter one\n", size - 1);
		break;
	case READ_NUL:
		fprintf(stderr, "postern: password holds a NUL octet; "
		    "choose another\n");
		break;
	case READ_ERR:
		fprintf(stderr, "postern: cannot read the password from %s: "
		    "%s\n", tty ? "the terminal" : "standard input",
		    strerror(errno));
		break;
	case READ_SIGNAL:
		fprintf(stderr, "postern: interrupted; nothing changed\n");
		break;
	}
	return -1;
}

int
cli_read_password(char *pass, size_t size)
{
	char again[MAX_PASSWORD_LEN + 1];
	enum read_rc rc;
	bool same;
	int fd;

	if (size < 2 || size > sizeof(again)) {
		fprintf(stderr, "postern: password buffer of %zu octets\n",
		    size);
		return -1;
	}
	if (!isatty(STDIN_FILENO)) {
		rc = read_line(STDIN_FILENO, pass, size);
		if (report(rc, false, size) == -1)
			return -1;
		if (pass[0] == '\0') {
			fprintf(stderr, "postern: empty password refused\n");
			return -1;
		}
		return 0;
	}

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		fprintf(stderr, "postern: cannot open /dev/tty: %s; pipe the "
		    "password on standard input instead\n", strerror(errno));
		return -1;
	}
	rc = tty_read(fd, "Password: ", pass, size);
	if (rc == READ_OK && pass[0] == '\0') {
		close(fd);
		fprintf(stderr, "postern: empty password refused\n");
		return -1;
	}
	if (rc == READ_OK)
		rc = tty_read(fd, "Retype password: ", again, size);
	close(fd);
	if (report(rc, true, size) == -1) {
		explicit_bzero(pass, size);
		explicit_bzero(again, size);
		return -1;
	}
	same = strcmp(pass, again) == 0;
	explicit_bzero(again, size);
	if (!same) {
		explicit_bzero(pass, size);
		fprintf(stderr, "postern: the passwords do not match; nothing "
		    "changed\n");
		return -1;
	}
	return 0;
}

int
cli_prompt_secret(const char *prompt, char *pass, size_t size)
{
	enum read_rc rc;
	int fd;

	if (size < 2)
		return -1;
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		fprintf(stderr, "postern: cannot open /dev/tty to ask for"
		    " the password: %s\n", strerror(errno));
		return -1;
	}
	rc = tty_read(fd, prompt, pass, size);
	close(fd);
	if (report(rc, true, size) == -1) {
		explicit_bzero(pass, size);
		return -1;
	}
	if (pass[0] == '\0') {
		fprintf(stderr, "postern: empty password refused\n");
		return -1;
	}
	return 0;
}
