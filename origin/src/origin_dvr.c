/*
 * origin_dvr.c: the DVR window on disk.
 *
 *   DATA/NAME/index.log           one line per finished segment (used after a restart), and
 *                                 "end" when the origin stopped cleanly
 *   DATA/NAME/{v,a}/init-G.mp4    init segments
 *   DATA/NAME/{v,a}/M.m4s         segments (the concatenation of their parts)
 *
 * Disk work runs on libuv's thread pool (uv_queue_work), never on the loop: each job holds
 * references on the part buffers it writes. A segment is written under a temporary name and
 * renamed, so a reader never sees half a file. The index is appended with O_APPEND, one write per
 * line (its format: origin_dvrindex.c), after the segment's rename: a line means a whole file.
 *
 * Nothing is fsynced per segment: a crash of the process (kill -9, an abort) keeps every write
 * that returned, since the page cache outlives the process, and a power cut is left to the
 * checksums, which catch the torn or zeroed tail it may leave. After a crash, a restart keeps
 * every segment whose line is valid and whose file has the logged size, deletes what was cut
 * short, and numbers past everything the earlier run handed out (origin__dvr_restore).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "origin_int.h"
#include "sw/log.h"

#define DVR_MAX_PARTS 256
/* index.log is compacted when it passes twice its size after the last compaction, and at least
 * this: a 2 h window of 2 s segments is about 800 KB of lines. */
#define INDEX_MIN_LIMIT (1 << 20)
/* Compaction keeps the lines of segments that end inside the window and this much before it, so
 * that a restart a little later still finds the whole window. */
#define INDEX_SLACK_MS 60000
/* After a crash, at most this many lost numbers are filled with gap segments to join a track's
 * restored run to the new run's first number; a track further behind is not restored. */
#define RESTORE_MAX_GAPS 8

typedef struct dvr_job {
    uv_work_t work;
    struct dvr_job *next; /* in its stream's FIFO */
    struct origin *o;
    origin_stream_t *st; /* the stream whose FIFO runs it; NULL for reads */
    char path[1100];
    char line[256]; /* index line to append after the write, or "" */
    int index_fd;
    int op; /* JOB_WRITE, JOB_UNLINK, JOB_READ, JOB_PRUNE */
    int rv; /* errno of the failure, 0 on success */
    uint32_t nbufs;
    sw_rbuf_t *bufs[DVR_MAX_PARTS];
    /* JOB_READ */
    sw_http_req_t *req;
    const char *content_type;
    int64_t prune_before_s;
    uint32_t keep_init_from; /* JOB_PRUNE: init segments of this generation on stay */
} dvr_job_t;

enum { JOB_WRITE, JOB_UNLINK, JOB_READ, JOB_PRUNE, JOB_COMPACT, JOB_RMTREE };

static int write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static void do_write(dvr_job_t *j)
{
    char tmp[1200];
    struct iovec iov[DVR_MAX_PARTS];

    if (j->path[0] == '\0')
        goto index; /* a gap segment: an index line, no file */
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        j->rv = errno;
        return;
    }
    for (uint32_t i = 0; i < j->nbufs; i++) {
        iov[i].iov_base = j->bufs[i]->data;
        iov[i].iov_len = j->bufs[i]->len;
    }
    if (write_all(fd, iov, (int)j->nbufs) != 0 || close(fd) != 0) {
        j->rv = errno;
        unlink(tmp);
        return;
    }
    if (rename(tmp, j->path) != 0) {
        j->rv = errno;
        unlink(tmp);
        return;
    }
index:
    if (j->line[0] != '\0' && j->index_fd >= 0) {
        size_t n = strlen(j->line);
        if (write(j->index_fd, j->line, n) != (ssize_t)n)
            j->rv = errno ? errno : EIO;
    }
}

