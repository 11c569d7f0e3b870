/*
 * fuzz_ipc.c: the typed IPC readers on arbitrary datagrams, decoded the
 * way each process decodes the messages it accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_in in;
	const char *s;

	if (!ipc_in_init(&in, data, size, -1))
		return 0;
	switch (in.type % 4) {
	case 0:	/* a connection: ip, port, ip, port, failures */
		s = ipc_get_str(&in, 63);
		(void)ipc_get_u32(&in);
		(void)ipc_get_str(&in, 63);
		(void)ipc_get_u32(&in);
		(void)ipc_get_u32(&in);
		break;
	case 1:	/* USER/PASS */
		s = ipc_get_str(&in, 255);
		(void)ipc_get_str(&in, 1024);
		break;
	case 2:	/* APOP */
		s = ipc_get_str(&in, 255);
		(void)ipc_get_str(&in, 512);
		(void)ipc_get_str(&in, 64);
		break;
	default:	/* an auth reply */
		(void)ipc_get_u32(&in);
		s = ipc_get_str(&in, 255);
		break;
	}
	if (ipc_done(&in) && strlen(s) > 255)
		abort();
	if (in.p > in.end)
		abort();
	return 0;
}
