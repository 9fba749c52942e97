/* ringmta-blast.c - ringmta-blast's composition root. For now it parses and checks its
 * flags (tools/blast_opts.c); the program's body comes later. Main thread. */
#include <stdio.h>

#include "tools/blast_opts.h"

int main(int argc, char **argv)
{
	struct blast_opts o;
	int rc = blast_opts_parse(&o, argc, argv);

	if (rc)
		return rc == 1 ? 0 : 2;
	fputs("ringmta-blast: not implemented yet\n", stderr);
	return 1;
}