static void do_read(dvr_job_t *j)
{
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        j->rv = errno;
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > ORIGIN_DVR_MAX_BYTES) {
        j->rv = EINVAL;
        close(fd);
        return;
    }
    sw_rbuf_t *b = sw_rbuf_new((size_t)st.st_size);
    if (b == NULL) {
        j->rv = ENOMEM;
        close(fd);
        return;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b->data + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    b->len = got;
    j->bufs[0] = b;
    j->nbufs = 1;
}

/* Removes segment files older than the window left behind by an earlier run. */
static void do_prune(dvr_job_t *j)
{
    static const char *const sub[] = {"v", "a"};
    for (int k = 0; k < 2; k++) {
        char dir[1200];
        snprintf(dir, sizeof(dir), "%s/%s", j->path, sub[k]);
        DIR *d = opendir(dir);
        if (d == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[1500];
            struct stat st;
            if (e->d_name[0] == '.')
                continue;
            /* A restored timeline may still list segments that decode with an old init. */
            if (strncmp(e->d_name, "init-", 5) == 0 &&
                strtoul(e->d_name + 5, NULL, 10) >= j->keep_init_from)
                continue;
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_mtime < j->prune_before_s)
                unlink(p);
        }
        closedir(d);
    }
}

/* Reads a whole file into a new buffer; NULL with errno set. */
static char *read_whole(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    char *buf = NULL;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) != 0)
        goto out;
    size_t size = (size_t)sb.st_size, got = 0;
    if ((buf = malloc(size + 1)) == NULL) {
        errno = ENOMEM;
        goto out;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    *len = got;
out:
    close(fd);
    return buf;
}

/*
 * Drops the lines of segments that ended before the window (measured from the newest line's
 * segment), so that the index covers the whole window however long it is. Runs in the stream's
 * FIFO, so no other job appends meanwhile; the stream's descriptor is reopened by on_work_done().
 * The window is read from the origin's configuration, which does not change after origin_new().
 * The new file is fsynced before it replaces the old one: a rename that reached the disk before
 * the data would otherwise leave an empty index after a power cut.
 */
static void do_compact(dvr_job_t *j)
{
    char tmp[1200];
    size_t len = 0;
    char *buf = read_whole(j->path, &len);
    if (buf == NULL) {
        j->rv = errno;
        return;
    }
    int64_t newest = INT64_MIN;
    for (const char *p = buf, *end = buf + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        origin_dvr_line_t l;
        const char *why;
        if (origin__dvr_line_parse(p, n, &l, &why) == 0 && l.type == ORIGIN_DVR_LINE_SEG &&
            l.seg.pdt_ms > newest)
            newest = l.seg.pdt_ms;
        p += n;
    }
    int64_t keep_from = newest == INT64_MIN
                            ? INT64_MIN
                            : newest - (int64_t)j->o->hls_cfg.window_ms - INDEX_SLACK_MS;
    size_t n = origin__dvr_index_compact(buf, len, keep_from, buf);
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct iovec iov = {buf, n};
    if (out < 0 || write_all(out, &iov, 1) != 0 || fsync(out) != 0 || close(out) != 0 ||
        rename(tmp, j->path) != 0) {
        j->rv = errno;
        unlink(tmp);
    }
    free(buf);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? errno : 0;
}

