/*
 * privsep.c: dropping a child's privileges in a fixed order, then
 * checking that they cannot be regained.  Runs only when posternd was
 * started as root; as an ordinary user every process keeps that user.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/limits.h"

#include "lib/log.h"
#include "posternd.h"

struct drop_to {
	uid_t	uid;
	gid_t	gid;
	bool	set;
};

static struct drop_to drop_pop3, drop_auth;

static int
resolve_one(const char *name, struct drop_to *d, char *err, size_t errsize)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (pw == NULL) {
		snprintf(err, errsize, "user '%s' does not exist; create it"
		    " or set mail_user/auth_user", name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errsize, "refusing to run children as root"
		    " (user '%s' has uid 0)", name);
		return -1;
	}
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	d->set = true;
	return 0;
}

int
privsep_chown_mail(const char *path)
{
	if (!drop_pop3.set)
		return 0;
	return chown(path, drop_pop3.uid, drop_pop3.gid);
}

int
privsep_resolve(const struct config *c, char *err, size_t errsize)
{
	if (geteuid() != 0) {
		drop_pop3.set = drop_auth.set = false;
		return 0;
	}
	if (resolve_one(c->mail_user, &drop_pop3, err, errsize) == -1 ||
	    resolve_one(c->auth_user, &drop_auth, err, errsize) == -1)
		return -1;
	return 0;
}

/*
 * Landlock (Linux 5.13+): after this, the process can reach files only
 * beneath the given directories: rw ones with every right, ro ones for
 * reading.  Returns the ABI version applied, 0 if the kernel has no
 * Landlock, -1 on failure (why set).
 */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)	/* kernel ABI 3 */
#endif
#define LL_FS_ABI1 (LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
	LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
	LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)

static int
landlock_add(int ruleset, const char *path, uint64_t access, char *why,
    size_t whysize)
{
	struct landlock_path_beneath_attr pb;
	int fd, rc;

	fd = open(path, O_PATH | O_CLOEXEC | O_DIRECTORY);
	if (fd == -1) {
		snprintf(why, whysize, "%s: %s", path, strerror(errno));
		return -1;
	}
	memset(&pb, 0, sizeof(pb));
	pb.allowed_access = access;
	pb.parent_fd = fd;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset,
	    LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	if (rc == -1)
		snprintf(why, whysize, "landlock rule for %s: %s", path,
		    strerror(errno));
	close(fd);
	return rc;
}

static int
landlock_confine(const char *rw, const char *ro, char *why, size_t whysize)
{
	struct landlock_ruleset_attr attr;
	uint64_t handled = LL_FS_ABI1;
	long abi;
	int ruleset;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return 0;
	if (abi >= 2)
		handled |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = handled;
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr,
	    sizeof(attr), 0);
	if (ruleset == -1) {
		snprintf(why, whysize, "landlock ruleset: %s", strerror(errno));
		return -1;
	}
	if ((rw != NULL && landlock_add(ruleset, rw, handled &
	    ~(uint64_t)LANDLOCK_ACCESS_FS_EXECUTE, why, whysize) == -1) ||
	    (ro != NULL && landlock_add(ruleset, ro,
	    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR, why,
	    whysize) == -1)) {
		close(ruleset);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) == -1) {
		snprintf(why, whysize, "landlock: %s", strerror(errno));
		close(ruleset);
		return -1;
	}
	close(ruleset);
	return (int)abi;
}

/*
 * The system calls a worker makes: glibc, libevent, OpenSSL, libxcrypt
 * and the sanitizer runtimes of the test builds.  Anything else fails
 * with EPERM; in particular execve, ptrace, bind, listen, accept and
 * socket() for anything but AF_UNIX (syslog's socket) are refused.
 */
static const char *const seccomp_allowed[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
	"pwritev", "close", "fstat", "newfstatat", "statx", "stat", "lstat",
	"lseek", "mmap", "munmap", "mprotect", "mremap", "madvise", "brk",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
	"getegid", "getresuid", "getresgid", "clock_gettime", "clock_getres",
	"gettimeofday", "time", "nanosleep", "clock_nanosleep",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "poll", "ppoll", "select", "pselect6", "eventfd2",
	"pipe2", "sendmsg", "recvmsg", "sendto", "recvfrom", "sendfile",
	"setsockopt", "getsockopt", "getsockname", "getpeername", "shutdown",
	"connect", "openat", "open", "unlinkat", "unlink", "renameat",
	"rename", "renameat2", "mkdir", "mkdirat", "fsync", "fdatasync",
	"fcntl", "getdents64", "ftruncate", "flock", "utimensat", "fchmod",
	"access", "faccessat", "faccessat2", "readlink", "readlinkat", "dup",
	"dup2", "dup3", "exit", "exit_group", "futex", "getrandom", "uname",
	"ioctl", "prctl", "set_robust_list", "rseq", "restart_syscall",
	"tgkill", "getrlimit", "prlimit64", "sched_yield",
	"sched_getaffinity", "getcwd", "umask", "linkat", "memfd_create",
};

/* With inet (a submission child speaking SMTP to xmit_relay), socket()
 * may also make IPv4 and IPv6 sockets. */
