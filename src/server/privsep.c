/*
 * privsep.c: dropping a child's privileges in a fixed order, then
 * checking that they cannot be regained.  Runs only when posternd was
 * started as root; as an ordinary user every process keeps that user.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

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

void
privsep_drop(const struct config *c, const char *role)
{
	const struct drop_to *d = strcmp(role, "auth") == 0 ? &drop_auth :
	    &drop_pop3;

	if (strcmp(role, "auth") == 0) {
		/* Secrets live here: no core dumps, no ptrace by peers. */
		struct rlimit rl = { 0, 0 };

		if (setrlimit(RLIMIT_CORE, &rl) == -1)
			log_warn("setrlimit core");
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
			log_warn("prctl dumpable");
	}
	if (!d->set)
		return;
	if (setgroups(1, &d->gid) == -1 ||
	    setresgid(d->gid, d->gid, d->gid) == -1 ||
	    setresuid(d->uid, d->uid, d->uid) == -1)
		fatal("%s: cannot drop privileges to uid %u", role,
		    (unsigned int)d->uid);
	if (setuid(0) != -1)
		fatalx("%s: privileges could be regained", role);
	if (strcmp(role, "auth") == 0)
		(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