static void on_work(uv_work_t *w)
{
    dvr_job_t *j = sw_container_of(w, dvr_job_t, work);
    switch (j->op) {
    case JOB_WRITE:
        do_write(j);
        break;
    case JOB_UNLINK:
        if (unlink(j->path) != 0 && errno != ENOENT)
            j->rv = errno;
        break;
    case JOB_READ:
        do_read(j);
        break;
    case JOB_PRUNE:
        do_prune(j);
        break;
    case JOB_COMPACT:
        do_compact(j);
        break;
    case JOB_RMTREE:
        j->rv = nftw(j->path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (j->rv < 0)
            j->rv = errno;
        break;
    }
}

static void on_read_abort(sw_http_req_t *req, void *data)
{
    dvr_job_t *j = data;
    j->req = NULL;
}

static void on_work_done(uv_work_t *w, int status)
{
    dvr_job_t *j = sw_container_of(w, dvr_job_t, work);

    if (j->op == JOB_READ && j->req != NULL) {
        sw_http_req_on_abort(j->req, NULL, NULL);
        if (j->rv == 0 && status == 0) {
            sw_http_header_t h[] = {
                {"content-type", j->content_type},
                {"cache-control", ORIGIN__CC_MEDIA},
                {"access-control-allow-origin", "*"},
            };
            sw_http_start(j->req, 200, h, SW_ARRAY_SIZE(h), (int64_t)j->bufs[0]->len);
            sw_http_write_rbuf(j->req, j->bufs[0], 0, j->bufs[0]->len);
            sw_http_end(j->req);
        } else {
            sw_http_header_t h[] = {
                {"content-type", "text/plain"},
                {"cache-control", "no-cache"},
                {"access-control-allow-origin", "*"},
            };
            const char *msg = j->rv == ENOENT ? "no such segment\n" : "cannot read segment\n";
            sw_http_respond(j->req, j->rv == ENOENT ? 404 : 500, h, SW_ARRAY_SIZE(h), msg,
                            strlen(msg));
        }
    } else if (j->op == JOB_RMTREE && j->rv != 0) {
        sw_log(SW_LOG_ERROR, "dvr", "removing %s: %s", j->path, strerror(j->rv));
    } else if ((j->op == JOB_WRITE || j->op == JOB_UNLINK) && j->rv != 0) {
        j->o->dvr_write_errors++;
        sw_log(SW_LOG_ERROR, "dvr", "%s %s: %s", j->op == JOB_WRITE ? "writing" : "removing",
               j->path, strerror(j->rv));
    }
    if (j->op == JOB_COMPACT) {
        origin_stream_t *st = j->st;
        char p[1100];
        if (j->rv != 0)
            sw_log(SW_LOG_ERROR, "dvr", "compacting %s: %s", j->path, strerror(j->rv));
        /* Reopen: the compacted file is a new inode, and no job of the stream is running. */
        snprintf(p, sizeof(p), "%s/index.log", st->dir);
        if (st->index_fd >= 0)
            close(st->index_fd);
        st->index_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        struct stat sb;
        st->index_bytes =
            st->index_fd >= 0 && fstat(st->index_fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        st->index_limit =
            st->index_bytes * 2 > INDEX_MIN_LIMIT ? st->index_bytes * 2 : INDEX_MIN_LIMIT;
    }
    origin_stream_t *st = j->st;
    for (uint32_t i = 0; i < j->nbufs; i++)
        sw_rbuf_unref(j->bufs[i]);
    free(j);
    if (st != NULL) {
        dvr_job_t *next = st->dvr_head;
        st->dvr_running = NULL;
        if (next != NULL) {
            st->dvr_head = next->next;
            if (st->dvr_head == NULL)
                st->dvr_tail = NULL;
            st->dvr_running = next;
            if (uv_queue_work(next->o->loop, &next->work, on_work, on_work_done) != 0)
                on_work_done(&next->work, UV_ECANCELED);
        }
    }
}

static dvr_job_t *job_new(struct origin *o, int op)
{
    dvr_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->o = o;
    j->op = op;
    j->index_fd = -1;
    return j;
}

static void job_queue(dvr_job_t *j)
{
    if (uv_queue_work(j->o->loop, &j->work, on_work, on_work_done) != 0) {
        for (uint32_t i = 0; i < j->nbufs; i++)
            sw_rbuf_unref(j->bufs[i]);
        free(j);
    }
}

/* Appends a write to its stream's FIFO; it runs once the jobs before it are done. */
static void job_queue_ordered(origin_stream_t *st, dvr_job_t *j)
{
    j->st = st;
    if (st->dvr_running == NULL) {
        st->dvr_running = j;
        if (uv_queue_work(j->o->loop, &j->work, on_work, on_work_done) != 0)
            on_work_done(&j->work, UV_ECANCELED);
        return;
    }
    if (st->dvr_tail != NULL)
        st->dvr_tail->next = j;
    else
        st->dvr_head = j;
    st->dvr_tail = j;
}

int origin__dvr_open(origin_stream_t *st)
{
    char p[1100];
    if (mkdir(st->dir, 0755) != 0 && errno != EEXIST)
        goto fail;
    snprintf(p, sizeof(p), "%s/v", st->dir);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        goto fail;
    snprintf(p, sizeof(p), "%s/a", st->dir);
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        goto fail;
    snprintf(p, sizeof(p), "%s/index.log", st->dir);
    st->index_fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (st->index_fd < 0)
        goto fail;

    struct stat sb;
    st->index_bytes = fstat(st->index_fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    /* A run that crashes before its first segment is logged may have served parts of that
     * segment: the start line keeps its number from being handed out again. */
    dvr_job_t *sj = job_new(st->o, JOB_WRITE);
    if (sj != NULL) {
        snprintf(sj->line, sizeof(sj->line), "start %" PRIu64 "\n",
                 hls_stream_get_config(st->hls)->first_msn);
        sj->index_fd = st->index_fd;
        st->index_bytes += strlen(sj->line);
        job_queue_ordered(st, sj);
    }
    st->index_limit = st->index_bytes * 2 > INDEX_MIN_LIMIT ? st->index_bytes * 2 : INDEX_MIN_LIMIT;

    dvr_job_t *j = job_new(st->o, JOB_PRUNE);
    if (j != NULL) {
        snprintf(j->path, sizeof(j->path), "%s", st->dir);
        j->prune_before_s = (int64_t)time(NULL) - (int64_t)st->o->hls_cfg.window_ms / 1000 - 60;
        j->keep_init_from = UINT32_MAX;
        for (int k = 0; k < HLS_NTRACKS; k++) {
            const hls_track_t *t = hls_stream_track(st->hls, k);
            const hls_segment_t *seg = hls_track_segment(t, t->first_msn);
            if (seg != NULL && seg->init_gen < j->keep_init_from)
                j->keep_init_from = seg->init_gen;
        }
        job_queue_ordered(st, j);
    }
    return 0;
fail:
    sw_log(SW_LOG_ERROR, "dvr", "%s: %s", p, strerror(errno));
    return -1;
}

void origin__dvr_close(origin_stream_t *st)
{
    /* Jobs still queued hold a copy of the descriptor; the loop runs them to completion before
     * the origin is freed (uv_loop_close needs every request done), so closing here is safe only
     * after the loop has stopped, which is where stream_free() runs. Every segment was closed and
     * written by then, so no number past the last one was ever served: the next run may restore
     * this timeline and continue right after it (origin__dvr_restore). */
    if (st->index_fd >= 0 && write(st->index_fd, "end\n", 4) != 4)
        sw_log(SW_LOG_WARN, "dvr", "%s: cannot mark the index as closed cleanly", st->name);
    if (st->index_fd >= 0)
        close(st->index_fd);
    st->index_fd = -1;
}

int origin__dvr_remove(origin_stream_t *st)
{
    char gone[1100];

    if (st->dvr_running != NULL)
        return -1;
    if (st->index_fd >= 0)
        close(st->index_fd);
    st->index_fd = -1;
    /* Renamed at once, so that a publisher of the same name arriving now starts afresh; removed
     * on the thread pool. A name starting with '.' is no stream's (origin__remove_gone()). */
    snprintf(gone, sizeof(gone), "%s/.gone-%s-%lld", st->o->data_dir, st->name,
             (long long)sw_now_ms());
    if (rename(st->dir, gone) != 0) {
        if (errno != ENOENT)
            sw_log(SW_LOG_ERROR, "dvr", "%s: cannot remove %s: %s", st->name, st->dir,
                   strerror(errno));
        return 0;
    }
    dvr_job_t *j = job_new(st->o, JOB_RMTREE);
    if (j == NULL)
        return 0; /* left for the next start's origin__remove_gone() */
    snprintf(j->path, sizeof(j->path), "%s", gone);
    job_queue(j);
    return 0;
}

void origin__remove_gone(struct origin *o)
{
    DIR *d = opendir(o->data_dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".gone-", 6) != 0)
            continue;
        dvr_job_t *j = job_new(o, JOB_RMTREE);
        if (j == NULL)
            break;
        snprintf(j->path, sizeof(j->path), "%s/%s", o->data_dir, e->d_name);
        job_queue(j);
    }
    closedir(d);
}

void origin__dvr_write_init(origin_stream_t *st, int kind, uint32_t gen, sw_rbuf_t *init)
{
    dvr_job_t *j = job_new(st->o, JOB_WRITE);
    if (j == NULL)
        return;
    snprintf(j->path, sizeof(j->path), "%s/%s/init-%u.mp4", st->dir, origin__kind_dir(kind), gen);
    j->bufs[j->nbufs++] = sw_rbuf_ref(init);
    job_queue_ordered(st, j);
}

void origin__dvr_write_segment(origin_stream_t *st, int kind, const hls_segment_t *seg)
{
    if (seg->nparts > DVR_MAX_PARTS) {
        st->o->dvr_write_errors++;
        sw_log(SW_LOG_ERROR, "dvr",
               "%s: segment %" PRIu64 " has %u parts, more than %d; not "
               "written",
               st->name, seg->msn, seg->nparts, DVR_MAX_PARTS);
        return;
    }
    dvr_job_t *j = job_new(st->o, JOB_WRITE);
    if (j == NULL)
        return;
    if (!seg->gap)
        snprintf(j->path, sizeof(j->path), "%s/%s/%" PRIu64 ".m4s", st->dir, origin__kind_dir(kind),
                 seg->msn);
    for (uint32_t i = 0; i < seg->nparts; i++)
        if (seg->parts[i].data != NULL)
            j->bufs[j->nbufs++] = sw_rbuf_ref(seg->parts[i].data);
    if (origin__dvr_line_format(j->line, sizeof(j->line), kind, seg, hls_stream_origin_ms(st->hls),
                                hls_stream_track(st->hls, kind)->timescale) < 0)
        j->line[0] = '\0'; /* cannot happen: a line is under 256 bytes */
    j->index_fd = st->index_fd;
    st->index_bytes += strlen(j->line);
    job_queue_ordered(st, j);
    if (st->index_bytes > st->index_limit && (j = job_new(st->o, JOB_COMPACT)) != NULL) {
        snprintf(j->path, sizeof(j->path), "%s/index.log", st->dir);
        st->index_limit = UINT64_MAX; /* until the reopen sets it again */
        job_queue_ordered(st, j);
    }
}

void origin__dvr_expire(origin_stream_t *st, int kind, uint64_t msn)
{
    dvr_job_t *j = job_new(st->o, JOB_UNLINK);
    if (j == NULL)
        return;
    snprintf(j->path, sizeof(j->path), "%s/%s/%" PRIu64 ".m4s", st->dir, origin__kind_dir(kind),
             msn);
    job_queue_ordered(st, j);
}

void origin__dvr_serve(origin_stream_t *st, sw_http_req_t *req, int kind, const char *file,
                       const char *content_type)
{
    dvr_job_t *j = job_new(st->o, JOB_READ);
    if (j == NULL) {
        sw_http_respond_error(req, 503, "out of memory");
        return;
    }
    snprintf(j->path, sizeof(j->path), "%s/%s/%s", st->dir, origin__kind_dir(kind), file);
    j->req = req;
    j->content_type = content_type;
    sw_http_req_on_abort(req, on_read_abort, j);
    job_queue(j);
}

/* Appends a valid segment line to its track's list. */
static int restore_add(origin_dvr_restore_t *r, const origin_dvr_line_t *l)
{
    int k = l->kind;
    if (r->nlines[k] == r->cap[k]) {
        size_t c = r->cap[k] ? r->cap[k] * 2 : 256;
        origin_dvr_line_t *g = realloc(r->lines[k], c * sizeof(*g));
        if (g == NULL)
            return ORIGIN_ERR_NOMEM;
        r->lines[k] = g;
        r->cap[k] = c;
    }
    r->lines[k][r->nlines[k]++] = *l;
    return 0;
}

/* A segment file name: "MSN.m4s", or "MSN.m4s.tmp" with `tmp`. 1 with *msn, or 0. */
static int segment_name(const char *s, uint64_t *msn, int *tmp)
{
    uint64_t v = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9' && digits < 18; s++, digits++)
        v = v * 10 + (uint64_t)(*s - '0');
    if (digits == 0)
        return 0;
    *tmp = strcmp(s, ".m4s.tmp") == 0;
    *msn = v;
    return *tmp || strcmp(s, ".m4s") == 0;
}

/*
 * The file names in v/ and a/: the numbers and init generations handed out, whatever index.log
 * says, and what a crash cut short, deleted here: temporary files (a write in progress), and
 * segment files past the track's last valid line (renamed, but killed before their line was
 * appended; deleted rather than restored, since nothing vouches for them).
 */
static void restore_scan(const char *dir, origin_dvr_restore_t *r, uint64_t *max_msn, int *have_msn,
                         int *found)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        char sub[1200];
        uint64_t last_valid = r->nlines[k] ? r->lines[k][r->nlines[k] - 1].seg.msn : 0;
        snprintf(sub, sizeof(sub), "%s/%s", dir, origin__kind_dir(k));
        DIR *d = opendir(sub);
        if (d == NULL)
            continue;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[1500];
            uint64_t msn;
            int tmp, drop = 0;
            size_t n = strlen(e->d_name);
            snprintf(p, sizeof(p), "%s/%s", sub, e->d_name);
            if (strncmp(e->d_name, "init-", 5) == 0) {
                unsigned long g = strtoul(e->d_name + 5, NULL, 10);
                if (g <= UINT32_MAX && g > r->init_gen)
                    r->init_gen = (uint32_t)g;
                *found = 1;
                drop = n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0;
            } else if (segment_name(e->d_name, &msn, &tmp)) {
                if (!*have_msn || msn > *max_msn)
                    *max_msn = msn;
                *have_msn = *found = 1;
                /* Without a single valid line for the track there is nothing to tell a cut
                 * short file from an old one: only temporary files go then. */
                drop = tmp || (r->nlines[k] > 0 && msn > last_valid);
            } else {
                continue;
            }
            if (drop && unlink(p) == 0)
                sw_log(SW_LOG_WARN, "dvr", "%s: removed, left incomplete by a crash", p);
        }
        closedir(d);
    }
}

