/*
 * fuzz_fetchconf.c: the parser of postern fetch's account file
 * (src/client/account.c) on arbitrary text.  It must accept or refuse
 * with a message, and what it accepts must be findable by name and keep
 * the rules of account.h: exactly one delivery target, at most one
 * password source, tls_cert with tls_key, the TLS keys only with TLS,
 * bounded pins and auth lists of known methods.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/account.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fetch_conf fc;
	char err[512];
	size_t i;

	err[0] = '\0';
	if (fetch_conf_parse("fetch.conf", (const char *)data, size, &fc, err,
	    sizeof(err)) == -1) {
		if (err[0] == '\0' || fc.count != 0)
			abort();
		return 0;
	}
	for (i = 0; i < fc.count; i++) {
		const struct account *a = &fc.accounts[i];
		size_t k;

		if (fetch_conf_find(&fc, a->name) != a ||
		    (a->maildir != NULL) + (a->mbox != NULL) +
		    (a->mda != NULL) != 1 ||
		    (a->password_file != NULL && a->password_command !=
		    NULL) || (a->tls_cert == NULL) != (a->tls_key == NULL) ||
		    a->npins > FETCH_MAX_PINS ||
		    a->nauth > ACCOUNT_AUTH_COUNT ||
		    (a->tls == ACCOUNT_TLS_NONE && (a->npins > 0 ||
		    a->tls_cert != NULL || !a->insecure)))
			abort();
		for (k = 0; k < a->nauth; k++)
			if (a->auth[k] >= ACCOUNT_AUTH_COUNT)
				abort();
	}
	fetch_conf_free(&fc);
	return 0;
}
