/*
 * usage.c: how much a Maildir holds, for quotas (maildir_usage in
 * store.h).
 *
 * Reads the directory listings of new/ and cur/ and, when it is there
 * and parses, postern.index; never a message.  Trusts nothing it reads:
 * the index is parsed by index_parse, a size in a file name must pass
 * index_name_sizes, and a file with neither costs one fstatat.  Holds
 * no lock: the answer is a snapshot that a concurrent delivery or
 * session may change by a message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "store/backend.h"
#include "store/index.h"
#include "store/store.h"

/* The wire size of the file name in dirfd: from the index, the name, or
 * its stored size; -1 if it vanished, -2 on another error. */
static int
file_size(int dirfd, const char *name, const struct index *idx,
    const struct index_map *map, uint64_t *size_r)
{
	size_t blen = index_base_len(name), it = 0;
	uint64_t stored, wire;
	struct stat st;
	uint32_t v;

	while (map != NULL && index_map_find(map, name, blen, &it, &v)) {
		const struct index_entry *e = &idx->v[v];

		if (index_base_len(e->name) == blen &&
		    memcmp(e->name, name, blen) == 0) {
			*size_r = e->size;
			return 0;
		}
	}
	if (index_name_sizes(name, blen, &stored, &wire)) {
		*size_r = wire;
		return 0;
	}
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? -1 : -2;
	*size_r = S_ISREG(st.st_mode) && st.st_size > 0 ?
	    (uint64_t)st.st_size : 0;
	return 0;
}

/* Adds the messages of path/sub. */
static enum store_rc
count_dir(const char *path, const char *sub, const struct index *idx,
    const struct index_map *map, uint64_t *bytes, uint32_t *count,
    char *err, size_t errsize)
{
	char dir[MAX_PATH_LEN];
	struct dirent *de;
	DIR *d;
	int fd, rc;

	if (str_fmt(dir, sizeof(dir), "%s/%s", path, sub) == -1) {
		errf(err, errsize, "mailbox %s: path too long", path);
		return STORE_TEMP;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		if (errno == ENOENT)
			return STORE_OK;
		errf(err, errsize, "%s: %s", dir, strerror(errno));
		return STORE_TEMP;
	}
	if ((d = fdopendir(fd)) == NULL) {
		errf(err, errsize, "%s: %s", dir, strerror(errno));
		close(fd);
		return STORE_TEMP;
	}
	for (;;) {
		uint64_t size;

		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (de->d_name[0] == '.' || (de->d_type != DT_REG &&
		    de->d_type != DT_UNKNOWN))
			continue;
		rc = file_size(dirfd(d), de->d_name, idx, map, &size);
		if (rc == -1)
			continue;	/* moved or removed meanwhile */
		if (rc == -2) {
			errf(err, errsize, "%s/%s: %s", dir, de->d_name,
			    strerror(errno));
			closedir(d);
			return STORE_TEMP;
		}
		*bytes = size > UINT64_MAX - *bytes ? UINT64_MAX :
		    *bytes + size;
		if (*count < UINT32_MAX)
			(*count)++;
	}
	if (errno != 0) {
		errf(err, errsize, "%s: %s", dir, strerror(errno));
		closedir(d);
		return STORE_TEMP;
	}
	closedir(d);
	return STORE_OK;
}

enum store_rc
maildir_usage(const char *path, uint64_t *bytes_r, uint32_t *count_r,
    char *err, size_t errsize)
{
	char ipath[MAX_PATH_LEN], why[256];
	struct index idx;
	struct index_map map;
	bool have_map = false;
	enum store_rc rc;
	struct buf b;
	size_t i;

	*bytes_r = 0;
	*count_r = 0;
	index_init(&idx);
	buf_init(&b, INDEX_MAX_BYTES);
	/* The index is a cache: missing, unreadable or corrupt, the names
	 * and stat(2) still give every size. */
	if (str_fmt(ipath, sizeof(ipath), "%s/%s", path, INDEX_FILE) == 0 &&
	    read_file(ipath, INDEX_MAX_BYTES, &b) == 0 &&
	    index_parse(b.data != NULL ? b.data : "", b.len, &idx, why,
	    sizeof(why)) == 0 && index_map_init(&map, idx.n) == 0) {
		have_map = true;
		for (i = 0; i < idx.n; i++)
			if (index_map_add(&map, idx.v[i].name,
			    index_base_len(idx.v[i].name), (uint32_t)i) == -1) {
				index_map_free(&map);
				have_map = false;
				break;
			}
	}
	buf_clear(&b);
	rc = count_dir(path, "new", &idx, have_map ? &map : NULL, bytes_r,
	    count_r, err, errsize);
	if (rc == STORE_OK)
		rc = count_dir(path, "cur", &idx, have_map ? &map : NULL,
		    bytes_r, count_r, err, errsize);
	if (have_map)
		index_map_free(&map);
	index_free(&idx);
	return rc;
}
