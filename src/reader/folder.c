/*
 * folder.c: Maildir and mbox mailboxes of the offline reader (see
 * folder.h).  Owns the lists of entries.  Trusts nothing in the
 * directories: names, types and sizes are checked, symbolic links are
 * not followed, and no change ever replaces a file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/limits.h"
#include "reader/folder.h"
#include "reader/mboxrd.h"
#include "reader/reader_limits.h"

/* Octets of an mbox message hashed with its offset into its id. */
#define MBOX_ID_OCTETS	4096

static void
hash_hex(const void *a, size_t alen, const void *b, size_t blen,
    char out[RD_HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* SHA-256 cannot fail but for memory; an id of zeros then still
	 * names the message (ids are checked for uniqueness). */
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, a, alen) != 1 ||
	    (blen > 0 && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen * 2 !=
	    RD_HASH_HEX) {
		memset(md, 0, sizeof(md));
		mdlen = RD_HASH_HEX / 2;
	}
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[RD_HASH_HEX] = '\0';
}

static int
cmp_hash(const void *a, const void *b)
{
	return strcmp(((const struct rd_entry *)a)->hash,
	    ((const struct rd_entry *)b)->hash);
}

static size_t
common_prefix(const char *a, const char *b)
{
	size_t n = 0;

	while (a[n] != '\0' && a[n] == b[n])
		n++;
	return n;
}

/* The shown length of each id: RD_ID_MIN digits, or one more than it
 * shares with its neighbours in hash order. */
static void
assign_ids(struct rd_box *box)
{
	size_t i, c;
	unsigned int len;

	qsort(box->entries, box->count, sizeof(*box->entries), cmp_hash);
	for (i = 0; i < box->count; i++) {
		len = RD_ID_MIN;
		if (i > 0 && (c = common_prefix(box->entries[i - 1].hash,
		    box->entries[i].hash)) + 1 > len)
			len = (unsigned int)c + 1;
		if (i + 1 < box->count && (c = common_prefix(
		    box->entries[i + 1].hash, box->entries[i].hash)) + 1 > len)
			len = (unsigned int)c + 1;
		box->entries[i].idlen = len > RD_HASH_HEX ? RD_HASH_HEX : len;
	}
}

static int
add_entry(struct rd_box *box, size_t *cap, struct rd_entry **e_r)
{
	struct rd_entry *n;
	size_t ncap;

	if (box->count >= READER_MAX_MESSAGES) {
		errno = EFBIG;
		return -1;
	}
	if (box->count == *cap) {
		ncap = *cap == 0 ? 64 : *cap * 2;
		if ((n = reallocarray(box->entries, ncap, sizeof(*n))) == NULL)
			return -1;
		box->entries = n;
		*cap = ncap;
	}
	*e_r = &box->entries[box->count++];
	memset(*e_r, 0, sizeof(**e_r));
	return 0;
}

/* The base name of a Maildir file name: up to its ':' info. */
static size_t
base_len(const char *name)
{
	const char *colon = strchr(name, ':');

	return colon != NULL ? (size_t)(colon - name) : strlen(name);
}

/* The flags of a "BASE:2,FLAGS" name, or "" without them. */
static const char *
info_flags(const char *name)
{
	const char *colon = strchr(name, ':');

	if (colon == NULL || strncmp(colon, ":2,", 3) != 0)
		return "";
	return colon + 3;
}

