/* spool_fill.c - a test helper that writes messages and delivery outcomes
 * into a spool through the spool API (queue/spool.h), for the tests of
 * ringmta-queue. Holds the spool's lock while it runs.
 *
 * Usage: spool-fill DIR SHARD < script. The script has one command a line,
 * fields separated by TAB, "-" for an empty field:
 *   msg SENDER BODYFILE ARRIVAL_US   start a message
 *   rcpt ADDR NOTIFY_BITS ORCPT       add a recipient
 *   envid X | auth X | ret N | body N | size N | utf8
 *   end                               commit; prints the queue ID
 *   journal ID RCPT OUTCOME NEXT_US ATTEMPTS REPLY   (RCPT "all" for all)
 * Exits 0 when everything was durable, 1 otherwise. Main thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/spool.h"

#define SF_FIELDS 8
#define SF_RCPT_MAX 64

/* sf_split - cut line at TABs into f[]; returns the count */
static int sf_split(char *line, char *f[SF_FIELDS])
{
	int n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < SF_FIELDS) {
		f[n++] = line;
		line = strchr(line, '\t');
		if (!line)
			break;
		*line++ = '\0';
	}
	return n;
}

/* sf_val - a field as a slice; "-" is empty */
static struct slice sf_val(const char *s)
{
	return strcmp(s, "-") == 0 ? SLICE_NULL : slice_cstr(s);
}

static struct arena sf_arena; /* the fields of the whole run */

/* sf_keep - a copy of a field that outlives the line */
static struct slice sf_keep(const char *s)
{
	struct slice v = sf_val(s);

	return v.len ? arena_dup(&sf_arena, v) : SLICE_NULL;
}

/* sf_body - read a whole file */
static char *sf_body(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(p = malloc((size_t)n + 1)) || fread(p, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "spool-fill: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* sf_commit - append and commit one message, wait until durable */
static int sf_commit(struct spool *sp, struct spool_env *env, const char *body, size_t len)
{
	struct spool_tx *tx = spool_tx_begin(sp, NULL);
	struct spool_done d;
	struct slice s = slice_make(body, len);
	int rc = 1;

	if (!tx || spool_tx_append(sp, tx, &s, 1) != RM_OK || spool_tx_commit(sp, tx, env) != RM_OK)
		return 1;
	spool_run(sp);
	while (spool_done_next(sp, &d))
		if (d.status == RM_OK) {
			printf("%s\n", d.id);
			rc = 0;
		}
	return rc;
}

int main(int argc, char **argv)
{
	struct spool_posix px;
	struct spool *sp;
	struct spool_cfg cfg = { &px.io, 0, 0, 0 };
	struct spool_env env;
	struct spool_rcpt rcpt[SF_RCPT_MAX];
	char line[4096], *f[SF_FIELDS], *body = NULL;
	size_t blen = 0;
	int lockfd, rc = 0;

	if (argc != 3) {
		fputs("usage: spool-fill DIR SHARD < script\n", stderr);
		return 2;
	}
	cfg.shard = (unsigned)atoi(argv[2]);
	arena_init(&sf_arena, &rm_alloc_libc, 1 << 16, SIZE_MAX);
	if (spool_lock(argv[1], &lockfd) != RM_OK || spool_posix_open(&px, argv[1]) != RM_OK ||
	    spool_open(&sp, &cfg, NULL) != RM_OK) {
		fputs("spool-fill: cannot open the spool\n", stderr);
		return 1;
	}
	memset(&env, 0, sizeof env);
	while (!rc && fgets(line, sizeof line, stdin)) {
		int n = sf_split(line, f);
		if (strcmp(f[0], "msg") == 0 && n == 4) {
			memset(&env, 0, sizeof env);
			env.sender = sf_keep(f[1]);
			body = sf_body(f[2], &blen);
			env.arrival_us = strtoull(f[3], NULL, 10);
			env.received = SLICE_LIT("Received: from client.test by ringmta.test; test\r\n");
			env.rcpt = rcpt;
		} else if (strcmp(f[0], "rcpt") == 0 && n == 4 && env.nrcpt < SF_RCPT_MAX) {
			rcpt[env.nrcpt++] = (struct spool_rcpt){ sf_keep(f[1]), (unsigned)atoi(f[2]),
								  sf_keep(f[3]) };
		} else if (strcmp(f[0], "envid") == 0 && n == 2) {
			env.envid = sf_keep(f[1]);
		} else if (strcmp(f[0], "auth") == 0 && n == 2) {
			env.auth = sf_keep(f[1]);
		} else if (strcmp(f[0], "ret") == 0 && n == 2) {
			env.ret = (uint8_t)atoi(f[1]);
		} else if (strcmp(f[0], "body") == 0 && n == 2) {
			env.body = (uint8_t)atoi(f[1]);
		} else if (strcmp(f[0], "size") == 0 && n == 2) {
			env.size = strtoull(f[1], NULL, 10);
			env.has_size = true;
		} else if (strcmp(f[0], "utf8") == 0) {
			env.smtputf8 = true;
		} else if (strcmp(f[0], "end") == 0) {
			rc = sf_commit(sp, &env, body, blen);
			free(body);
			body = NULL;
		} else if (strcmp(f[0], "journal") == 0 && n == 7) {
			struct spool_jrec j = {
				slice_cstr(f[1]),
				strcmp(f[2], "all") == 0 ? SPOOL_RCPT_ALL : (uint32_t)atoi(f[2]),
				(enum spool_outcome)atoi(f[3]), strtoull(f[4], NULL, 10),
				(uint32_t)atoi(f[5]), sf_val(f[6]),
			};
			rc = spool_journal(sp, &j) != RM_OK;
			spool_run(sp);
		} else if (f[0][0]) {
			fprintf(stderr, "spool-fill: bad line: %s\n", f[0]);
			rc = 1;
		}
	}
	fflush(stdout);
	spool_close(sp);
	spool_posix_close(&px);
	close(lockfd);
	free(body);
	arena_free(&sf_arena);
	return rc;
}
