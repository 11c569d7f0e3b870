/*
 * mboxrd.c: mboxrd reading and writing (see mboxrd.h).  Owns the arrays
 * it returns.  Trusts nothing in the mbox: lines may be of any length
 * and hold any octet; nothing is kept per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "reader/mboxrd.h"

#define CHUNK		65536
#define LOCK_POLL_MS	50

enum { ST_BOL, ST_QUOTES, ST_MATCH, ST_MID };

static const char from_[] = "From ";

int
mbox_lock_shared(int fd)
{
	struct flock fl;
	struct timespec ts = { 0, LOCK_POLL_MS * 1000000L };
	unsigned int waited = 0;

	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if ((errno != EACCES && errno != EAGAIN) ||
		    waited >= READER_MBOX_LOCK_TIMEOUT_MS)
			return -1;
		(void)nanosleep(&ts, NULL);
		waited += LOCK_POLL_MS;
	}
}

static int
msgs_add(struct mbox_msg **msgs, size_t *count, size_t *cap, size_t max,
    off_t from_off)
{
	struct mbox_msg *n;
	size_t ncap;

	if (*count >= max) {
		errno = EFBIG;
		return -1;
	}
	if (*count == *cap) {
		ncap = *cap == 0 ? 64 : *cap * 2;
		if ((n = reallocarray(*msgs, ncap, sizeof(*n))) == NULL)
			return -1;
		*msgs = n;
		*cap = ncap;
	}
	memset(&(*msgs)[*count], 0, sizeof(**msgs));
	(*msgs)[*count].from_off = from_off;
	(*count)++;
	return 0;
}

/* Ends the message before the From_ line or end of file at pos: the
 * blank line that ends a message is not part of it. */
static void
msg_end(struct mbox_msg *m, off_t pos, int prev1, int prev2)
{
	m->len = (uint64_t)(pos - m->off);
	if (m->len > 0 && prev1 == '\n' && prev2 == '\n')
		m->len--;
}

