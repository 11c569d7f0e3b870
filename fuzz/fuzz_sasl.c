/*
 * fuzz_sasl.c: the server side of SASL (src/auth/sasl.c) on arbitrary
 * client responses, for every mechanism, against a real user database.
 *
 * The first octet picks the mechanism and the flags; the rest is split
 * at NUL octets into client responses.  Each response is sent base64
 * encoded (what a well-formed client does), except that a response
 * starting with 0x01 goes as it is, so that the base64 decoder is
 * fuzzed too.  An exchange must end within its responses or keep asking;
 * a success must name a valid user.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "auth/sasl.h"
#include "auth/userdb.h"
#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config conf;
static struct sasl_env env;

static void
setup(void)
{
	static char dir[] = "/tmp/fuzz-sasl-XXXXXX";
	struct scram_cred c1, c256;
	char path[128], t1[SCRAM_TEXT_MAX], t256[SCRAM_TEXT_MAX], err[256];
	FILE *f;

	if (mkdtemp(dir) == NULL)
		abort();
	(void)snprintf(path, sizeof(path), "%s/users", dir);
	/* A cheap {PLAIN} password, so PLAIN and LOGIN run fast for a
	 * known user; the salt is fixed so runs are reproducible. */
	if (scram_cred_make_salted(0, "p", 4096, "saltsalt", 8, &c1) == -1 ||
	    scram_cred_make_salted(1, "p", 4096, "saltsalt", 8, &c256) ==
	    -1 || scram_cred_format(&c1, t1, sizeof(t1)) == -1 ||
	    scram_cred_format(&c256, t256, sizeof(t256)) == -1)
		abort();
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fprintf(f, "u:{PLAIN}p::::::scram-sha-1=%s scram-sha-256=%s\n"
	    "d:{PLAIN}p::::::disabled=yes\n"
	    "m:{PLAIN}p\n", t1, t256);
	fclose(f);
	config_defaults(&conf);
	conf.master_users[0] = strdup("m");
	conf.n_master_users = 1;
	conf.scram_iterations = 4096;
	env.cfg = &conf;
	if (userdb_open(path, USERDB_PASSWD_FILE, &env.db, err,
	    sizeof(err)) == -1 || sasl_init() == -1)
		abort();
	memset(env.fake_key, 7, sizeof(env.fake_key));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct sasl_req req;
	struct sasl_outcome out;
	struct sasl_xchg *x;
	enum sasl_status st = SASL_CONTINUE;
	const uint8_t *p, *end, *nul;
	char *challenge, *b64;
	size_t n;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	memset(&req, 0, sizeof(req));
	req.mech = (enum sasl_mech)(data[0] % MECH_COUNT);
	req.plus_offered = (data[0] & 0x80) != 0;
	req.cb_unique = (data[0] & 0x40) ? "dGxzLXVuaXF1ZQ==" : "";
	req.cb_exporter = (data[0] & 0x20) ? "ZXhwb3J0ZXI=" : "";
	req.external_id = (data[0] & 0x10) ? "u" : "";
	if ((x = sasl_new(&env, &req)) == NULL)
		return 0;
	p = data + 1;
	end = data + size;
	/* No initial response first, when the second octet says so. */
	if (p < end && *p == 0xff) {
		p++;
		st = sasl_step(x, NULL, &challenge, &out);
		free(challenge);
	}
	while (st == SASL_CONTINUE && p <= end) {
		nul = memchr(p, '\0', (size_t)(end - p));
		n = (size_t)((nul != NULL ? nul : end) - p);
		if (n > 0 && p[0] == 0x01) {
			if ((b64 = strndup((const char *)p + 1, n - 1)) == NULL)
				abort();
		} else {
			if ((b64 = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
				abort();
			(void)EVP_EncodeBlock((unsigned char *)b64, p, (int)n);
		}
		st = sasl_step(x, b64, &challenge, &out);
		free(b64);
		free(challenge);
		if (nul == NULL)
			break;
		p = nul + 1;
	}
	if (st == SASL_OK && !username_valid(out.user))
		abort();
	if (st != SASL_CONTINUE && out.reason == NULL)
		abort();
	sasl_free(&x);
	return 0;
}
