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
 * line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
/* Bytes of index.log before it is compacted, and of its tail that compaction keeps. */
#ifndef INDEX_MAX
#define INDEX_MAX (1 << 20)
#endif
#ifndef INDEX_KEEP
#define INDEX_KEEP (64 << 10)
#endif

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

enum { JOB_WRITE, JOB_UNLINK, JOB_READ, JOB_PRUNE, JOB_COMPACT };

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
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) {
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

/* Keeps the last INDEX_KEEP bytes (whole lines) of the index. Runs in the stream's FIFO, so no
 * other job appends meanwhile; the stream's descriptor is reopened by on_work_done(). */
static void do_compact(dvr_job_t *j)
{
    char tmp[1200];
    int in = open(j->path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        j->rv = errno;
        return;
    }
    off_t size = lseek(in, 0, SEEK_END);
    off_t from = size > INDEX_KEEP ? size - INDEX_KEEP : 0;
    char *buf = malloc(INDEX_KEEP);
    ssize_t n = buf != NULL ? pread(in, buf, INDEX_KEEP, from) : -1;
    close(in);
    if (n < 0) {
        j->rv = buf != NULL ? errno : ENOMEM;
        free(buf);
        return;
    }
    char *start = buf;
    if (from > 0) { /* drop the partial first line */
        char *nl = memchr(buf, '\n', (size_t)n);
        start = nl != NULL ? nl + 1 : buf + n;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", j->path);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    struct iovec iov = {start, (size_t)(buf + n - start)};
    if (out < 0 || write_all(out, &iov, 1) != 0 || close(out) != 0 || rename(tmp, j->path) != 0) {
        j->rv = errno;
        unlink(tmp);
    }
    free(buf);
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
    snprintf(j->line, sizeof(j->line),
             "seg %s %" PRIu64 " %" PRId64 " %" PRIu64 " %" PRId64 " %u %u %" PRIu64 " %" PRId64
             " %u %u\n",
             origin__kind_dir(kind), seg->msn, seg->start, seg->duration, seg->pdt_ms,
             seg->init_gen, seg->discontinuity, seg->bytes, hls_stream_origin_ms(st->hls),
             hls_stream_track(st->hls, kind)->timescale, seg->gap);
    j->index_fd = st->index_fd;
    st->index_bytes += strlen(j->line);
    job_queue_ordered(st, j);
    if (st->index_bytes > INDEX_MAX && (j = job_new(st->o, JOB_COMPACT)) != NULL) {
        snprintf(j->path, sizeof(j->path), "%s/index.log", st->dir);
        st->index_bytes = INDEX_KEEP; /* until the reopen says exactly */
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

/*
 * One line of index.log. Returns 1 for a segment line (timescale 0 when the line predates it; the
 * gap flag, last, came later still).
 */
static int index_line(const char *line, int *kind, hls_segment_t *seg, int64_t *origin_ms,
                      uint32_t *timescale)
{
    char k[4];
    unsigned gen, disc, ts = 0, gap = 0;
    memset(seg, 0, sizeof(*seg));
    int n = sscanf(line,
                   "seg %3s %" SCNu64 " %" SCNd64 " %" SCNu64 " %" SCNd64 " %u %u %" SCNu64
                   " %" SCNd64 " %u %u",
                   k, &seg->msn, &seg->start, &seg->duration, &seg->pdt_ms, &gen, &disc,
                   &seg->bytes, origin_ms, &ts, &gap);
    if (n < 9 || (strcmp(k, "v") != 0 && strcmp(k, "a") != 0))
        return 0;
    *kind = k[0] == 'v' ? HLS_VIDEO : HLS_AUDIO;
    seg->init_gen = gen;
    seg->discontinuity = (uint8_t)(disc != 0);
    seg->gap = (uint8_t)(n == 11 && gap != 0);
    *timescale = n >= 10 ? ts : 0;
    return 1;
}

int origin__dvr_restore(struct origin *o, const char *name, uint64_t *next_msn, int64_t *origin_ms,
                        uint32_t *init_gen, int *clean)
{
    char p[1100];
    snprintf(p, sizeof(p), "%s/%s/index.log", o->data_dir, name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;

    char line[512];
    int found = 0;
    uint64_t max_msn = 0;
    int64_t om = 0;
    unsigned max_gen = 0;
    *clean = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        hls_segment_t seg;
        int kind;
        int64_t line_origin;
        uint32_t ts;
        if (strcmp(line, "end\n") == 0) {
            *clean = found;
            continue;
        }
        if (!index_line(line, &kind, &seg, &line_origin, &ts))
            continue;
        *clean = 0;
        if (!found || seg.msn >= max_msn) {
            max_msn = seg.msn;
            om = line_origin;
        }
        if (seg.init_gen > max_gen)
            max_gen = seg.init_gen;
        found = 1;
    }
    fclose(f);
    if (!found)
        return -1;
    /* After a crash, skip one number: the segment that was being written may have been served
     * in part under the next number. After a clean stop every segment was finished and logged. */
    *next_msn = max_msn + (*clean ? 1 : 2);
    *origin_ms = om;
    /* The init segments of the earlier run stay on disk for its segments: number past them. */
    *init_gen = max_gen;
    return 0;
}

int origin__dvr_restore_timeline(origin_stream_t *st, uint64_t next_msn)
{
    char p[1100];
    hls_segment_t *segs[HLS_NTRACKS] = {NULL, NULL};
    uint32_t ts[HLS_NTRACKS] = {0, 0};
    size_t n[HLS_NTRACKS] = {0, 0}, cap[HLS_NTRACKS] = {0, 0};
    int rv = 0;

    snprintf(p, sizeof(p), "%s/index.log", st->dir);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return -1;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        hls_segment_t seg;
        int k;
        int64_t om;
        uint32_t t;
        if (!index_line(line, &k, &seg, &om, &t) || seg.msn >= next_msn)
            continue;
        if (t == 0 && k == HLS_VIDEO)
            t = 90000; /* a line from before the timescale was logged */
        if (t == 0 || (ts[k] != 0 && t != ts[k]) ||
            (n[k] > 0 && seg.msn <= segs[k][n[k] - 1].msn)) {
            n[k] = 0; /* a sample rate change, or numbers going back: keep what follows */
        }
        if (t == 0)
            continue;
        ts[k] = t;
        if (n[k] == cap[k]) {
            size_t c = cap[k] ? cap[k] * 2 : 256;
            hls_segment_t *g = realloc(segs[k], c * sizeof(*g));
            if (g == NULL) {
                rv = -1;
                goto out;
            }
            segs[k] = g;
            cap[k] = c;
        }
        segs[k][n[k]++] = seg;
    }
    for (int k = 0; k < HLS_NTRACKS; k++) {
        /* The run without holes that ends right before the next number, inside the window. */
        if (n[k] == 0 || segs[k][n[k] - 1].msn + 1 != next_msn)
            continue;
        size_t from = n[k] - 1;
        int64_t oldest = segs[k][from].pdt_ms - (int64_t)st->o->hls_cfg.window_ms;
        while (from > 0 && segs[k][from - 1].msn + 1 == segs[k][from].msn &&
               segs[k][from - 1].pdt_ms >= oldest)
            from--;
        for (size_t i = from; i < n[k] && rv == 0; i++)
            rv = hls_stream_restore_segment(st->hls, k, &segs[k][i], ts[k]);
        if (rv == 0)
            sw_log(SW_LOG_INFO, "dvr", "%s: %s timeline of the earlier run restored: %zu segments",
                   st->name, k == HLS_VIDEO ? "video" : "audio", n[k] - from);
    }
out:
    fclose(f);
    free(segs[0]);
    free(segs[1]);
    return rv;
}
