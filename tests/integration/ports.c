/* ports.c — loopback ports below the ephemeral range (ports.h says why). */
#include "ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static bool bindable(unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

unsigned kf_test_free_port(void)
{
	static unsigned short seed[3];
	static unsigned handed[64];
	static unsigned n_handed;

	if (!seed[0] && !seed[1] && !seed[2]) {
		/* Tests started together must not draw the same sequence. */
		seed[0] = (unsigned short)getpid();
		seed[1] = (unsigned short)time(NULL);
		seed[2] = (unsigned short)clock();
	}
	for (int draw = 0; draw < 200; draw++) {
		unsigned port = KF_TEST_PORT_MIN +
			(unsigned)nrand48(seed) % (KF_TEST_PORT_END - KF_TEST_PORT_MIN);
		bool seen = false;

		for (unsigned i = 0; i < n_handed && i < 64; i++)
			seen |= handed[i] == port;
		if (seen || !bindable(port))
			continue;
		handed[n_handed++ % 64] = port;
		return port;
	}
	return 0;
}
