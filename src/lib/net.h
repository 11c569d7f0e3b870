/*
 * net.h: addresses, networks and listening sockets.
 */
#ifndef POSTERN_NET_H
#define POSTERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attrs.h"

struct cidr {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];	/* network byte order, masked */
	unsigned int	prefix;
};

/* "192.0.2.0/24", "2001:db8::/32", or a bare address (full prefix). */
int	cidr_parse(const char *text, struct cidr *r) ATTR_WARN_UNUSED;
/* IPv4-mapped IPv6 addresses match IPv4 networks. */
bool	cidr_match(const struct cidr *nets, size_t n,
	    const struct sockaddr *sa);
bool	addr_is_loopback(const struct sockaddr *sa);

/* "192.0.2.1" or "2001:db8::1" (no port) into buf; returns buf. */
const char *addr_str(const struct sockaddr *sa, char *buf, size_t size);
unsigned int addr_port(const struct sockaddr *sa);

/* A non-blocking, close-on-exec listening TCP socket; -1 with errno. */
int	listen_tcp(const struct sockaddr *sa, socklen_t len, int backlog);

int	set_nonblock(int fd) ATTR_WARN_UNUSED;

#endif