/* Checks a segment line against its file: a gap has none; a segment's must have the logged
 * size. A file of another size is deleted (it is not what the line describes); a missing one is
 * a segment that expired, or whose write failed. Returns 1 when the line can be restored. */
static int restore_check_file(const char *dir, const origin_dvr_line_t *l)
{
    char p[1200];
    struct stat sb;
    if (l->seg.gap)
        return 1;
    snprintf(p, sizeof(p), "%s/%s/%" PRIu64 ".m4s", dir, origin__kind_dir(l->kind), l->seg.msn);
    if (stat(p, &sb) != 0)
        return 0;
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == l->seg.bytes)
        return 1;
    sw_log(SW_LOG_WARN, "dvr", "%s: %lld bytes where index.log says %" PRIu64 "; removed", p,
           (long long)sb.st_size, l->seg.bytes);
    unlink(p);
    return 0;
}

int origin__dvr_restore(struct origin *o, const char *name, origin_dvr_restore_t *r)
{
    char dir[1100], p[1200];
    size_t len = 0;
    uint64_t max_msn = 0;
    int have_msn = 0, bad = 0, rv;
    uint64_t run_first = 0; /* the first number of the last run that began */
    int have_run = 0;

    memset(r, 0, sizeof(*r));
    snprintf(dir, sizeof(dir), "%s/%s", o->data_dir, name);
    snprintf(p, sizeof(p), "%s/index.log", dir);
    char *buf = read_whole(p, &len);
    if (buf == NULL && errno == ENOMEM)
        return ORIGIN_ERR_NOMEM;
    /* An index, even empty, means an earlier run: it is created with the stream. */
    int found = buf != NULL;
    for (size_t off = 0, lineno = 1; buf != NULL && off < len; lineno++) {
        const char *nl = memchr(buf + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (buf + off)) + 1 : len - off;
        origin_dvr_line_t l;
        const char *why;
        if (origin__dvr_line_parse(buf + off, n, &l, &why) != 0) {
            /* Only the tail of the file can be garbage after a crash; anything after it is
             * still read, since a later run appended it. */
            if (bad++ == 0)
                sw_log(SW_LOG_WARN, "dvr", "%s line %zu: %s; skipped", p, lineno, why);
            r->clean = 0;
        } else if (l.type == ORIGIN_DVR_LINE_END) {
            r->clean = 1;
        } else if (l.type == ORIGIN_DVR_LINE_START) {
            r->clean = 0;
            run_first = l.seg.msn;
            have_run = 1;
        } else {
            r->clean = 0;
            if (!have_msn || l.seg.msn >= max_msn) {
                max_msn = l.seg.msn;
                r->origin_ms = l.origin_ms;
            }
            if (l.seg.init_gen > r->init_gen)
                r->init_gen = l.seg.init_gen;
            have_msn = 1;
            if (restore_check_file(dir, &l) && (rv = restore_add(r, &l)) != 0) {
                free(buf);
                origin__dvr_restore_dispose(r);
                return rv;
            }
        }
        off += n;
    }
    /* A torn last line would glue itself to the next run's first line: cut it off. */
    if (buf != NULL && len > 0 && buf[len - 1] != '\n') {
        size_t keep = len - 1;
        while (keep > 0 && buf[keep - 1] != '\n')
            keep--;
        if (truncate(p, (off_t)keep) != 0)
            sw_log(SW_LOG_WARN, "dvr", "%s: cannot cut its torn last line: %s", p, strerror(errno));
    }
    free(buf);
    if (bad > 1)
        sw_log(SW_LOG_WARN, "dvr", "%s: %d lines skipped in all", p, bad);
    int clean = r->clean;
    restore_scan(dir, r, &max_msn, &have_msn, &found);
    if (!found) {
        origin__dvr_restore_dispose(r);
        return 1;
    }
    /*
     * After a clean stop every segment was finished and logged: numbering continues right after
     * the last. After a crash, the segment after the highest number found (in a line or a file
     * name) was in progress and players may have fetched its parts: it is skipped too, so that
     * no number ever names two different media. That may be the first number of a run that
     * crashed before logging a segment: its start line says which.
     */
    r->next_msn = have_msn ? max_msn + (clean ? 1 : 2) : 0;
    if (have_run && run_first + (clean ? 0 : 1) > r->next_msn)
        r->next_msn = run_first + (clean ? 0 : 1);
    if (!clean && !have_msn && !have_run)
        r->next_msn = 1; /* a run of an older origin that logged nothing began at 0 */
    return 0;
}

