/*
 * backend.h: the two mailbox formats behind store.h.  Internal to
 * src/store: store.c picks the backend from the location string and
 * calls these; each function has the contract of its mailbox_*
 * namesake in store.h.
 */
#ifndef POSTERN_STORE_BACKEND_H
#define POSTERN_STORE_BACKEND_H

#include "store/store.h"

struct maildir;
struct maildir_delivery;
struct mbox;
struct mbox_delivery;

/* Errors that retrying will not cure are PERM; the rest are TEMP. */
enum store_rc store_errno_rc(int e);

/* EXPIRE (RFC 2449 section 6.7): first retrieved at retr_time (0:
 * never) and due for removal with expire_days (-1: never, 0: now). */
bool	store_expired(int64_t retr_time, int64_t expire_days, time_t now);

/* ---- Maildir (maildir.c) ---- */

enum store_rc maildir_open(const char *path, const struct mailbox_opts *,
    struct maildir **mb_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
uint32_t maildir_count(const struct maildir *);
const struct msg_info *maildir_msg(const struct maildir *, uint32_t idx);
enum store_rc maildir_msg_open(struct maildir *, uint32_t idx, int *fd_r)
    ATTR_WARN_UNUSED;
enum store_rc maildir_commit(struct maildir *, const bool *deleted,
    const bool *retrieved, int64_t expire_days, time_t now,
    uint32_t *removed_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
void	maildir_close(struct maildir **);
enum store_rc maildir_deliver_begin(const char *path, uint64_t max_size,
    struct maildir_delivery **d_r, char *err, size_t errsize)
    ATTR_WARN_UNUSED;
enum store_rc maildir_deliver_write(struct maildir_delivery *,
    const void *data, size_t len, char *err, size_t errsize)
    ATTR_WARN_UNUSED;
enum store_rc maildir_deliver_commit(struct maildir_delivery **,
    struct delivery_info *info_r, char *err, size_t errsize)
    ATTR_WARN_UNUSED;
void	maildir_deliver_abort(struct maildir_delivery **);
enum store_rc maildir_usage(const char *path, uint64_t *bytes_r,
    uint32_t *count_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
enum store_rc maildir_import_uidls(const char *path, struct uidl_import *v,
    size_t n, unsigned int flags, char *err, size_t errsize)
    ATTR_WARN_UNUSED;

/* ---- mbox (mbox.c) ---- */

enum store_rc mbox_open(const char *path, const struct mailbox_opts *,
    struct mbox **mb_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
uint32_t mbox_count(const struct mbox *);
const struct msg_info *mbox_msg(const struct mbox *, uint32_t idx);
/* The descriptor is positioned at the message's first octet; the
 * message is msg_info.stored_size octets, mboxrd-quoted (MSG_MBOXRD). */
enum store_rc mbox_msg_open(struct mbox *, uint32_t idx, int *fd_r)
    ATTR_WARN_UNUSED;
enum store_rc mbox_commit(struct mbox *, const bool *deleted,
    const bool *retrieved, int64_t expire_days, time_t now,
    uint32_t *removed_r, char *err, size_t errsize) ATTR_WARN_UNUSED;
void	mbox_close(struct mbox **);
enum store_rc mbox_deliver_begin(const char *path, uint64_t max_size,
    const char *sender, struct mbox_delivery **d_r, char *err,
    size_t errsize) ATTR_WARN_UNUSED;
enum store_rc mbox_deliver_write(struct mbox_delivery *, const void *data,
    size_t len, char *err, size_t errsize) ATTR_WARN_UNUSED;
enum store_rc mbox_deliver_commit(struct mbox_delivery **,
    struct delivery_info *info_r, char *err, size_t errsize)
    ATTR_WARN_UNUSED;
void	mbox_deliver_abort(struct mbox_delivery **);

/* The file of mbox.c beside the mbox at path: dir/.<name><suffix>.
 * 0, or -1 (ENAMETOOLONG). */
int	mbox_side_file(const char *path, const char *suffix, char *out,
	    size_t outsize) ATTR_WARN_UNUSED;

#endif
