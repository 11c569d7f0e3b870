/*
 * net.c: address parsing and matching, listening sockets.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "strnum.h"

int
cidr_parse(const char *text, struct cidr *r)
{
	char tmp[64];
	char *slash;
	unsigned int maxp;
	uint32_t p;
	size_t i;

	if (strlen(text) >= sizeof(tmp))
		return -1;
	memcpy(tmp, text, strlen(text) + 1);
	memset(r, 0, sizeof(*r));
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, tmp, r->addr) == 1) {
		r->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, tmp, r->addr) == 1) {
		r->family = AF_INET6;
		maxp = 128;
	} else
		return -1;
	if (slash == NULL)
		p = maxp;
	else if (parse_u32(slash, maxp, &p) != PARSE_OK)
		return -1;
	r->prefix = p;
	for (i = 0; i < 16; i++) {
		unsigned int bits = i * 8;

		if (bits >= p)
			r->addr[i] = 0;
		else if (p - bits < 8)
			r->addr[i] &= (uint8_t)(0xff << (8 - (p - bits)));
	}
	return 0;
}

static bool
prefix_eq(const uint8_t *a, const uint8_t *net, unsigned int prefix)
{
	unsigned int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return (a[full] & (uint8_t)(0xff << (8 - rest))) == net[full];
}

bool
cidr_match(const struct cidr *nets, size_t n, const struct sockaddr *sa)
{
	const uint8_t *a4 = NULL, *a6 = NULL;
	size_t i;

	if (sa->sa_family == AF_INET)
		a4 = (const uint8_t *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr;

		a6 = in6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6))
			a4 = in6->s6_addr + 12;
	} else
		return false;
	for (i = 0; i < n; i++) {
		if (nets[i].family == AF_INET && a4 != NULL &&
		    prefix_eq(a4, nets[i].addr, nets[i].prefix))
			return true;
		if (nets[i].family == AF_INET6 && a6 != NULL &&
		    prefix_eq(a6, nets[i].addr, nets[i].prefix))
			return true;
	}
	return false;
}

bool
addr_is_loopback(const struct sockaddr *sa)
{
	static struct cidr lo[2];
	static bool init;

	if (!init) {
		if (cidr_parse("127.0.0.0/8", &lo[0]) == -1 ||
		    cidr_parse("::1/128", &lo[1]) == -1)
			return false;
		init = true;
	}
	return cidr_match(lo, 2, sa);
}

const char *
addr_str(const struct sockaddr *sa, char *buf, size_t size)
{
	const void *a;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else {
		snprintf(buf, size, "unix");
		return buf;
	}
	if (inet_ntop(sa->sa_family, a, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
	return buf;
}

unsigned int
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return 0;
}

int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

int
listen_tcp(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int fd, on = 1, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (sa->sa_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, sa, len) == -1 || listen(fd, backlog) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
