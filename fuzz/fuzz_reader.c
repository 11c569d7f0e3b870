/*
 * fuzz_reader.c: the offline reader's entry points (src/reader/) on
 * arbitrary message files: the summary of `postern list`, the text of
 * `postern show` (HTML through the tag stripper: no renderer is run),
 * every part `postern save` can write, and the same input as an mbox
 * and as a file name.  Nothing may crash, hang or grow without bound.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/buf.h"
#include "reader/mboxrd.h"
#include "reader/mime.h"
#include "reader/reader_limits.h"
#include "reader/render.h"
#include "reader/text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;
static int devnull_fd;

static int
file_with(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-reader", MFD_CLOEXEC);

	if (fd == -1 || (size > 0 && write(fd, data, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) == -1)
		abort();
	return fd;
}

static void
one_message(int fd)
{
	struct rd_summary s;
	struct rd_save_opts o = { .dirfd = -1, .out_fd = devnull_fd };
	char err[512];
	unsigned int part;

	rd_warn_begin(NULL, "fuzz");
	if (rd_summarize(fd, &s, err, sizeof(err)) == 0)
		rd_summary_free(&s);
	(void)rd_show(fd, devnull, false, err, sizeof(err));
	(void)rd_show(fd, devnull, true, err, sizeof(err));
	for (part = 1; part <= 4; part++) {
		o.part = part;
		if (rd_save(fd, &o, err, sizeof(err)) == RD_NO_PART)
			break;
	}
	(void)rd_warn_end();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char warm[] = "From: a@b\nSubject: =?utf-8?q?x?=\n"
	    "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
	    "Content-Type: text/html\n\n<p>x</p>\n--b--\n";
	int fd;

	(void)argc;
	(void)argv;
	if ((devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	devnull_fd = fileno(devnull);
	rd_render_set_external(false);
	rd_mime_init();
	/* GLib registers its types on first use and keeps them: once here,
	 * so that the leak checker does not count them against an input. */
	fd = file_with((const uint8_t *)warm, sizeof(warm) - 1);
	one_message(fd);
	close(fd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mbox_msg *msgs;
	struct buf b;
	char err[256], name[READER_MAX_FILENAME + 64], *s;
	size_t n, i;
	int fd, spool;

	fd = file_with(data, size);
	one_message(fd);
	/* The same octets as an mbox: each message spooled and read. */
	if (lseek(fd, 0, SEEK_SET) == 0 &&
	    mbox_scan(fd, 16, &msgs, &n, err, sizeof(err)) == 0) {
		for (i = 0; i < n; i++) {
			spool = memfd_create("fuzz-spool", MFD_CLOEXEC);
			if (spool == -1 ||
			    mbox_spool(fd, &msgs[i], spool) == -1)
				abort();
			one_message(spool);
			close(spool);
		}
		free(msgs);
	}
	close(fd);
	/* And as a file name and as HTML. */
	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (rd_safe_filename(s, 1, name, sizeof(name)) != 0 ||
	    strchr(name, '/') != NULL || name[0] == '.' || name[0] == '\0')
		abort();
	free(s);
	buf_init(&b, 4 * size + 64);
	if (rd_strip_tags(&b, (const char *)data, size) != 0)
		abort();
	buf_clear(&b);
	return 0;
}
