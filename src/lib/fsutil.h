/*
 * fsutil.h: file-system helpers that keep the storage promises: atomic
 * replacement, fsync of data and of directories, bounded reads.
 */
#ifndef POSTERN_FSUTIL_H
#define POSTERN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "attrs.h"

struct buf;

/* fsync the directory at path.  0 or -1. */
int	fsync_dir(const char *path) ATTR_WARN_UNUSED;

/* fsync the directory that contains path. */
int	fsync_parent(const char *path) ATTR_WARN_UNUSED;

/* Writes data to path.tmp.PID, fsyncs, renames over path, fsyncs the
 * directory.  On failure nothing at path changes.  0 or -1. */
int	write_atomic(const char *path, const void *data, size_t len,
	    mode_t mode) ATTR_WARN_UNUSED;

/* The same through the temporary name tmp, for a caller whose lock
 * keeps other writers of path out: a file left at tmp by a process that
 * died is overwritten by the next write, not left behind for good. */
int	write_atomic_via(const char *path, const char *tmp,
	    const void *data, size_t len, mode_t mode) ATTR_WARN_UNUSED;

/* Appends the whole file at path to b, failing with EFBIG past max
 * octets.  0 or -1 (errno set). */
int	read_file(const char *path, size_t max, struct buf *b) ATTR_WARN_UNUSED;

/* mkdir -p with the given mode for each created level.  0 or -1. */
int	mkdir_p(const char *path, mode_t mode) ATTR_WARN_UNUSED;

/* What identifies one version of a file, or the failure to stat it: a
 * file that changed, or was replaced, has another id. */
struct file_id {
	int		 err;		/* 0, or the errno of stat */
	dev_t		 dev;
	ino_t		 ino;
	off_t		 size;
	struct timespec	 mtime;
	struct timespec	 ctime;
};

void	file_id_from_stat(struct file_id *, const struct stat *);
/* Equal ids, or the same stat failure. */
bool	file_id_equal(const struct file_id *, const struct file_id *);

/* write() all of it, retrying on EINTR.  0 or -1. */
int	write_full(int fd, const void *data, size_t len) ATTR_WARN_UNUSED;

#endif