int
mbox_scan(int fd, size_t max, struct mbox_msg **msgs_r, size_t *count_r,
    char *err, size_t errsize)
{
	char *chunk;
	struct mbox_msg *msgs = NULL, *cur = NULL;
	size_t count = 0, cap = 0, matched = 0, fl = 0, i;
	off_t pos = 0, line_start = 0;
	bool bol = true, in_from = false;
	int prev1 = '\n', prev2 = '\n', before1 = 0, before2 = 0;
	ssize_t n;

	*msgs_r = NULL;
	*count_r = 0;
	if ((chunk = malloc(CHUNK)) == NULL) {
		errf(err, errsize, "%s", strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, chunk, CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			errf(err, errsize, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		for (i = 0; i < (size_t)n; i++, pos++) {
			char c = chunk[i];

			if (in_from) {
				/* Inside a From_ line: keep its start. */
				if (c == '\n') {
					in_from = false;
					cur->from_line[fl] = '\0';
					cur->off = pos + 1;
				} else if (fl < READER_MBOX_FROM_LINE)
					cur->from_line[fl++] = c;
			} else if (bol || matched > 0) {
				if (bol) {
					line_start = pos;
					before1 = prev1;
					before2 = prev2;
				}
				bol = false;
				if (c == from_[matched]) {
					if (++matched == sizeof(from_) - 1) {
						matched = 0;
						if (cur != NULL)
							msg_end(cur, line_start,
							    before1, before2);
						else if (line_start != 0)
							goto not_mbox;
						if (msgs_add(&msgs, &count,
						    &cap, max, line_start) ==
						    -1) {
							errf(err, errsize,
							    "more than %zu"
							    " messages", max);
							goto fail;
						}
						cur = &msgs[count - 1];
						memcpy(cur->from_line, from_,
						    sizeof(from_) - 1);
						fl = sizeof(from_) - 1;
						in_from = true;
					}
				} else {
					matched = 0;
					if (cur == NULL)
						goto not_mbox;
				}
			} else if (cur == NULL)
				goto not_mbox;
			if (c == '\n' && !in_from && matched == 0)
				bol = true;
			prev2 = prev1;
			prev1 = (unsigned char)c;
		}
	}
	if (cur == NULL && pos > 0)
		goto not_mbox;
	if (cur != NULL) {
		if (in_from) {
			/* A From_ line without LF at the end of the file. */
			cur->from_line[fl] = '\0';
			cur->off = pos;
		}
		msg_end(cur, pos, prev1, prev2);
	}
	free(chunk);
	*msgs_r = msgs;
	*count_r = count;
	return 0;
not_mbox:
	errf(err, errsize, "not an mbox file (it does not start with a"
	    " \"From \" line)");
fail:
	free(chunk);
	free(msgs);
	return -1;
}

void
mboxrd_filter_init(struct mboxrd_filter *f, bool quote)
{
	memset(f, 0, sizeof(*f));
	f->quote = quote;
	f->state = ST_BOL;
}

static int
add_quotes(struct buf *out, size_t n)
{
	static const char q[64] = ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>"
	    ">>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>";
	size_t k;

	while (n > 0) {
		k = n < sizeof(q) ? n : sizeof(q);
		if (buf_add(out, q, k) == -1)
			return -1;
		n -= k;
	}
	return 0;
}

/* Emits what a line start that turned out not to be ^>*From  held. */
static int
flush_pending(struct mboxrd_filter *f, struct buf *out)
{
	if (add_quotes(out, f->quotes) == -1 ||
	    buf_add(out, from_, f->matched) == -1)
		return -1;
	f->quotes = f->matched = 0;
	return 0;
}

int
mboxrd_filter_run(struct mboxrd_filter *f, const char *in, size_t len,
    struct buf *out)
{
	size_t i, start;

	for (i = 0; i < len; i++) {
		char c = in[i];

		switch (f->state) {
		case ST_BOL:
		case ST_QUOTES:
			if (c == '>') {
				f->quotes++;
				f->state = ST_QUOTES;
				continue;
			}
			if (c == 'F') {
				f->matched = 1;
				f->state = ST_MATCH;
				continue;
			}
			break;
		case ST_MATCH:
			if (c == from_[f->matched]) {
				if (++f->matched < sizeof(from_) - 1)
					continue;
				/* ^>*From : one '>' more, or one less. */
				if (f->quote)
					f->quotes++;
				else if (f->quotes > 0)
					f->quotes--;
				if (flush_pending(f, out) == -1)
					return -1;
				f->state = ST_MID;
				continue;
			}
			break;
		default:
			/* In the middle of a line: copy up to its end. */
			start = i;
			while (i < len && in[i] != '\n')
				i++;
			if (i < len) {
				if (buf_add(out, in + start, i - start + 1) ==
				    -1)
					return -1;
				f->state = ST_BOL;
			} else if (buf_add(out, in + start, i - start) == -1)
				return -1;
			continue;
		}
		/* Not ^>*From : what was held, then c. */
		if (flush_pending(f, out) == -1 || buf_addc(out, c) == -1)
			return -1;
		f->state = c == '\n' ? ST_BOL : ST_MID;
	}
	return 0;
}

int
mboxrd_filter_end(struct mboxrd_filter *f, struct buf *out)
{
	int rc = flush_pending(f, out);

	f->state = ST_BOL;
	return rc;
}

/* Writes out's contents to fd and empties it. */
static int
drain(int fd, struct buf *out)
{
	if (out->len > 0 && write_full(fd, out->data, out->len) == -1)
		return -1;
	buf_reset(out);
	return 0;
}

/* Copies len octets of fd from offset off through f to outfd; *last is
 * the last octet read (or -1 if none). */
static int
filter_copy(int fd, off_t off, uint64_t len, struct mboxrd_filter *f,
    int outfd, int *last)
{
	char *chunk;
	struct buf out;
	ssize_t n;
	size_t want;
	int rc = -1;

	*last = -1;
	if ((chunk = malloc(CHUNK)) == NULL)
		return -1;
	/* The pending '>'s of a line are flushed at each drain's size. */
	buf_init(&out, SIZE_MAX);
	while (len > 0) {
		want = len < CHUNK ? (size_t)len : CHUNK;
		n = pread(fd, chunk, want, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		if (n == 0) {
			errno = EIO;	/* the file shrank under us */
			goto out;
		}
		if (mboxrd_filter_run(f, chunk, (size_t)n, &out) == -1 ||
		    drain(outfd, &out) == -1)
			goto out;
		*last = (unsigned char)chunk[n - 1];
		off += n;
		len -= (uint64_t)n;
	}
	if (mboxrd_filter_end(f, &out) == -1 || drain(outfd, &out) == -1)
		goto out;
	rc = 0;
out:
	buf_clear(&out);
	free(chunk);
	return rc;
}

int
mbox_spool(int fd, const struct mbox_msg *m, int outfd)
{
	struct mboxrd_filter f;
	int last;

	mboxrd_filter_init(&f, false);
	return filter_copy(fd, m->off, m->len, &f, outfd, &last);
}

int
mbox_write_message(int outfd, const char *from_line, int infd,
    uint64_t len)
{
	struct mboxrd_filter f;
	int last;

	if (strncmp(from_line, from_, sizeof(from_) - 1) != 0 ||
	    strchr(from_line, '\n') != NULL) {
		errno = EINVAL;
		return -1;
	}
	if (write_full(outfd, from_line, strlen(from_line)) == -1 ||
	    write_full(outfd, "\n", 1) == -1)
		return -1;
	mboxrd_filter_init(&f, true);
	if (filter_copy(infd, 0, len, &f, outfd, &last) == -1)
		return -1;
	if (last != '\n' && last != -1 && write_full(outfd, "\n", 1) == -1)
		return -1;
	return write_full(outfd, "\n", 1);
}
