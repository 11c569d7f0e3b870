/*
 * buf.h: a length-carrying byte buffer with a hard ceiling chosen by its
 * owner.  Pointers into data are invalid after any write.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "attrs.h"

struct buf {
	char	*data;
	size_t	 len;	/* used */
	size_t	 cap;	/* allocated */
	size_t	 max;	/* ceiling: writes past it fail with EMSGSIZE */
};

void	buf_init(struct buf *, size_t max);
/* 0, or -1 with errno ENOMEM or EMSGSIZE; the buffer is unchanged then. */
int	buf_add(struct buf *, const void *, size_t) ATTR_WARN_UNUSED;
int	buf_addc(struct buf *, char) ATTR_WARN_UNUSED;
int	buf_addstr(struct buf *, const char *) ATTR_WARN_UNUSED;
int	buf_addf(struct buf *, const char *, ...) ATTR_PRINTF(2, 3) ATTR_WARN_UNUSED;
/* NUL-terminates (the NUL is not counted in len); NULL if that fails. */
const char *buf_str(struct buf *);
void	buf_reset(struct buf *);
/* Frees the data; the struct can be reused after buf_init. */
void	buf_clear(struct buf *);
/* Wipes the contents before freeing: for buffers that held secrets. */
void	buf_clear_secret(struct buf *);

/* A one-line error message into err (nothing if err is NULL or
 * errsize 0); a long one is cut short. */
void	errf(char *err, size_t errsize, const char *, ...) ATTR_PRINTF(3, 4);

/* snprintf that treats truncation as an error: 0 or -1. */
int	str_fmt(char *dst, size_t size, const char *, ...) ATTR_PRINTF(3, 4) ATTR_WARN_UNUSED;

#endif
