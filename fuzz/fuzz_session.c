/*
 * fuzz_session.c: whole POP3 sessions on arbitrary client input.
 *
 * The real pop3-worker code (line reader, command table, argument
 * parsing, every command, long replies, UPDATE) runs in this process on
 * one event loop; the fuzzer's bytes arrive on a socketpair as a client
 * would send them.  An in-process auth peer accepts user "u" with
 * password "p" (and fails everything else), so the input reaches the
 * TRANSACTION and UPDATE states on a real Maildir with a few messages,
 * which are put back before each run.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/config.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "server/posternd.h"
#include "server/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct config *cfg;
struct tls_server *tls_srv;

static struct config conf;
static struct ipc_chan *auth_peer;
static char root[64];
static uint64_t conn_id;

static const char *const messages[] = {
	"Subject: one\n\nbody\n.dot line\n.\nend\n",
	"Subject: two\r\n\r\nno final newline",
	"",
};

static void
auth_answer(struct ipc_chan *ch, struct ipc_in *in, void *arg)
{
	static struct ipc_msg m;
	const char *user, *pass = "";
	uint32_t st;

	if (in->type == MSG_SASL_ABORT)
		return;
	if (in->type == MSG_SASL_START || in->type == MSG_SASL_STEP) {
		/* A challenge for a start, a failure for a response: the
		 * session's SASL line state gets exercised. */
		if (in->type == MSG_SASL_START) {
			ipc_msg_init(&m, MSG_SASL_CHALLENGE, in->id);
			ipc_put_str(&m, "");
		} else {
			ipc_msg_init(&m, MSG_AUTH_REPLY, in->id);
			ipc_put_u32(&m, AUTH_STATUS_FAIL);
			ipc_put_str(&m, "");
			ipc_put_u32(&m, AUTH_USER_DEFAULT);
			ipc_put_u32(&m, AUTH_USER_DEFAULT);
			ipc_put_str(&m, "bad-credentials");
		}
		if (ipc_send(ch, &m) == -1)
			abort();
		return;
	}
	user = ipc_get_str(in, 255);
	if (in->type == MSG_AUTH_PASS)
		pass = ipc_get_str(in, 1024);
	else {
		(void)ipc_get_str(in, 512);
		(void)ipc_get_str(in, 64);
	}
	st = ipc_done(in) && strcmp(user, "u") == 0 &&
	    strcmp(pass, "p") == 0 ? AUTH_STATUS_OK : AUTH_STATUS_FAIL;
	ipc_msg_init(&m, MSG_AUTH_REPLY, in->id);
	ipc_put_u32(&m, st);
	ipc_put_str(&m, user);
	ipc_put_u32(&m, AUTH_USER_DEFAULT);
	ipc_put_u32(&m, AUTH_USER_DEFAULT);
	ipc_put_str(&m, st == AUTH_STATUS_OK ? "ok" : "bad-credentials");
	if (ipc_send(ch, &m) == -1)
		abort();
}

static void
auth_gone(struct ipc_chan *ch, void *arg)
{
	abort();
}

static void
put_messages(void)
{
	char path[256];
	size_t i;

	for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/u/new/100%zu.M1P1.fuzz", root,
		    i);
		if ((f = fopen(path, "w")) == NULL)
			continue;
		fputs(messages[i], f);
		fclose(f);
	}
}

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	return remove(path);
}

static void
cleanup(void)
{
	(void)nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
init(void)
{
	int sv[2];

	snprintf(root, sizeof(root), "/tmp/postern-fuzz-session-%ld",
	    (long)getpid());
	if (mkdir(root, 0700) == -1 && errno != EEXIST)
		abort();
	atexit(cleanup);
	log_init("fuzz", LOG_TO_NULL);
	config_defaults(&conf);
	free(conf.mail_root);
	conf.mail_root = strdup(root);
	conf.auth_fail_delay_ms = 0;
	conf.auth_fail_delay_max_ms = 0;
	conf.max_auth_failures = 1000;
	conf.max_bad_commands = 1000;
	conf.expire_days = 0;
	cfg = &conf;
	if ((pop3_base = event_base_new()) == NULL)
		abort();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	pop3_attach_auth(0, sv[0]);
	auth_peer = ipc_chan_new(pop3_base, sv[1], auth_answer, auth_gone,
	    NULL);
	if (auth_peer == NULL)
		abort();
	/* Say every credential form exists, so AUTH is offered. */
	{
		static struct ipc_msg hello;

		ipc_msg_init(&hello, MSG_AUTH_HELLO, 0);
		ipc_put_u32(&hello, AUTH_HELLO_HAS_CRYPT |
		    AUTH_HELLO_HAS_SECRET | AUTH_HELLO_HAS_SCRAM1 |
		    AUTH_HELLO_HAS_SCRAM256);
		if (ipc_send(auth_peer, &hello) == -1)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	char sink[65536];
	size_t off = 0;
	int cs[2], i, quiet = 0;

	if (!ready) {
		init();
		ready = true;
	}
	if (size > 16384)
		return 0;
	put_messages();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    cs) == -1)
		abort();
	pop3_start_session(cs[0], ++conn_id, "127.0.0.1", 1110, 0, false);
	/* Feed the input as the socket takes it; run until the session
	 * has been quiet for a while, or has closed. */
	for (i = 0; i < 2000 && quiet < 8; i++) {
		ssize_t n;
		bool moved = false;

		if (off < size) {
			n = write(cs[1], data + off, size - off);
			if (n > 0) {
				off += (size_t)n;
				moved = true;
			}
		}
		event_base_loop(pop3_base, EVLOOP_NONBLOCK);
		while ((n = read(cs[1], sink, sizeof(sink))) > 0)
			moved = true;
		if (n == 0)
			break;		/* the server closed the session */
		quiet = moved ? 0 : quiet + 1;
	}
	close(cs[1]);
	for (i = 0; i < 16; i++)
		event_base_loop(pop3_base, EVLOOP_NONBLOCK);
	return 0;
}