static int
scan_sub(struct rd_box *box, const char *sub, size_t *cap, char *err,
    size_t errsize)
{
	struct rd_entry *e;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	fd = openat(box->fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		errf(err, errsize, "%s: not a Maildir (%s/: %s)", box->path,
		    sub, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (add_entry(box, cap, &e) == -1) {
			errf(err, errsize, "%s: more than %d messages",
			    box->path, READER_MAX_MESSAGES);
			closedir(d);
			return -1;
		}
		if (asprintf(&e->name, "%s/%s", sub, de->d_name) == -1) {
			e->name = NULL;
			box->count--;
			errf(err, errsize, "%s", strerror(ENOMEM));
			closedir(d);
			return -1;
		}
		hash_hex(de->d_name, base_len(de->d_name), NULL, 0, e->hash);
		e->size = (uint64_t)st.st_size;
		e->mtime = st.st_mtime;
		e->seen = strchr(info_flags(de->d_name), 'S') != NULL;
	}
	if (errno != 0) {
		errf(err, errsize, "%s/%s: %s", box->path, sub,
		    strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

int
rd_box_open_maildir(struct rd_box *box, const char *path,
    const char *folder, char *err, size_t errsize)
{
	char dir[READER_MAX_FOLDER + 2];
	size_t cap = 0;

	memset(box, 0, sizeof(*box));
	box->kind = RD_MAILDIR;
	box->fd = -1;
	box->rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (box->rootfd == -1) {
		errf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (folder != NULL && strcmp(folder, RD_INBOX) == 0)
		folder = NULL;
	if (folder != NULL && !rd_folder_name_ok(folder)) {
		errf(err, errsize, "bad folder name '%.80s'", folder);
		rd_box_close(box);
		return -1;
	}
	if (folder != NULL) {
		(void)snprintf(dir, sizeof(dir), ".%s", folder);
		box->fd = openat(box->rootfd, dir, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC | O_NOFOLLOW);
		box->is_trash = strcmp(folder, RD_TRASH) == 0;
		if (asprintf(&box->path, "%s/%s", path, dir) == -1)
			box->path = NULL;
		if ((box->dir = strdup(dir)) == NULL) {
			free(box->path);
			box->path = NULL;
		}
	} else {
		box->fd = dup(box->rootfd);
		box->path = strdup(path);
	}
	if (box->fd == -1 || box->path == NULL) {
		errf(err, errsize, "%s%s%s: %s", path, folder != NULL ?
		    "/." : "", folder != NULL ? folder : "",
		    strerror(errno));
		rd_box_close(box);
		return -1;
	}
	if (scan_sub(box, "new", &cap, err, errsize) == -1 ||
	    scan_sub(box, "cur", &cap, err, errsize) == -1) {
		rd_box_close(box);
		return -1;
	}
	assign_ids(box);
	return 0;
}

/* The date of a From_ line ("From SENDER Mon Jan  1 00:00:00 2024",
 * in UTC), else dflt. */
static time_t
from_line_time(const char *line, time_t dflt)
{
	const char *p = strchr(line + 5, ' ');
	struct tm tm;
	time_t t;

	if (p == NULL)
		return dflt;
	memset(&tm, 0, sizeof(tm));
	while (*p == ' ')
		p++;
	if (strptime(p, "%a %b %e %H:%M:%S %Y", &tm) == NULL ||
	    (t = timegm(&tm)) == (time_t)-1)
		return dflt;
	return t;
}

int
rd_box_open_mbox(struct rd_box *box, const char *path, char *err,
    size_t errsize)
{
	char head[MBOX_ID_OCTETS], off[32], why[256];
	struct rd_entry *e;
	size_t cap = 0, i, n;
	ssize_t got;
	struct stat st;

	memset(box, 0, sizeof(*box));
	box->kind = RD_MBOX;
	box->rootfd = -1;
	box->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (box->fd == -1) {
		errf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((box->path = strdup(path)) == NULL) {
		errf(err, errsize, "%s", strerror(ENOMEM));
		goto fail;
	}
	if (fstat(box->fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		errf(err, errsize, "%s: not a regular file", path);
		goto fail;
	}
	if (mbox_lock_shared(box->fd) == -1) {
		errf(err, errsize, "%s: cannot lock for reading: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (mbox_scan(box->fd, READER_MAX_MESSAGES, &box->msgs, &n, why,
	    sizeof(why)) == -1) {
		errf(err, errsize, "%s: %s", path, why);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if (add_entry(box, &cap, &e) == -1) {
			errf(err, errsize, "%s", strerror(errno));
			goto fail;
		}
		e->mbox = &box->msgs[i];
		e->size = e->mbox->len;
		e->mtime = from_line_time(e->mbox->from_line, st.st_mtime);
		got = pread(box->fd, head, e->mbox->len < sizeof(head) ?
		    (size_t)e->mbox->len : sizeof(head), e->mbox->off);
		if (got < 0) {
			errf(err, errsize, "%s: %s", path, strerror(errno));
			goto fail;
		}
		(void)snprintf(off, sizeof(off), "%lld\n",
		    (long long)e->mbox->from_off);
		hash_hex(off, strlen(off), head, (size_t)got, e->hash);
	}
	assign_ids(box);
	return 0;
fail:
	rd_box_close(box);
	return -1;
}

void
rd_box_close(struct rd_box *box)
{
	size_t i;

	for (i = 0; i < box->count; i++)
		free(box->entries[i].name);
	free(box->entries);
	free(box->msgs);
	free(box->path);
	free(box->dir);
	if (box->fd != -1)
		close(box->fd);
	if (box->rootfd != -1)
		close(box->rootfd);
	memset(box, 0, sizeof(*box));
	box->fd = -1;
	box->rootfd = -1;
}

struct rd_entry *
rd_box_find(struct rd_box *box, const char *id, char *err, size_t errsize)
{
	struct rd_entry *found = NULL;
	char want[RD_HASH_HEX + 1];
	size_t i, n = strlen(id);

	for (i = 0; i < n && i < RD_HASH_HEX; i++) {
		char c = id[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			break;
		want[i] = c;
	}
	if (n == 0 || i != n) {
		errf(err, errsize, "no message %.80s in %s (an id is hex"
		    " digits, as 'postern list' shows)", id, box->path);
		return NULL;
	}
	want[n] = '\0';
	for (i = 0; i < box->count; i++) {
		if (strncmp(box->entries[i].hash, want, n) != 0)
			continue;
		if (found != NULL) {
			errf(err, errsize, "id %s is ambiguous in %s; give"
			    " more digits", id, box->path);
			return NULL;
		}
		found = &box->entries[i];
	}
	if (found == NULL)
		errf(err, errsize, "no message %s in %s", id, box->path);
	return found;
}

int
rd_box_message_fd(struct rd_box *box, const struct rd_entry *e,
    uint64_t *size_r, char *err, size_t errsize)
{
	char tmpl[MAX_PATH_LEN];
	const char *tmpdir;
	struct stat st;
	int fd;

	if (box->kind == RD_MAILDIR) {
		fd = openat(box->fd, e->name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY);
		if (fd == -1 || fstat(fd, &st) == -1) {
			errf(err, errsize, "%s/%s: %s", box->path, e->name,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
		*size_r = (uint64_t)st.st_size;
		return fd;
	}
	/* An mbox message is spooled unquoted, so that the MIME parser
	 * reads a file, never a copy in memory. */
	tmpdir = getenv("TMPDIR");
	if (tmpdir == NULL || tmpdir[0] != '/')
		tmpdir = "/tmp";
	fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		/* A file system without O_TMPFILE: a named file, unlinked
		 * at once. */
		if (str_fmt(tmpl, sizeof(tmpl), "%s/postern-XXXXXX", tmpdir) ==
		    0 && (fd = mkostemp(tmpl, O_CLOEXEC)) != -1)
			(void)unlink(tmpl);
	}
	if (fd == -1) {
		errf(err, errsize, "%s: temporary file: %s", tmpdir,
		    strerror(errno));
		return -1;
	}
	if (mbox_spool(box->fd, e->mbox, fd) == -1 ||
	    fstat(fd, &st) == -1 || lseek(fd, 0, SEEK_SET) == -1) {
		errf(err, errsize, "%s: %s", box->path, strerror(errno));
		close(fd);
		return -1;
	}
	*size_r = (uint64_t)st.st_size;
	return fd;
}

bool
rd_folder_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > READER_MAX_FOLDER || name[0] == '.' ||
	    name[n - 1] == '.' || strstr(name, "..") != NULL)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return false;
	}
	return true;
}

static int
fsync_at(int dirfd, const char *sub)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Renames the message's file to "to" (relative to the top folder; the
 * new name relative to the folder is kept_as), never over a file, and
 * fsyncs both directories. */
static int
rename_safe(struct rd_box *box, struct rd_entry *e, const char *to,
    const char *kept_as, char *err, size_t errsize)
{
	char fromdir[MAX_PATH_LEN], todir[MAX_PATH_LEN];
	char *n, *slash;

	if (renameat2(box->fd, e->name, box->rootfd, to, RENAME_NOREPLACE) ==
	    -1) {
		errf(err, errsize, "%s: %s -> %s: %s", box->path, e->name, to,
		    strerror(errno));
		return -1;
	}
	(void)snprintf(fromdir, sizeof(fromdir), "%s", e->name);
	(void)snprintf(todir, sizeof(todir), "%s", to);
	if ((slash = strrchr(fromdir, '/')) != NULL)
		*slash = '\0';
	if ((slash = strrchr(todir, '/')) != NULL)
		*slash = '\0';
	if (fsync_at(box->rootfd, todir) == -1 ||
	    fsync_at(box->fd, fromdir) == -1) {
		errf(err, errsize, "%s: fsync: %s", box->path,
		    strerror(errno));
		return -1;
	}
	if (kept_as != NULL && (n = strdup(kept_as)) != NULL) {
		free(e->name);
		e->name = n;
	}
	return 0;
}

int
rd_set_seen(struct rd_box *box, struct rd_entry *e, bool seen, char *err,
    size_t errsize)
{
	char to[MAX_PATH_LEN], cur[MAX_PATH_LEN], flags[64];
	const char *name = strchr(e->name, '/') + 1, *old;
	size_t bl = base_len(name), i, k = 0;
	char c;

	if (box->kind != RD_MAILDIR) {
		errf(err, errsize, "%s: an mbox is read-only here",
		    box->path);
		return -1;
	}
	if (e->seen == seen && strncmp(e->name, "cur/", 4) == 0)
		return 0;
	if (!seen && strncmp(e->name, "new/", 4) == 0)
		return 0;	/* in new/: unread already */
	/* The flags stay in ASCII order (Maildir's convention), S added
	 * or removed. */
	old = info_flags(name);
	for (c = 0x21; c < 0x7f && k + 1 < sizeof(flags); c++) {
		if (c == 'S') {
			if (seen)
				flags[k++] = c;
			continue;
		}
		for (i = 0; old[i] != '\0'; i++)
			if (old[i] == c) {
				flags[k++] = c;
				break;
			}
	}
	flags[k] = '\0';
	if (str_fmt(cur, sizeof(cur), "cur/%.*s:2,%s", (int)bl, name,
	    flags) == -1 || str_fmt(to, sizeof(to), "%s%s%s",
	    box->dir != NULL ? box->dir : "", box->dir != NULL ? "/" : "",
	    cur) == -1) {
		errf(err, errsize, "%s: name too long", e->name);
		return -1;
	}
	if (rename_safe(box, e, to, cur, err, errsize) == -1)
		return -1;
	e->seen = seen;
	return 0;
}

/* Creates the Maildir++ folder .NAME with tmp/, new/ and cur/ and its
 * maildirfolder mark, if missing, and fsyncs what it created. */
static int
make_folder(struct rd_box *box, const char *dir, char *err, size_t errsize)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	char p[MAX_PATH_LEN];
	size_t i;
	int fd;

	if (mkdirat(box->rootfd, dir, 0700) == -1 && errno != EEXIST)
		goto fail;
	for (i = 0; i < 3; i++) {
		if (str_fmt(p, sizeof(p), "%s/%s", dir, sub[i]) == -1 ||
		    (mkdirat(box->rootfd, p, 0700) == -1 && errno != EEXIST))
			goto fail;
	}
	if (str_fmt(p, sizeof(p), "%s/maildirfolder", dir) == -1)
		goto fail;
	fd = openat(box->rootfd, p, O_WRONLY | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1)
		goto fail;
	close(fd);
	if (fsync_at(box->rootfd, dir) == -1 || fsync(box->rootfd) == -1)
		goto fail;
	return 0;
fail:
	errf(err, errsize, "%s/%s: %s", box->path, dir, strerror(errno));
	return -1;
}

int
rd_move(struct rd_box *box, struct rd_entry *e, const char *folder,
    char *err, size_t errsize)
{
	char dir[READER_MAX_FOLDER + 2], to[MAX_PATH_LEN];

	if (box->kind != RD_MAILDIR) {
		errf(err, errsize, "%s: an mbox is read-only here",
		    box->path);
		return -1;
	}
	if (strcmp(folder, RD_INBOX) == 0) {
		if (str_fmt(to, sizeof(to), "%s", e->name) == -1)
			goto toolong;
	} else {
		if (!rd_folder_name_ok(folder)) {
			errf(err, errsize, "bad folder name '%.80s'", folder);
			return -1;
		}
		(void)snprintf(dir, sizeof(dir), ".%s", folder);
		if (make_folder(box, dir, err, errsize) == -1)
			return -1;
		if (str_fmt(to, sizeof(to), "%s/%s", dir, e->name) == -1)
			goto toolong;
	}
	if (strcmp(folder, RD_INBOX) == 0 ? box->dir == NULL :
	    box->dir != NULL && strcmp(box->dir + 1, folder) == 0) {
		errf(err, errsize, "the message is in %s already", folder);
		return -1;
	}
	return rename_safe(box, e, to, NULL, err, errsize);
toolong:
	errf(err, errsize, "%s: name too long", e->name);
	return -1;
}

int
rd_purge(struct rd_box *box, struct rd_entry *e, char *err,
    size_t errsize)
{
	char dir[8];

	if (box->kind != RD_MAILDIR) {
		errf(err, errsize, "%s: an mbox is read-only here",
		    box->path);
		return -1;
	}
	if (unlinkat(box->fd, e->name, 0) == -1) {
		errf(err, errsize, "%s/%s: %s", box->path, e->name,
		    strerror(errno));
		return -1;
	}
	memcpy(dir, e->name, 3);
	dir[3] = '\0';
	if (fsync_at(box->fd, dir) == -1) {
		errf(err, errsize, "%s/%s: fsync: %s", box->path, dir,
		    strerror(errno));
		return -1;
	}
	return 0;
}
