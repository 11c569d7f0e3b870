/*
 * mda.c: one message through the account's mda command (mda.h).
 *
 * Owns: the MDA's process and the pipe to it.  Trusts: nothing of the
 * MDA but its exit status; it is waited for with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client_limits.h"
#include "client/fetch.h"
#include "client/mda.h"
#include "lib/buf.h"

static void merr(char *, size_t, const char *, ...) ATTR_PRINTF(3, 4);

static void
merr(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One word of the command with %a (the account's name), %u (its user)
 * and %% (a %) replaced; any other % is an error.  A new string, or
 * NULL.
 */
static char *
expand_word(const char *w, const struct account *a)
{
	struct buf b;
	const char *p;
	char *out = NULL;
	int r = 0;

	buf_init(&b, FETCH_MAX_VALUE * 4);
	for (p = w; *p != '\0' && r == 0; p++) {
		if (*p != '%') {
			r = buf_add(&b, p, 1);
			continue;
		}
		switch (*++p) {
		case 'a':
			r = buf_add(&b, a->name, strlen(a->name));
			break;
		case 'u':
			r = buf_add(&b, a->user, strlen(a->user));
			break;
		case '%':
			r = buf_add(&b, "%", 1);
			break;
		default:
			r = -1;
			p--;	/* stop here, even at the NUL */
			break;
		}
	}
	if (r == 0 && buf_add(&b, "", 1) == 0)
		out = strdup(b.data);
	buf_clear(&b);
	return out;
}

static void
free_words(char **argv, int argc)
{
	int i;

	for (i = 0; i < argc; i++)
		free(argv[i]);
}

int
mda_start(struct mda *m, const struct account *a, char *err, size_t errsize)
{
	char *argv[FETCH_MAX_COMMAND_ARGS + 1], *copy;
	int pfd[2], argc, i;

	m->acct = a;
	m->pid = -1;
	m->fd = -1;
	m->broken = false;
	if ((argc = account_command_split(a->mda, &copy, argv)) == -1) {
		merr(err, errsize, "mda: empty, too many words or out of"
		    " memory");
		return -1;
	}
	for (i = 0; i < argc; i++)
		if ((argv[i] = expand_word(argv[i], a)) == NULL) {
			merr(err, errsize, "mda: a %% other than %%a, %%u or"
			    " %%%%, or out of memory");
			while (i-- > 0)
				free(argv[i]);
			free(copy);
			return -1;
		}
	free(copy);
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		merr(err, errsize, "mda: pipe: %s", strerror(errno));
		free_words(argv, argc);
		return -1;
	}
	fflush(NULL);
	if ((m->pid = fork()) == -1) {
		merr(err, errsize, "mda: fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		free_words(argv, argc);
		return -1;
	}
	if (m->pid == 0) {
		/* Ignored signals stay ignored across exec: not ours to
		 * pass on.  Its output must not mix with ours (--json). */
		(void)signal(SIGPIPE, SIG_DFL);
		(void)signal(SIGXFSZ, SIG_DFL);
		if (dup2(pfd[0], STDIN_FILENO) == -1 ||
		    dup2(STDERR_FILENO, STDOUT_FILENO) == -1)
			_exit(FETCH_EXIT_TEMP);
		execvp(argv[0], argv);
		fprintf(stderr, "postern fetch: mda %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	free_words(argv, argc);
	close(pfd[0]);
	m->fd = pfd[1];
	if (fcntl(m->fd, F_SETFL, O_NONBLOCK) == -1) {
		merr(err, errsize, "mda: %s", strerror(errno));
		mda_abort(m);
		return -1;
	}
	return 0;
}

int
mda_write(struct mda *m, const uint8_t *data, size_t len, char *err,
    size_t errsize)
{
	struct pollfd pfd = { .fd = m->fd, .events = POLLOUT };
	ssize_t n;
	int r;

	while (len > 0 && !m->broken) {
		n = write(m->fd, data, len);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EPIPE) {
			m->broken = true;
			break;
		}
		if (n == -1 && errno != EAGAIN) {
			merr(err, errsize, "mda %s: writing: %s", m->acct->mda,
			    strerror(errno));
			return -1;
		}
		r = poll(&pfd, 1, (int)m->acct->timeout_ms);
		if (r == 0) {
			merr(err, errsize, "mda %s: reads nothing for %llu s",
			    m->acct->mda,
			    (unsigned long long)m->acct->timeout_ms / 1000);
			return -1;
		}
		if (r == -1 && errno != EINTR) {
			merr(err, errsize, "mda: poll: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Waits for the MDA to exit until deadline (monotonic ms).  0, or -1
 * on timeout. */
static int
reap(struct mda *m, int64_t deadline, int *status)
{
	struct timespec pause = { 0, 2 * 1000 * 1000 };
	pid_t r;

	for (;;) {
		r = waitpid(m->pid, status, WNOHANG);
		if (r == m->pid)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return -1;
		(void)nanosleep(&pause, NULL);
	}
}

enum mda_result
mda_finish(struct mda *m, char *err, size_t errsize)
{
	const char *cmd = m->acct->mda;
	int status = 0;

	close(m->fd);
	m->fd = -1;
	if (reap(m, now_ms() + (int64_t)m->acct->timeout_ms, &status) ==
	    -1) {
		mda_abort(m);
		merr(err, errsize, "mda %s did not exit within %llu s", cmd,
		    (unsigned long long)m->acct->timeout_ms / 1000);
		return MDA_TEMP;
	}
	m->pid = -1;
	if (WIFSIGNALED(status)) {
		merr(err, errsize, "mda %s was killed by signal %d", cmd,
		    WTERMSIG(status));
		return MDA_REFUSED;
	}
	if (WEXITSTATUS(status) == FETCH_EXIT_TEMP) {
		merr(err, errsize, "mda %s exited 75 (temporary failure)",
		    cmd);
		return MDA_TEMP;
	}
	if (WEXITSTATUS(status) != 0) {
		merr(err, errsize, "mda %s exited %d", cmd,
		    WEXITSTATUS(status));
		return MDA_REFUSED;
	}
	if (m->broken) {
		merr(err, errsize, "mda %s exited 0 without reading the"
		    " whole message", cmd);
		return MDA_REFUSED;
	}
	return MDA_DELIVERED;
}

void
mda_abort(struct mda *m)
{
	int status;

	if (m->fd != -1)
		close(m->fd);
	m->fd = -1;
	if (m->pid > 0) {
		(void)kill(m->pid, SIGKILL);
		while (waitpid(m->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	m->pid = -1;
}
