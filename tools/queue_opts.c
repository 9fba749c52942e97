/* queue_opts.c - ringmta-queue's flags and command words. Main thread,
 * start-up only. */
#include "tools/queue_opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/opttab.h"

enum { Q_SPOOL, Q_JSON };

static const struct opttab_def queue_defs[] = {
	{ "spool", 0, "DIR", NULL, "the daemon's spool directory (required)", Q_SPOOL, 0 },
	{ "json", 0, NULL, "no", "print JSON instead of text", Q_JSON, 0 },
};

static const struct opttab queue_table = {
	.prog = "ringmta-queue",
	.synopsis = "--spool DIR [--json] COMMAND\n\nCommands:\n"
		    "  list        one line per queued message\n"
		    "  show ID     envelope, recipients' states and the message headers\n"
		    "  delete ID   remove a message so it is never delivered\n"
		    "  flush       retry every deferred message now (needs a running daemon)\n"
		    "  stats       counts by state and by next hop",
	.defs = queue_defs,
	.n_defs = sizeof(queue_defs) / sizeof(queue_defs[0]),
	.epilog = NULL,
};

static const char *const queue_cmd_names[] = { "list", "show", "delete", "flush", "stats" };

/* queue_set - one flag */
static const char *queue_set(void *ctx, const struct opttab_def *d, const char *v)
{
	struct queue_opts *o = ctx;
	struct stat st;
	const char *why;

	switch (d->id) {
	case Q_SPOOL:
		if ((why = opttab_nonempty(v)))
			return why;
		if (stat(v, &st) != 0)
			return strerror(errno);
		if (!S_ISDIR(st.st_mode))
			return "not a directory";
		o->spool = v;
		return NULL;
	case Q_JSON: return opttab_bool(v, &o->json);
	}
	return "not settable";
}

/* queue_id_ok - a queue ID: 1..QUEUE_ID_MAX letters and digits */
static bool queue_id_ok(const char *id)
{
	size_t n = strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");

	return n > 0 && n <= QUEUE_ID_MAX && id[n] == '\0';
}

/* queue_opts_parse - argv: flags, then COMMAND and its ID */
int queue_opts_parse(struct queue_opts *o, int argc, char **argv)
{
	char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	size_t n_pos = 0, want;
	int rc, cmd = -1;

	memset(o, 0, sizeof(*o));
	if (!pos)
		return opttab_fail(&queue_table, "", "", "out of memory", NULL);
	rc = opttab_parse(&queue_table, argc, argv, o, queue_set, pos, &n_pos);
	for (int i = 0; !rc && n_pos && i < 5; i++)
		if (strcmp(pos[0], queue_cmd_names[i]) == 0)
			cmd = i;
	if (rc) {
		/* already reported */
	} else if (n_pos == 0) {
		rc = opttab_fail(&queue_table, "", "", "missing COMMAND (list, show, delete, flush, stats)", NULL);
	} else if (cmd < 0) {
		rc = opttab_fail(&queue_table, "", "", "unknown command", pos[0]);
	} else if (!o->spool) {
		rc = opttab_fail(&queue_table, "", "spool", "required", NULL);
	} else {
		o->cmd = (enum queue_cmd)cmd;
		want = o->cmd == QUEUE_CMD_SHOW || o->cmd == QUEUE_CMD_DELETE ? 2 : 1;
		if (n_pos < want)
			rc = opttab_fail(&queue_table, "", "", "missing queue ID after", pos[0]);
		else if (n_pos > want)
			rc = opttab_fail(&queue_table, "", "", "unexpected argument", pos[want]);
		else if (want == 2 && !queue_id_ok(pos[1]))
			rc = opttab_fail(&queue_table, "", "", "bad queue ID", pos[1]);
		else
			o->id = want == 2 ? pos[1] : NULL;
	}
	free(pos);
	return rc;
}
