/* layering-probe.c - a deliberate violation: the layering check must reject
 * an archive that calls into the kernel, or it proves nothing. */
#include <sys/socket.h>

int layering_probe(void);

/* layering_probe - reference socket(2) so the archive has it undefined */
int layering_probe(void)
{
	return socket(AF_INET, SOCK_STREAM, 0);
}
