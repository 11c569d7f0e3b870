/*
 * ipc.h: small framed, typed messages between Postern's own processes,
 * over SOCK_SEQPACKET socketpairs (one message per datagram, so framing
 * is the kernel's), with optional descriptor passing.
 *
 * Each side treats the other as hostile: readers are typed, bounded and
 * check that a message was consumed exactly (ipc_done).
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attrs.h"
#include "limits.h"

struct event_base;

struct ipc_msg {
	uint8_t		data[IPC_MAX_MSG];
	size_t		len;
	int		fd;		/* passed with the message, or -1 */
	bool		bad;		/* a field did not fit */
};

struct ipc_in {
	uint32_t	 type;
	uint64_t	 id;
	int		 fd;		/* received descriptor, or -1 */
	const uint8_t	*p, *end;
	bool		 bad;
};

void	ipc_msg_init(struct ipc_msg *, uint32_t type, uint64_t id);
void	ipc_put_u32(struct ipc_msg *, uint32_t);
void	ipc_put_u64(struct ipc_msg *, uint64_t);
void	ipc_put_str(struct ipc_msg *, const char *);
/* Wipes the message buffer: for messages that carried secrets. */
void	ipc_msg_wipe(struct ipc_msg *);

/* Parses a received datagram; false if it is too short for a header. */
bool	ipc_in_init(struct ipc_in *, const uint8_t *data, size_t len, int fd);
uint32_t ipc_get_u32(struct ipc_in *);
uint64_t ipc_get_u64(struct ipc_in *);
/* A NUL-terminated string of at most maxlen octets without NUL inside;
 * "" and bad set on any violation. */
const char *ipc_get_str(struct ipc_in *, size_t maxlen);
/* No field was bad and every octet was read. */
bool	ipc_done(const struct ipc_in *);

/*
 * A channel: one end of a socketpair in an event loop.  Messages that
 * cannot be sent at once are queued (bounded); the handler runs for each
 * message received; closed runs once when the peer is gone or broke the
 * protocol, after which the owner must free the channel.
 */
struct ipc_chan;
typedef void ipc_handler_fn(struct ipc_chan *, struct ipc_in *, void *arg);
typedef void ipc_closed_fn(struct ipc_chan *, void *arg);

struct ipc_chan *ipc_chan_new(struct event_base *, int fd, ipc_handler_fn *,
    ipc_closed_fn *, void *arg);
/* Sends or queues m; the fd in m (if any) is sent and then closed by the
 * channel.  0, or -1 if the queue is full or the channel is closed. */
int	ipc_send(struct ipc_chan *, struct ipc_msg *);
/* A blocking send for processes without a loop yet; 0 or -1. */
int	ipc_send_fd_blocking(int sock, struct ipc_msg *);
bool	ipc_chan_is_open(const struct ipc_chan *);
void	ipc_chan_free(struct ipc_chan **);

#endif
