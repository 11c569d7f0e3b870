/*
 * render.c: HTML through w3m or lynx (see render.h).  Owns the renderer
 * process for the time of one call, and kills it (by its pid) when it
 * runs too long or prints too much.  Trusts nothing it prints: the
 * caller cleans it for the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/limits.h"
#include "reader/reader_limits.h"
#include "reader/render.h"

static bool external = true;

void
rd_render_set_external(bool on)
{
	external = on;
}

int
rd_find_program(const char *name, char *out, size_t outsize)
{
	const char *path = getenv("PATH"), *p, *end;
	size_t n;

	if (path == NULL)
		path = "/usr/bin:/bin";
	for (p = path; ; p = end + 1) {
		end = strchr(p, ':');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		/* Only absolute directories: "" and "." would mean the
		 * current one. */
		if (n > 0 && p[0] == '/' &&
		    str_fmt(out, outsize, "%.*s/%s", (int)n, p, name) == 0 &&
		    access(out, X_OK) == 0)
			return 0;
		if (end == NULL)
			break;
	}
	return -1;
}

static long long
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Feeds html to the renderer's stdin (fd in) and reads its stdout (fd
 * outfd) into out, within the time and output limits.  0 or -1. */
static int
exchange(int in, int outfd, const char *html, size_t len, struct buf *out,
    char *why, size_t whysize)
{
	long long deadline = now_ms() + READER_RENDER_TIMEOUT_MS, left;
	struct pollfd pfd[2];
	size_t sent = 0;
	char chunk[16384];
	ssize_t n;
	int nfds;

	for (;;) {
		nfds = 0;
		pfd[0].fd = outfd;
		pfd[0].events = POLLIN;
		nfds = 1;
		if (in != -1) {
			pfd[1].fd = in;
			pfd[1].events = POLLOUT;
			nfds = 2;
		}
		if ((left = deadline - now_ms()) <= 0) {
			errf(why, whysize, "it ran longer than %d ms",
			    READER_RENDER_TIMEOUT_MS);
			goto fail;
		}
		if (poll(pfd, (nfds_t)nfds, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			errf(why, whysize, "poll: %s", strerror(errno));
			goto fail;
		}
		if (in != -1 && pfd[1].revents != 0) {
			n = write(in, html + sent, len - sent);
			if (n == -1 && errno != EINTR && errno != EAGAIN) {
				/* It stopped reading: take what it said. */
				close(in);
				in = -1;
			} else if (n > 0 && (sent += (size_t)n) == len) {
				close(in);
				in = -1;
			}
		}
		if (pfd[0].revents != 0) {
			n = read(outfd, chunk, sizeof(chunk));
			if (n == -1 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;
			if (buf_add(out, chunk, (size_t)n) == -1) {
				errf(why, whysize, "it printed more than %d"
				    " octets", READER_RENDER_MAX_OUTPUT);
				goto fail;
			}
		}
	}
	if (in != -1)
		close(in);
	return 0;
fail:
	if (in != -1)
		close(in);
	return -1;
}

enum rd_render_rc
rd_render_html(const char *html, size_t len, struct buf *out, char *why,
    size_t whysize)
{
	static const char *const w3m[] = { "w3m", "-dump", "-T", "text/html",
	    "-I", "UTF-8", "-O", "UTF-8", "-cols", "78", NULL };
	static const char *const lynx[] = { "lynx", "-dump", "-stdin",
	    "-nolist", "-assume_charset=UTF-8", "-display_charset=UTF-8",
	    "-width=78", NULL };
	const char *const *argv;
	char path[MAX_PATH_LEN];
	struct buf got;
	int in[2], res[2], status, rc, devnull;
	pid_t pid;

	if (!external)
		return RD_NO_RENDERER;
	if (rd_find_program("w3m", path, sizeof(path)) == 0)
		argv = w3m;
	else if (rd_find_program("lynx", path, sizeof(path)) == 0)
		argv = lynx;
	else
		return RD_NO_RENDERER;
	if (pipe2(in, O_CLOEXEC) == -1)
		goto sys;
	if (pipe2(res, O_CLOEXEC) == -1) {
		close(in[0]);
		close(in[1]);
		goto sys;
	}
	if ((pid = fork()) == -1) {
		close(in[0]);
		close(in[1]);
		close(res[0]);
		close(res[1]);
		goto sys;
	}
	if (pid == 0) {
		(void)signal(SIGPIPE, SIG_DFL);
		(void)signal(SIGXFSZ, SIG_DFL);
		devnull = open("/dev/null", O_WRONLY);
		if (dup2(in[0], STDIN_FILENO) == -1 ||
		    dup2(res[1], STDOUT_FILENO) == -1 ||
		    (devnull != -1 && dup2(devnull, STDERR_FILENO) == -1))
			_exit(127);
		execv(path, (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(in[0]);
	close(res[1]);
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	buf_init(&got, READER_RENDER_MAX_OUTPUT);
	rc = exchange(in[1], res[0], html, len, &got, why, whysize);
	close(res[0]);
	if (rc == -1)
		(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		errf(why, whysize, "%s failed (%s %d)", argv[0],
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) :
		    WTERMSIG(status));
		rc = -1;
	}
	if (rc == 0 && buf_add(out, got.data, got.len) == -1) {
		errf(why, whysize, "%s", strerror(errno));
		rc = -1;
	}
	buf_clear(&got);
	return rc == 0 ? RD_RENDERED : RD_RENDER_FAILED;
sys:
	errf(why, whysize, "%s", strerror(errno));
	return RD_RENDER_FAILED;
}