static void
seccomp_confine(const char *role, bool inet)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	size_t i;
	int rc = f == NULL ? -ENOMEM : 0;

	for (i = 0; rc == 0 && i < N_ELEMENTS(seccomp_allowed); i++) {
		int nr = seccomp_syscall_resolve_name(seccomp_allowed[i]);

		if (nr != __NR_SCMP_ERROR)
			rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
	}
	if (rc == 0) {
		struct scmp_arg_cmp unix_only = { .arg = 0,
		    .op = SCMP_CMP_EQ, .datum_a = AF_UNIX, .datum_b = 0 };

		rc = seccomp_rule_add_array(f, SCMP_ACT_ALLOW,
		    SCMP_SYS(socket), 1, &unix_only);
	}
	if (rc == 0 && inet) {
		struct scmp_arg_cmp v4 = { .arg = 0, .op = SCMP_CMP_EQ,
		    .datum_a = AF_INET, .datum_b = 0 };
		struct scmp_arg_cmp v6 = { .arg = 0, .op = SCMP_CMP_EQ,
		    .datum_a = AF_INET6, .datum_b = 0 };

		rc = seccomp_rule_add_array(f, SCMP_ACT_ALLOW,
		    SCMP_SYS(socket), 1, &v4);
		if (rc == 0)
			rc = seccomp_rule_add_array(f, SCMP_ACT_ALLOW,
			    SCMP_SYS(socket), 1, &v6);
	}
	if (rc == 0)
		rc = seccomp_load(f);
	seccomp_release(f);
	if (rc != 0)
		fatalx("%s: cannot load the seccomp filter: %s", role,
		    strerror(-rc));
	log_info("%s: seccomp allows %zu system calls", role,
	    N_ELEMENTS(seccomp_allowed) + 1);
}

/*
 * Confines a child to what its role needs: a pop3 worker and the lmtp
 * process to the mail root (they cannot open the user database, nor
 * execute anything), an auth worker to reading the directory of the user database (it cannot
 * open any mailbox).  Logs the result; a kernel without Landlock is
 * logged and tolerated, a failure to apply it is fatal.
 */
static void
confine(const struct config *c, const char *role)
{
	char dbdir[MAX_PATH_LEN], why[512];
	bool auth = strcmp(role, "auth") == 0;
	char *slash;
	int abi;

	if (auth) {
		if (str_fmt(dbdir, sizeof(dbdir), "%s", c->user_db) == -1)
			fatalx("%s: user_db path too long", role);
		slash = strrchr(dbdir, '/');
		if (slash == NULL)
			fatalx("%s: user_db %s is not absolute", role,
			    c->user_db);
		slash[slash == dbdir ? 1 : 0] = '\0';
		if (strncmp(c->mail_root, dbdir, strlen(dbdir)) == 0 &&
		    (c->mail_root[strlen(dbdir)] == '/' ||
		    c->mail_root[strlen(dbdir)] == '\0' ||
		    strcmp(dbdir, "/") == 0))
			log_warnx("%s: mail_root %s lies inside %s, the"
			    " directory of user_db: auth workers can read"
			    " mail; keep them apart", role, c->mail_root,
			    dbdir);
		abi = landlock_confine(NULL, dbdir, why, sizeof(why));
	} else
		abi = landlock_confine(c->mail_root, NULL, why, sizeof(why));
	if (abi == -1)
		fatalx("%s: cannot confine the process: %s", role, why);
	if (abi == 0)
		log_warnx("%s: this kernel has no Landlock; the process is"
		    " not confined to its files", role);
	else
		log_info("%s: landlock abi=%d confines files to %s%s", role,
		    abi, auth ? dbdir : c->mail_root, auth ? " (read)" : "");
	seccomp_confine(role, false);
}

/* setgroups, setresgid, setresuid, then a check that it holds. */
static void
set_ids(const struct drop_to *d, const char *role)
{
	if (setgroups(1, &d->gid) == -1 ||
	    setresgid(d->gid, d->gid, d->gid) == -1 ||
	    setresuid(d->uid, d->uid, d->uid) == -1)
		fatal("%s: cannot drop privileges to uid %u", role,
		    (unsigned int)d->uid);
	if (setuid(0) != -1)
		fatalx("%s: privileges could be regained", role);
}

/*
 * A submission child runs as mail_user.  One that runs xmit_command is
 * confined no further: the command must execute, and Postfix's sendmail
 * hands the message to a set-group-ID postdrop, which no-new-privileges
 * would defeat.  One that speaks SMTP to xmit_relay (the relay's
 * address already resolved) reaches no file and may make TCP sockets.
 */
void
privsep_drop_submit(const struct config *c, bool relay)
{
	char why[512];

	if (drop_pop3.set)
		set_ids(&drop_pop3, "submit");
	if (!relay)
		return;
	if (landlock_confine(NULL, NULL, why, sizeof(why)) == -1)
		fatalx("submit: cannot confine the process: %s", why);
	seccomp_confine("submit", true);
}

void
privsep_drop(const struct config *c, const char *role)
{
	const struct drop_to *d = strcmp(role, "auth") == 0 ? &drop_auth :
	    &drop_pop3;

	/* Core dumps are off in every process (main.c); passwords pass
	 * through auth workers: not even a same-uid peer may trace them. */
	if (strcmp(role, "auth") == 0 &&
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		log_warn("prctl dumpable");
	if (!d->set) {
		confine(c, role);
		return;
	}
	set_ids(d, role);
	if (strcmp(role, "auth") == 0)
		(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	confine(c, role);
}
