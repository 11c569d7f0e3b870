/*
 * folder.h: the mailboxes the offline reader works on: a Maildir (with
 * its Maildir++ sub-folders) or, read-only, an mbox file; the stable
 * short ids of their messages; and the Maildir changes (the Seen flag,
 * moving to a folder, the trash, purging).
 *
 * Ids: the SHA-256 of a Maildir message's base name (the file name
 * without its ":2,FLAGS" info), so that an id survives flag changes and
 * moves, or, in an mbox, of the message's offset and its first octets.
 * A message is shown by the first 8 hex digits of its hash, or more when
 * another message of the mailbox shares them; any prefix that is unique
 * selects it.
 */
#ifndef POSTERN_READER_FOLDER_H
#define POSTERN_READER_FOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "lib/attrs.h"

#define RD_HASH_HEX	64
#define RD_ID_MIN	8
#define RD_TRASH	"Trash"
#define RD_INBOX	"INBOX"

enum rd_kind { RD_MAILDIR, RD_MBOX };

struct mbox_msg;

struct rd_entry {
	char		 hash[RD_HASH_HEX + 1];
	unsigned int	 idlen;		/* hex digits shown */
	char		*name;		/* new/BASE, cur/BASE:2,FL */
	struct mbox_msg	*mbox;		/* mbox: its position */
	uint64_t	 size;		/* octets as stored */
	time_t		 mtime;		/* file, or From_ line */
	bool		 seen;		/* Maildir: the S flag */
};

struct rd_box {
	enum rd_kind	 kind;
	char		*path;
	int		 fd;		/* the folder, or the mbox */
	int		 rootfd;	/* Maildir: the top (INBOX) folder */
	char		*dir;		/* ".FOLDER", NULL: the top */
	bool		 is_trash;	/* the folder is .Trash */
	struct rd_entry	*entries;
	size_t		 count;
	struct mbox_msg	*msgs;		/* mbox: the scan */
};

/* Opens the Maildir at path, or its Maildir++ folder .FOLDER if folder
 * is not NULL (it must have cur/ and new/), and lists its messages; or
 * opens the mbox at path read-only under a shared lock and finds its
 * messages.  0, or -1 with a reason in err. */
int	rd_box_open_maildir(struct rd_box *, const char *path,
	    const char *folder, char *err, size_t errsize) ATTR_WARN_UNUSED;
int	rd_box_open_mbox(struct rd_box *, const char *path, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;
void	rd_box_close(struct rd_box *);

/* The message whose id starts with id (hex, any case).  NULL with a
 * reason in err: no such message, or more than one. */
struct rd_entry *rd_box_find(struct rd_box *, const char *id, char *err,
	    size_t errsize);

/* A descriptor (positioned at 0) of the message's exact octets: the
 * Maildir file itself, or an unlinked temporary file holding the mbox
 * message unquoted.  The size in *size_r.  -1 with a reason in err. */
int	rd_box_message_fd(struct rd_box *, const struct rd_entry *,
	    uint64_t *size_r, char *err, size_t errsize) ATTR_WARN_UNUSED;

/* True if name is a folder name: 1..READER_MAX_FOLDER octets of
 * [A-Za-z0-9._-], not starting or ending with '.', no "..". */
bool	rd_folder_name_ok(const char *name);

/* Maildir only.  Sets or clears the Seen flag (a message in new/ moves
 * to cur/ when set); 0, or -1 with a reason in err. */
int	rd_set_seen(struct rd_box *, struct rd_entry *, bool seen,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/* Moves the message into the Maildir++ folder .NAME of the Maildir
 * (created with tmp/, new/ and cur/ if missing), or into the top
 * folder for "INBOX", keeping its file name and sub-directory; never
 * over an existing file.  0 or -1. */
int	rd_move(struct rd_box *, struct rd_entry *, const char *folder,
	    char *err, size_t errsize) ATTR_WARN_UNUSED;

/* Removes the message's file and fsyncs its directory.  0 or -1. */
int	rd_purge(struct rd_box *, struct rd_entry *, char *err,
	    size_t errsize) ATTR_WARN_UNUSED;

#endif
