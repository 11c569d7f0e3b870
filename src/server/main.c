/*
 * main.c: posternd's command line.  Reads the configuration, then hands
 * over to the master process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/log.h"
#include "posternd.h"
#include "tls/tls.h"

#define DEFAULT_CONFIG	"/etc/postern/postern.conf"

static void
usage(void)
{
	fprintf(stderr, "usage: posternd [-dtV] [-c config]\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	const char *path = DEFAULT_CONFIG;
	bool test_only = false, debug = false;
	struct config *c;
	char err[512];
	int ch;

	while ((ch = getopt(argc, argv, "c:dtV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("posternd %s\n", POSTERN_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		perror("posternd");
		return 1;
	}
	if (config_load(path, c, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		free(c);
		return 1;
	}
	if (test_only) {
		struct tls_server *ts = tls_server_new(c, err, sizeof(err));

		if (ts == NULL && err[0] != '\0') {
			fprintf(stderr, "%s: %s\n", path, err);
			config_free(c);
			free(c);
			return 1;
		}
		tls_server_free(&ts);
		printf("%s: ok\n", path);
		config_free(c);
		free(c);
		return 0;
	}
	log_init("posternd", c->log_syslog ? LOG_TO_SYSLOG : LOG_TO_STDERR);
	{
		/* Every process holds secrets (TLS keys, passwords in
		 * flight): none of them may leave a core file. */
		struct rlimit rl = { 0, 0 };

		if (setrlimit(RLIMIT_CORE, &rl) == -1)
			log_warn("cannot disable core dumps");
	}
	log_set_debug(debug || c->log_debug);
	return master_run(c, path);
}