void origin__dvr_restore_dispose(origin_dvr_restore_t *r)
{
    for (int k = 0; k < HLS_NTRACKS; k++) {
        free(r->lines[k]);
        r->lines[k] = NULL;
        r->nlines[k] = r->cap[k] = 0;
    }
}

/* Restores track k: its run of segments ending at its last valid line, then gap segments up to
 * r->next_msn - 1. */
static int restore_track(origin_stream_t *st, const origin_dvr_restore_t *r, int k, sw_str_t *gaps)
{
    const origin_dvr_line_t *ls = r->lines[k];
    size_t n = r->nlines[k], first = 0;
    uint32_t ts = 0;

    /* The last run of increasing numbers at one timescale: a sample rate change, or numbers
     * going back (an index older than the rule that numbers never do), starts a new one. */
    while (n > 0 && ls[n - 1].seg.msn >= r->next_msn)
        n--;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = ls[i].timescale != 0 ? ls[i].timescale : k == HLS_VIDEO ? 90000 : 0;
        if (t == 0 || (i > first && (t != ts || ls[i].seg.msn <= ls[i - 1].seg.msn)))
            first = t == 0 ? i + 1 : i;
        ts = t;
    }
    if (first >= n || ts == 0)
        return 0;
    const hls_segment_t *last = &ls[n - 1].seg;
    if (r->next_msn - 1 - last->msn > RESTORE_MAX_GAPS) {
        sw_log(SW_LOG_INFO, "dvr", "%s: the %s track ended %" PRIu64 " numbers early; not restored",
               st->name, k == HLS_VIDEO ? "video" : "audio", r->next_msn - 1 - last->msn);
        return 0;
    }
    /* Back from the last segment while the numbers have no hole and inside the window. */
    size_t from = n - 1;
    int64_t oldest = last->pdt_ms - (int64_t)st->o->hls_cfg.window_ms;
    while (from > first && ls[from - 1].seg.msn + 1 == ls[from].seg.msn &&
           ls[from - 1].seg.pdt_ms >= oldest)
        from--;
    for (size_t i = from; i < n; i++)
        if (hls_stream_restore_segment(st->hls, k, &ls[i].seg, ts) != 0)
            return -1;
    /* The numbers handed out whose media is lost: gaps of the target duration each, so that the
     * numbers stay contiguous and both tracks end right before the new run's first. */
    hls_segment_t gap = *last;
    uint64_t ngaps = r->next_msn - 1 - last->msn;
    for (uint64_t i = 0; i < ngaps; i++) {
        gap.start += (int64_t)gap.duration;
        gap.pdt_ms += (int64_t)(gap.duration * 1000 / ts);
        gap.msn++;
        gap.duration = (uint64_t)st->o->hls_cfg.segment_ms * ts / 1000;
        gap.discontinuity = 0;
        gap.gap = 1;
        gap.bytes = 0;
        if (hls_stream_restore_segment(st->hls, k, &gap, ts) != 0)
            return -1;
        char line[256];
        if (origin__dvr_line_format(line, sizeof(line), k, &gap, r->origin_ms, ts) > 0)
            sw_str_puts(gaps, line);
    }
    sw_log(SW_LOG_INFO, "dvr",
           "%s: %s timeline of the earlier run restored: %zu segments, %" PRIu64 " lost (gaps)",
           st->name, k == HLS_VIDEO ? "video" : "audio", n - from, ngaps);
    return 0;
}

int origin__dvr_restore_timeline(origin_stream_t *st, const origin_dvr_restore_t *r)
{
    sw_str_t gaps;
    int rv = 0;

    sw_str_init(&gaps);
    for (int k = 0; k < HLS_NTRACKS && rv == 0; k++)
        rv = restore_track(st, r, k, &gaps);
    /* The gaps are on the timeline now: logged, a later restart restores the run through them.
     * Written here, before the loop serves anything, like the rest of the restore. */
    char p[1100];
    snprintf(p, sizeof(p), "%s/index.log", st->dir);
    int fd = gaps.len > 0 ? open(p, O_WRONLY | O_APPEND | O_CLOEXEC) : -1;
    if (fd >= 0) {
        struct iovec iov = {gaps.p, gaps.len};
        if (write_all(fd, &iov, 1) != 0)
            sw_log(SW_LOG_WARN, "dvr", "%s: %s", p, strerror(errno));
        close(fd);
    }
    sw_str_dispose(&gaps);
    return rv == 0 ? 0 : -1;
}
