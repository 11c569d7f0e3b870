/*
 * ipc.c: framed messages over SOCK_SEQPACKET with SCM_RIGHTS.  Trusts
 * nothing it receives: every field is length-checked by the typed
 * readers, and a datagram that is truncated or carries more than one
 * descriptor breaks the channel.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"

#define IPC_HDR_LEN	(4 + 8)
#define IPC_QUEUE_MAX	8192

struct ipc_qent {
	struct ipc_qent	*next;
	int		 fd;
	size_t		 len;
	uint8_t		 data[];
};

struct ipc_chan {
	int		 fd;
	struct event	*ev_read;
	struct event	*ev_write;
	struct ipc_qent	*qhead, *qtail;
	size_t		 qlen;
	bool		 open;
	bool		 in_handler;
	bool		 freed_in_handler;
	ipc_handler_fn	*handler;
	ipc_closed_fn	*closed;
	void		*arg;
};

void
ipc_msg_init(struct ipc_msg *m, uint32_t type, uint64_t id)
{
	memcpy(m->data, &type, 4);
	memcpy(m->data + 4, &id, 8);
	m->len = IPC_HDR_LEN;
	m->fd = -1;
	m->bad = false;
}

static void
ipc_put(struct ipc_msg *m, const void *p, size_t n)
{
	if (m->bad || n > sizeof(m->data) - m->len) {
		m->bad = true;
		return;
	}
	memcpy(m->data + m->len, p, n);
	m->len += n;
}

void
ipc_put_u32(struct ipc_msg *m, uint32_t v)
{
	ipc_put(m, &v, 4);
}

void
ipc_put_u64(struct ipc_msg *m, uint64_t v)
{
	ipc_put(m, &v, 8);
}

void
ipc_put_str(struct ipc_msg *m, const char *s)
{
	size_t n = strlen(s) + 1;

	if (n > UINT32_MAX) {
		m->bad = true;
		return;
	}
	ipc_put_u32(m, (uint32_t)n);
	ipc_put(m, s, n);
}

void
ipc_msg_wipe(struct ipc_msg *m)
{
	explicit_bzero(m->data, m->len);
	m->len = 0;
}

bool
ipc_in_init(struct ipc_in *in, const uint8_t *data, size_t len, int fd)
{
	in->fd = fd;
	in->bad = false;
	if (len < IPC_HDR_LEN)
		return false;
	memcpy(&in->type, data, 4);
	memcpy(&in->id, data + 4, 8);
	in->p = data + IPC_HDR_LEN;
	in->end = data + len;
	return true;
}

static bool
ipc_get(struct ipc_in *in, void *out, size_t n)
{
	if (in->bad || (size_t)(in->end - in->p) < n) {
		in->bad = true;
		memset(out, 0, n);
		return false;
	}
	memcpy(out, in->p, n);
	in->p += n;
	return true;
}

uint32_t
ipc_get_u32(struct ipc_in *in)
{
	uint32_t v;

	ipc_get(in, &v, 4);
	return v;
}

uint64_t
ipc_get_u64(struct ipc_in *in)
{
	uint64_t v;

	ipc_get(in, &v, 8);
	return v;
}

const char *
ipc_get_str(struct ipc_in *in, size_t maxlen)
{
	uint32_t n = ipc_get_u32(in);
	const char *s;

	if (in->bad || n == 0 || n - 1 > maxlen ||
	    (size_t)(in->end - in->p) < n) {
		in->bad = true;
		return "";
	}
	s = (const char *)in->p;
	if (s[n - 1] != '\0' || memchr(s, '\0', n - 1) != NULL) {
		in->bad = true;
		return "";
	}
	in->p += n;
	return s;
}

bool
ipc_done(const struct ipc_in *in)
{
	return !in->bad && in->p == in->end;
}

static ssize_t
ipc_sendmsg(int sock, const uint8_t *data, size_t len, int fd)
{
	struct msghdr mh;
	struct iovec iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)(uintptr_t)data;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

int
ipc_send_fd_blocking(int sock, struct ipc_msg *m)
{
	ssize_t n;

	if (m->bad)
		return -1;
	do
		n = ipc_sendmsg(sock, m->data, m->len, m->fd);
	while (n == -1 && errno == EINTR);
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	return n == (ssize_t)m->len ? 0 : -1;
}

static void
ipc_chan_close(struct ipc_chan *c)
{
	if (!c->open)
		return;
	c->open = false;
	event_del(c->ev_read);
	event_del(c->ev_write);
	if (c->closed != NULL)
		c->closed(c, c->arg);
}

static void
ipc_flush(struct ipc_chan *c)
{
	while (c->qhead != NULL) {
		struct ipc_qent *q = c->qhead;
		ssize_t n = ipc_sendmsg(c->fd, q->data, q->len, q->fd);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS) {
				event_add(c->ev_write, NULL);
				return;
			}
			ipc_chan_close(c);
			return;
		}
		c->qhead = q->next;
		if (c->qhead == NULL)
			c->qtail = NULL;
		c->qlen--;
		if (q->fd >= 0)
			close(q->fd);
		explicit_bzero(q->data, q->len);
		free(q);
	}
	event_del(c->ev_write);
}

static void
ipc_on_write(evutil_socket_t fd, short what, void *arg)
{
	ipc_flush(arg);
}

static void
ipc_on_read(evutil_socket_t fd, short what, void *arg)
{
	static uint8_t data[IPC_MAX_MSG];
	struct ipc_chan *c = arg;
	int budget;

	for (budget = 0; budget < 64 && c->open; budget++) {
		union {
			struct cmsghdr	hdr;
			char		buf[CMSG_SPACE(sizeof(int) * 4)];
		} cm;
		struct msghdr mh;
		struct iovec iov;
		struct cmsghdr *cmsg;
		struct ipc_in in;
		int rfd = -1, nfds = 0;
		ssize_t n;

		memset(&mh, 0, sizeof(mh));
		iov.iov_base = data;
		iov.iov_len = sizeof(data);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				ipc_chan_close(c);
			return;
		}
		if (n == 0) {
			ipc_chan_close(c);
			return;
		}
		for (cmsg = CMSG_FIRSTHDR(&mh); cmsg != NULL;
		    cmsg = CMSG_NXTHDR(&mh, cmsg)) {
			size_t i, k;

			if (cmsg->cmsg_level != SOL_SOCKET ||
			    cmsg->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(cmsg) + i * sizeof(int),
				    sizeof(int));
				if (nfds++ == 0)
					rfd = f;
				else
					close(f);
			}
		}
		if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
		    nfds > 1 || !ipc_in_init(&in, data, (size_t)n, rfd)) {
			log_warnx("ipc: malformed message from peer, closing"
			    " the channel");
			if (rfd >= 0)
				close(rfd);
			ipc_chan_close(c);
			return;
		}
		c->in_handler = true;
		c->handler(c, &in, c->arg);
		c->in_handler = false;
		explicit_bzero(data, (size_t)n);
		if (c->freed_in_handler) {
			free(c);
			return;
		}
	}
}

struct ipc_chan *
ipc_chan_new(struct event_base *base, int fd, ipc_handler_fn *handler,
    ipc_closed_fn *closed, void *arg)
{
	struct ipc_chan *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	c->handler = handler;
	c->closed = closed;
	c->arg = arg;
	c->open = true;
	c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, ipc_on_read, c);
	c->ev_write = event_new(base, fd, EV_WRITE, ipc_on_write, c);
	if (c->ev_read == NULL || c->ev_write == NULL ||
	    event_add(c->ev_read, NULL) == -1) {
		if (c->ev_read != NULL)
			event_free(c->ev_read);
		if (c->ev_write != NULL)
			event_free(c->ev_write);
		free(c);
		return NULL;
	}
	return c;
}

int
ipc_send(struct ipc_chan *c, struct ipc_msg *m)
{
	struct ipc_qent *q;
	int rc = -1;

	if (!c->open || m->bad || c->qlen >= IPC_QUEUE_MAX)
		goto out;
	if (c->qhead == NULL) {
		ssize_t n;

		do
			n = ipc_sendmsg(c->fd, m->data, m->len, m->fd);
		while (n == -1 && errno == EINTR);
		if (n == (ssize_t)m->len) {
			rc = 0;
			goto out;
		}
		if (n == -1 && errno != EAGAIN && errno != ENOBUFS)
			goto out;
	}
	if ((q = malloc(sizeof(*q) + m->len)) == NULL)
		goto out;
	q->next = NULL;
	q->fd = m->fd;
	m->fd = -1;		/* the queue owns it now */
	q->len = m->len;
	memcpy(q->data, m->data, m->len);
	if (c->qtail != NULL)
		c->qtail->next = q;
	else
		c->qhead = q;
	c->qtail = q;
	c->qlen++;
	event_add(c->ev_write, NULL);
	rc = 0;
out:
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	return rc;
}

bool
ipc_chan_is_open(const struct ipc_chan *c)
{
	return c->open;
}

void
ipc_chan_free(struct ipc_chan **cp)
{
	struct ipc_chan *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	c->open = false;
	event_free(c->ev_read);
	event_free(c->ev_write);
	while (c->qhead != NULL) {
		struct ipc_qent *q = c->qhead;

		c->qhead = q->next;
		if (q->fd >= 0)
			close(q->fd);
		explicit_bzero(q->data, q->len);
		free(q);
	}
	close(c->fd);
	if (c->in_handler)
		c->freed_in_handler = true;
	else
		free(c);
}
