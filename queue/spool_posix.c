/* spool_posix.c - the blocking POSIX twin of the spool's I/O interface and
 * the spool directory lock.
 *
 * Every call completes before it returns (short writes and reads are
 * retried), for tools, tests and recovery. Files are opened relative to the
 * directory's fd, so the directory can be renamed under us harmlessly. A
 * read-only twin (spool_posix_open_ro) lets tools look at a spool the
 * daemon holds without any chance of changing it. Any
 * thread, but one backend is used by one thread at a time.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* px_dirfd - the directory fd behind a backend context */
static int px_dirfd(void *ctx)
{
	return ((struct spool_posix *)ctx)->dirfd;
}

/* px_open - open (or create, 0600) a file of the spool */
static int px_open(void *ctx, const char *name, bool create)
{
	int fd = openat(px_dirfd(ctx), name, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	return fd < 0 ? -errno : fd;
}

/* px_close - close a file */
static int px_close(void *ctx, int fd)
{
	(void)ctx;
	return close(fd) < 0 ? -errno : 0;
}

/* px_pwritev - write all of iov at off, retrying short writes */
static int64_t px_pwritev(void *ctx, int fd, const struct iovec *iov, int n, uint64_t off)
{
	struct iovec v[65];
	int64_t total = 0;
	int i = 0;

	(void)ctx;
	if (n > 65)
		return -EINVAL;
	memcpy(v, iov, sizeof *v * (size_t)n);
	while (i < n) {
		ssize_t w = pwritev(fd, v + i, n - i, (off_t)(off + (uint64_t)total));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		total += w;
		while (i < n && (size_t)w >= v[i].iov_len) {
			w -= (ssize_t)v[i].iov_len;
			i++;
		}
		if (i < n) {
			v[i].iov_base = (char *)v[i].iov_base + w;
			v[i].iov_len -= (size_t)w;
		}
	}
	return total;
}

/* px_pread - read up to n bytes at off; fewer only at end of file */
static int64_t px_pread(void *ctx, int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;

	(void)ctx;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (int64_t)got;
}

/* px_fdatasync - make a file's data durable */
static int px_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd) < 0 ? -errno : 0;
}

/* px_fsize - a file's size */
static int px_fsize(void *ctx, int fd, uint64_t *size)
{
	struct stat st;

	(void)ctx;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* px_unlink - remove a file */
static int px_unlink(void *ctx, const char *name)
{
	return unlinkat(px_dirfd(ctx), name, 0) < 0 ? -errno : 0;
}

/* px_rename - rename a file inside the directory */
static int px_rename(void *ctx, const char *from, const char *to)
{
	int d = px_dirfd(ctx);
	return renameat(d, from, d, to) < 0 ? -errno : 0;
}

/* px_syncdir - make the directory's entries durable */
static int px_syncdir(void *ctx)
{
	return fsync(px_dirfd(ctx)) < 0 ? -errno : 0;
}

/* px_list - call fn for every regular name in the directory */
static int px_list(void *ctx, int (*fn)(void *arg, const char *name), void *arg)
{
	int fd = openat(px_dirfd(ctx), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			rc = fn(arg, e->d_name);
	closedir(d);
	return rc;
}

/* spool_posix_open - the backend over dir (created 0700 if missing) */
int spool_posix_open(struct spool_posix *p, const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return RM_EIO;
	p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return RM_EIO;
	/* the spool is private to the daemon's user (CONTRACT.md) */
	if (fchmod(p->dirfd, 0700) < 0) {
		close(p->dirfd);
		p->dirfd = -1;
		return RM_EIO;
	}
	p->io = (struct spool_io){
		.open = px_open, .close = px_close, .pwritev = px_pwritev, .pread = px_pread,
		.fdatasync = px_fdatasync, .fsize = px_fsize, .unlink = px_unlink,
		.rename = px_rename, .syncdir = px_syncdir, .list = px_list, .ctx = p,
	};
	return RM_OK;
}

/* px_open_ro - open a file of the spool for reading; never create */
static int px_open_ro(void *ctx, const char *name, bool create)
{
	int fd;

	if (create)
		return -EROFS;
	fd = openat(px_dirfd(ctx), name, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* px_rofs_write - a read-only backend refuses to write */
static int64_t px_rofs_write(void *ctx, int fd, const struct iovec *iov, int n, uint64_t off)
{
	(void)ctx, (void)fd, (void)iov, (void)n, (void)off;
	return -EROFS;
}

/* px_rofs_fd - a read-only backend refuses to sync */
static int px_rofs_fd(void *ctx, int fd)
{
	(void)ctx, (void)fd;
	return -EROFS;
}

/* px_rofs_name - a read-only backend refuses to unlink */
static int px_rofs_name(void *ctx, const char *name)
{
	(void)ctx, (void)name;
	return -EROFS;
}

/* px_rofs_rename - a read-only backend refuses to rename */
static int px_rofs_rename(void *ctx, const char *from, const char *to)
{
	(void)ctx, (void)from, (void)to;
	return -EROFS;
}

/* px_rofs_dir - a read-only backend refuses to sync the directory */
static int px_rofs_dir(void *ctx)
{
	(void)ctx;
	return -EROFS;
}

/* spool_posix_open_ro - a read-only backend over an existing dir */
int spool_posix_open_ro(struct spool_posix *p, const char *dir)
{
	p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return RM_EIO;
	p->io = (struct spool_io){
		.open = px_open_ro, .close = px_close, .pwritev = px_rofs_write, .pread = px_pread,
		.fdatasync = px_rofs_fd, .fsize = px_fsize, .unlink = px_rofs_name,
		.rename = px_rofs_rename, .syncdir = px_rofs_dir, .list = px_list, .ctx = p,
	};
	return RM_OK;
}

/* spool_posix_close - close the directory */
void spool_posix_close(struct spool_posix *p)
{
	if (p->dirfd >= 0)
		close(p->dirfd);
	p->dirfd = -1;
}

/* spool_lock - take dir/lock with flock for this process */
int spool_lock(const char *dir, int *fd)
{
	char path[4096];
	int f;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return RM_EIO;
	if ((size_t)snprintf(path, sizeof path, "%s/lock", dir) >= sizeof path)
		return RM_EINVAL;
	f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0)
		return RM_EIO;
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(f);
		return e == EWOULDBLOCK ? RM_AGAIN : RM_EIO;
	}
	*fd = f;
	return RM_OK;
}
