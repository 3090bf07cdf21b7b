/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared kernel-side machinery of every rung: maps, event header fill, filters,
 * counters, ring-buffer output. It is not #included: lsmtrace/bpfgen.py puts it
 * first in the program text, before the rung's .bpf.c files, because bcc
 * rewrites map method calls (`m.lookup()`) only in its main file.
 *
 * Compile-time options (always -D cflags from lsmtrace/loader.py, never text edits):
 *   LSMT_PERFBUF          perf buffer instead of the BPF ring buffer (old kernels)
 *   LSMT_RINGBUF_PAGES    ring buffer size in pages (power of two)
 *   LSMT_WAKEUP_EVERY     wake the consumer once every this many events per CPU
 *   LSMT_RUNG             enum lsmt_rung of this build
 *   LSMT_MNTNS_INUM       offset of ns.inum in the private struct mnt_namespace
 *   LSMT_MOUNT_PARENT, LSMT_MOUNT_MOUNTPOINT, LSMT_MOUNT_MNT (struct mount),
 *   LSMT_FS_ROOT, LSMT_FS_PWD (struct fs_struct), LSMT_FILES_FDT
 *   (struct files_struct), LSMT_FDT_MAX_FDS, LSMT_FDT_FD (struct fdtable),
 *   LSMT_MM_EXE_FILE, LSMT_MM_ARG_START, LSMT_MM_ARG_END (struct mm_struct):
 *                         offsets from BTF (bpfgen.struct_offsets()), so the
 *                         same C builds with synthesized and real headers
 *   LSMT_NO_MOUNT_WALK    BTF lacks them: paths stop at mount points and
 *                         syscall names are not resolved (as_given)
 *
 * No bpf_printk: every error or drop is a counter in `stats`.
 */
#ifndef LSMTRACE_COMMON_H
#define LSMTRACE_COMMON_H

#include <linux/sched.h>
#include <linux/fs.h>
#include <linux/cred.h>
#include <linux/nsproxy.h>
#include <linux/user_namespace.h>
#include <linux/ptrace.h>
#include <linux/dcache.h>
#include <linux/mount.h>
#include <linux/mm_types.h>
#include "lsmtrace.h"

#ifndef LSMT_RINGBUF_PAGES
#define LSMT_RINGBUF_PAGES 512
#endif
#ifndef LSMT_WAKEUP_EVERY
#define LSMT_WAKEUP_EVERY (LSMT_RINGBUF_PAGES * 4096 / 8 / (sizeof(struct lsmt_event) + 8))
#endif
#ifndef LSMT_RUNG
#define LSMT_RUNG LSMT_RUNG_TRACEPOINT
#endif
#ifndef LSMT_MAX_DEPTH
#define LSMT_MAX_DEPTH 16 /* path components walked (deeper: truncated) */
#endif

/* Syscall arguments and number from the task's user registers. */
#if defined(__x86_64__)
#define LSMT_SYSCALL_NR(regs) ((regs)->orig_ax)
#define LSMT_R0 di
#define LSMT_R1 si
#define LSMT_R2 dx
#define LSMT_R3 r10
#define LSMT_R4 r8
#define LSMT_R5 r9
/* r10, r9, r8, ax, cx, dx, si, di: all six arguments in one 64-byte read */
#define LSMT_ARGS_FROM r10
#define LSMT_ARGS_LEN 64
#define LSMT_ARG0_IN_SPAN 1
#elif defined(__aarch64__)
#define LSMT_SYSCALL_NR(regs) ((regs)->syscallno)
#define LSMT_R0 orig_x0
#define LSMT_R1 regs[1]
#define LSMT_R2 regs[2]
#define LSMT_R3 regs[3]
#define LSMT_R4 regs[4]
#define LSMT_R5 regs[5]
/* x1..x5 in one read; the first argument (orig_x0) apart */
#define LSMT_ARGS_FROM regs[1]
#define LSMT_ARGS_LEN 40
#define LSMT_ARG0_IN_SPAN 0
#else
#error "lsmtrace supports x86_64 and aarch64"
#endif
#define LSMT_ARG0(regs) ((regs)->LSMT_R0)
#define LSMT_ARG1(regs) ((regs)->LSMT_R1)
#define LSMT_ARG2(regs) ((regs)->LSMT_R2)
#define LSMT_ARG3(regs) ((regs)->LSMT_R3)
#define LSMT_ARG4(regs) ((regs)->LSMT_R4)
#define LSMT_ARG5(regs) ((regs)->LSMT_R5)

#define LSMT_READ(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), &(src))
/* v &= mask, in asm: clang drops a C mask it can prove redundant, and the
 * verifier, which cannot prove it, then sees an unbounded offset. */
#define LSMT_MASK(v, mask) asm volatile("%0 &= " #mask : "+r"(v))

#ifdef LSMT_PERFBUF
BPF_PERF_OUTPUT(events);
BPF_PERCPU_ARRAY(scratch, struct lsmt_event, 1);
#else
BPF_RINGBUF_OUTPUT(events, LSMT_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(wake_count, u32, 1);
#endif

BPF_ARRAY(settings, struct lsmt_config, 1);
BPF_PERCPU_ARRAY(stats, u64, LSMT_STAT_MAX);
/* Allowed decisions per id: the hot path, an array the verifier inlines. */
BPF_PERCPU_ARRAY(allow_counts, u64, LSMT_MAX_IDS);
/* Events lost (buffer full) per id; process events under id 0. */
BPF_PERCPU_ARRAY(lost_counts, u64, LSMT_MAX_IDS);
/* Denials per (id, lsm, errno). */
BPF_PERCPU_HASH(deny_counts, struct lsmt_count_key, u64, 8192);
/* Quiet capability probes (CAP_OPT_NOAUDIT) per (id, lsm, errno): refused
 * checks that refused nothing, kept out of deny_counts. */
BPF_PERCPU_HASH(quiet_counts, struct lsmt_count_key, u64, 1024);
/* log2(latency ns) histogram per (id, bucket); fexit/kprobe rungs only. */
BPF_PERCPU_HASH(lat_hist, struct lsmt_lat_key, u64, 16384);
/* --pid/--children: the set of traced processes. */
BPF_HASH(traced_tgids, u32, u8, 65536);
/* --cgroup: slot 0 holds the cgroup; its whole subtree is traced. */
BPF_CGROUP_ARRAY(cgroup_filter, 1);
/* Last hook denial of each thread, for DAC-vs-LSM attribution of syscalls. */
BPF_TABLE("lru_hash", u64, struct lsmt_pending, pending, 16384);

static __always_inline void lsmt_stat(u32 idx)
{
	u64 *v = stats.lookup(&idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline struct lsmt_config *lsmt_config(void)
{
	u32 zero = 0;
	return settings.lookup(&zero);
}

/* Aggregate one decision; runs for every decision, before any filter.
 * `quiet`: a refused quiet capability probe, counted apart from denials. */
static __always_inline void lsmt_count(u32 id, u16 lsm, s32 ret, int quiet)
{
	lsmt_stat(LSMT_STAT_SEEN);
	if (ret >= 0) {
		u32 idx = id & (LSMT_MAX_IDS - 1);
		u64 *v = allow_counts.lookup(&idx);
		if (v)
			__sync_fetch_and_add(v, 1);
		return;
	}
	struct lsmt_count_key key = {.id = id, .lsm = lsm, .err = -ret};
	u64 one = 1;
	u64 *v = quiet ? quiet_counts.lookup(&key) : deny_counts.lookup(&key);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else if ((quiet ? quiet_counts.update(&key, &one) : deny_counts.update(&key, &one)) != 0) {
		lsmt_stat(LSMT_STAT_MAP_FULL);
	}
}

static __always_inline u32 lsmt_log2(u64 v)
{
	u32 r = 0;
#pragma unroll
	for (int i = 32; i > 0; i >>= 1) {
		if (v >= (1ull << i)) {
			v >>= i;
			r += i;
		}
	}
	return r;
}

static __always_inline void lsmt_latency(u32 id, u64 ns)
{
	struct lsmt_lat_key key = {.id = id, .bucket = lsmt_log2(ns)};
	if (key.bucket >= LSMT_LAT_BUCKETS)
		key.bucket = LSMT_LAT_BUCKETS - 1;
	u64 one = 1;
	u64 *v = lat_hist.lookup(&key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else if (lat_hist.update(&key, &one) != 0)
		lsmt_stat(LSMT_STAT_MAP_FULL);
}

static __always_inline int lsmt_comm_eq(const char *a, const char *b)
{
#pragma unroll
	for (int i = 0; i < LSMT_COMM_LEN; i++) {
		if (a[i] != b[i])
			return 0;
		if (a[i] == 0)
			return 1;
	}
	return 1;
}

/*
 * Scope filters (--pid/--children, --uid, --comm, --cgroup) and the stream
 * filter (--denied). Returns 1 when the decision should be emitted. `denied`:
 * a hook returned non-zero, or a syscall failed with EPERM/EACCES (a syscall's
 * ENOENT is a failure, not a security denial).
 */
static __always_inline int lsmt_want(struct lsmt_config *cfg, int denied)
{
	if (!(cfg->flags & LSMT_CFG_STREAM))
		return 0;
	if ((cfg->flags & LSMT_CFG_DENIED_ONLY) && !denied)
		return 0;
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == cfg->self_tgid)
		return 0;
	if (cfg->flags & LSMT_CFG_PID) {
		if (!traced_tgids.lookup(&tgid))
			return 0;
	}
	if (cfg->flags & LSMT_CFG_UID) {
		if ((u32)bpf_get_current_uid_gid() != cfg->uid)
			return 0;
	}
	if (cfg->flags & LSMT_CFG_COMM) {
		char comm[LSMT_COMM_LEN] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		if (!lsmt_comm_eq(comm, cfg->comm))
			return 0;
	}
	if (cfg->flags & LSMT_CFG_CGROUP) {
		if (cgroup_filter.check_current_task(0) != 1)
			return 0;
	}
	return 1;
}

static __always_inline struct pt_regs *lsmt_user_regs(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	return (struct pt_regs *)bpf_task_pt_regs(t);
}

static __always_inline s32 lsmt_current_syscall(void)
{
	struct pt_regs *regs = lsmt_user_regs();
	long nr = -1;
	LSMT_READ(nr, LSMT_SYSCALL_NR(regs));
	return (s32)nr;
}

/* One event of `id` the buffer had no room for: in total and per id. */
static __always_inline void lsmt_lost(u32 id)
{
	lsmt_stat(LSMT_STAT_LOST);
	u32 idx = id & (LSMT_MAX_IDS - 1);
	u64 *v = lost_counts.lookup(&idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Reserve an event of `id`; NULL (and the loss counted) when the buffer is full. */
static __always_inline struct lsmt_event *lsmt_reserve(u32 id)
{
	lsmt_stat(LSMT_STAT_ATTEMPTED);
#ifdef LSMT_PERFBUF
	u32 zero = 0;
	struct lsmt_event *e = scratch.lookup(&zero);
#else
	struct lsmt_event *e = events.ringbuf_reserve(sizeof(struct lsmt_event));
#endif
	if (!e)
		lsmt_lost(id);
	return e;
}

/*
 * The filters, then a reserved event: NULL when the decision is not streamed
 * (counted as filtered while streaming) or the buffer is full (counted lost).
 */
static __always_inline struct lsmt_event *lsmt_begin(struct lsmt_config *cfg, int denied,
						     u32 id)
{
	if (!lsmt_want(cfg, denied)) {
		if (cfg->flags & LSMT_CFG_STREAM)
			lsmt_stat(LSMT_STAT_FILTERED);
		return NULL;
	}
	return lsmt_reserve(id);
}

static __always_inline void lsmt_submit(void *ctx, struct lsmt_event *e)
{
#ifdef LSMT_PERFBUF
	if (events.perf_submit(ctx, e, sizeof(*e)) != 0)
		lsmt_lost(e->id); /* 0 for process events */
#else
	/* No wakeup per event: the consumer polls on a short timer, and each CPU
	 * wakes it early once every LSMT_WAKEUP_EVERY events (about 1/8 of the
	 * ring), before the ring can fill between two timer ticks. */
	u32 zero = 0;
	u32 *n = wake_count.lookup(&zero);
	u64 flags = BPF_RB_NO_WAKEUP;
	if (n) {
		*n += 1;
		if (*n >= LSMT_WAKEUP_EVERY) {
			*n = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	events.ringbuf_submit(e, flags);
#endif
}

/* Fill the header: who, where, when; `nr` is the syscall under way (a
 * syscall exit knows it; lsmt_fill() reads it from the task's registers).
 * The object is the caller's. */
static __always_inline void lsmt_fill_nr(struct lsmt_event *e, u16 kind, u16 id, s32 ret,
					 u16 lsm, s32 nr)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = NULL;
	const struct cred *cred = NULL;
	struct nsproxy *nsp = NULL;
	struct mnt_namespace *mnt = NULL;

	e->ts_ns = bpf_ktime_get_ns();
	e->latency_ns = 0;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->kind = kind;
	e->rung = LSMT_RUNG;
	e->id = id;
	e->lsm = lsm;
	e->ret = ret;
	e->pid = (u32)pid_tgid;
	e->tgid = pid_tgid >> 32;
	e->uid = (u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->ppid = 0;
	e->euid = 0;
	e->mntns = 0;
	LSMT_READ(parent, task->real_parent);
	if (parent)
		LSMT_READ(e->ppid, parent->tgid);
	LSMT_READ(cred, task->cred);
	if (cred)
		LSMT_READ(e->euid, cred->euid.val);
	LSMT_READ(nsp, task->nsproxy);
	if (nsp)
		LSMT_READ(mnt, nsp->mnt_ns);
	/* struct mnt_namespace is private to fs/: its ns.inum offset comes from
	 * BTF (-DLSMT_MNTNS_INUM), so real kernel headers work too */
	if (mnt)
		bpf_probe_read_kernel(&e->mntns, sizeof(e->mntns), (void *)mnt + LSMT_MNTNS_INUM);
	e->syscall = nr;
	e->obj_type = LSMT_OBJ_NONE;
	e->flags = 0;
	/* ring buffer memory is not zeroed: no stale bytes may leak out */
	/* (an explicit loop: a large __builtin_memset becomes a libcall in BPF) */
	u64 *words = (u64 *)&e->obj;
#pragma unroll
	for (int i = 0; i < sizeof(e->obj) / 8; i++)
		words[i] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

static __always_inline void lsmt_fill(struct lsmt_event *e, u16 kind, u16 id, s32 ret,
				      u16 lsm)
{
	lsmt_fill_nr(e, kind, id, ret, lsm, lsmt_current_syscall());
}

/* Reads from user (LSMT_USER) or kernel (LSMT_KERNEL) memory. `mem` is a
 * constant at every call site, so the branch folds away after inlining: one
 * decoder serves the syscall (user pointers) and hook (kernel pointers) rungs. */
#define LSMT_USER 1
#define LSMT_KERNEL 0

static __always_inline long lsmt_read(void *dst, u32 size, const void *src, int mem)
{
	return mem == LSMT_USER ? bpf_probe_read_user(dst, size, src)
				: bpf_probe_read_kernel(dst, size, src);
}

/* Read a string into dst; flag truncation and read errors. */
static __always_inline void lsmt_str(struct lsmt_event *e, char *dst, u32 size,
				     const void *src, int mem)
{
	long n = mem == LSMT_USER ? bpf_probe_read_user_str(dst, size, src)
				  : bpf_probe_read_kernel_str(dst, size, src);
	char next = 0;
	if (n < 0) {
		dst[0] = 0;
		e->flags |= LSMT_EV_READ_ERR;
		lsmt_stat(LSMT_STAT_READ_ERR);
	} else if (n == size) {
		/* full buffer: truncated unless the string ended exactly there */
		lsmt_read(&next, 1, src + size - 1, mem);
		if (next)
			e->flags |= LSMT_EV_TRUNCATED;
	}
}

#define LSMT_AF_UNIX 1
#define LSMT_AF_INET 2
#define LSMT_AF_INET6 10

/* A struct sockaddr of `len` bytes at `a` into obj.sock. */
static __always_inline void lsmt_sockaddr(struct lsmt_event *e, const void *a, u32 len,
					  int mem)
{
	struct lsmt_obj_sock *s = &e->obj.sock;
	u16 port = 0;
	s->addrlen = len;
	if (!a || len < 2)
		return;
	if (lsmt_read(&s->family, sizeof(s->family), a, mem) != 0) {
		e->flags |= LSMT_EV_READ_ERR;
		return;
	}
	if (s->family == LSMT_AF_INET || s->family == LSMT_AF_INET6) {
		lsmt_read(&port, sizeof(port), a + 2, mem);
		s->port = (port >> 8) | ((port & 0xff) << 8);
		if (s->family == LSMT_AF_INET)
			lsmt_read(s->addr, 4, a + 4, mem);
		else
			lsmt_read(s->addr, 16, a + 8, mem);
	} else if (s->family == LSMT_AF_UNIX) {
		/* sun_path: addrlen - 2 bytes, copied as bytes, not as a string: an
		 * abstract name starts with a NUL (user space shows it as @name) */
		u32 n = len - 2;
		if (n > sizeof(s->path))
			n = sizeof(s->path);
		LSMT_MASK(n, 127);
		if (n && lsmt_read(s->path, n, a + 2, mem) != 0)
			e->flags |= LSMT_EV_READ_ERR;
	}
}

/* -- paths --------------------------------------------------------------------- */

/*
 * Scratch for assembling paths and the exec object (not wire format: never
 * leaves the kernel as such). A path is built in the first 2 * LSMT_PATH_LEN
 * bytes (a component of up to LSMT_PATH_LEN bytes at any offset below
 * LSMT_PATH_LEN stays in bounds for the verifier); a name joined to it, or an
 * exec's argv, goes after it, below LSMT_SCRATCH_LEN.
 */
#define LSMT_SCRATCH_LEN (4 * LSMT_PATH_LEN)
struct lsmt_scratch {
	char b[LSMT_SCRATCH_LEN];
};
BPF_PERCPU_ARRAY(path_scratch, struct lsmt_scratch, 1);

static __always_inline char *lsmt_scratch(void)
{
	u32 zero = 0;
	struct lsmt_scratch *s = path_scratch.lookup(&zero);
	return s ? s->b : NULL;
}

/* struct dentry's d_parent is followed by d_name (struct qstr: hash_len,
 * name), as in every kernel since 2.6: lsmt_dpath_build() then reads a
 * component's parent and name in one call. A constant: the other branch
 * folds away. */
#define LSMT_DENTRY_LINK_ADJACENT                                                      \
	(__builtin_offsetof(struct dentry, d_name) ==                                  \
		 __builtin_offsetof(struct dentry, d_parent) + 8 &&                    \
	 __builtin_offsetof(struct qstr, name) == 8)

/*
 * Walk a dentry up to its filesystem root and, when `mnt` is known, across
 * mount points up to the namespace root; write "/a/b/c" into b and return its
 * length (b[len] is not written). *complete is 0 when the walk stopped short
 * (deeper than LSMT_MAX_DEPTH) or the path does not fit LSMT_PATH_LEN - 1.
 */
static __always_inline u32 lsmt_dpath_build(char *b, struct dentry *d, struct vfsmount *mnt,
					    int *complete)
{
	/* names[i] is written by iteration i of the unrolled loop (a constant
	 * index: the verifier refuses variable offsets into the stack); mount
	 * crossings leave their slot NULL. */
	const unsigned char *names[LSMT_MAX_DEPTH] = {};
	struct dentry *mnt_root = NULL;
	*complete = 0;
#ifdef LSMT_NO_MOUNT_WALK
	mnt = NULL;
#endif
	if (mnt)
		LSMT_READ(mnt_root, mnt->mnt_root);
#pragma unroll
	for (int i = 0; i < LSMT_MAX_DEPTH; i++) {
		struct dentry *parent = NULL;
		if (!d) {
			*complete = 1;
			break;
		}
		if (mnt && d == mnt_root) {
			/* climb to the mount point in the parent mount */
			void *m = (void *)mnt - LSMT_MOUNT_MNT;
			void *pm = NULL;
			struct dentry *mp = NULL;
			bpf_probe_read_kernel(&pm, sizeof(pm), m + LSMT_MOUNT_PARENT);
			bpf_probe_read_kernel(&mp, sizeof(mp), m + LSMT_MOUNT_MOUNTPOINT);
			if (!pm || pm == m) {
				*complete = 1;
				break; /* the namespace root */
			}
			mnt = (struct vfsmount *)(pm + LSMT_MOUNT_MNT);
			LSMT_READ(mnt_root, mnt->mnt_root);
			d = mp;
			continue;
		}
		const unsigned char *name = NULL;
		if (LSMT_DENTRY_LINK_ADJACENT) {
			/* d_parent and d_name (hash_len, name) side by side: one read */
			u64 link[3] = {};
			bpf_probe_read_kernel(link, sizeof(link),
					      (void *)d + __builtin_offsetof(struct dentry, d_parent));
			parent = (struct dentry *)link[0];
			name = (const unsigned char *)link[2];
		} else {
			LSMT_READ(parent, d->d_parent);
			LSMT_READ(name, d->d_name.name);
		}
		if (!parent || parent == d) {
			*complete = 1;
			break; /* the filesystem root */
		}
		names[i] = name;
		d = parent;
	}
	u32 pos = 0;
#pragma unroll
	for (int i = LSMT_MAX_DEPTH - 1; i >= 0; i--) {
		if (!names[i])
			continue;
		if (pos >= LSMT_PATH_LEN - 1) {
			*complete = 0;
			break;
		}
		u32 off = pos;
		LSMT_MASK(off, 255);
		b[off] = '/';
		off += 1;
		long n = bpf_probe_read_kernel_str(&b[off], LSMT_PATH_LEN, names[i]);
		pos = n > 1 ? off + n - 1 : off;
	}
	if (pos == 0) {
		b[0] = '/';
		pos = 1;
	}
	if (pos >= LSMT_PATH_LEN)
		*complete = 0;
	return pos;
}

/* The first LSMT_PATH_LEN - 1 bytes of b[0..len) into buf, NUL-terminated. */
static __always_inline void lsmt_path_out(char *buf, char *b, u32 len)
{
	LSMT_MASK(len, 1023); /* LSMT_SCRATCH_LEN - 1 */
	b[len] = 0;
	bpf_probe_read_kernel(buf, LSMT_PATH_LEN, b);
	buf[LSMT_PATH_LEN - 1] = 0;
}

/* Walk (d, mnt) into buf (LSMT_PATH_LEN bytes); a walk that stopped short or
 * did not fit marks the event truncated. Returns 1 when complete. */
static __always_inline int lsmt_dpath(struct lsmt_event *e, char *buf, struct dentry *d,
				      struct vfsmount *mnt)
{
	int complete = 0;
	char *b = lsmt_scratch();
	if (!b)
		return 0;
	u32 len = lsmt_dpath_build(b, d, mnt, &complete);
	if (!complete)
		e->flags |= LSMT_EV_TRUNCATED;
	lsmt_path_out(buf, b, len);
	return complete;
}

/* The current task's root (root != 0) or working directory. */
static __always_inline void lsmt_fs_path(int root, struct vfsmount **mnt, struct dentry **d)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	void *fs = NULL;
	struct path p = {};
	LSMT_READ(fs, t->fs);
	if (!fs)
		return;
	bpf_probe_read_kernel(&p, sizeof(p), fs + (root ? LSMT_FS_ROOT : LSMT_FS_PWD));
	*mnt = p.mnt;
	*d = p.dentry;
}

/* A file's mount and dentry: its struct path in one read. */
static __always_inline void lsmt_file_path(struct file *f, struct vfsmount **mnt,
					   struct dentry **d)
{
	struct path p = {};
	LSMT_READ(p, f->f_path);
	*mnt = p.mnt;
	*d = p.dentry;
}

/* The open file of the current task's descriptor fd, or NULL. */
static __always_inline struct file *lsmt_fd_file(s32 fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	void *files = NULL, *fdt = NULL;
	struct file **fds = NULL;
	struct file *f = NULL;
	u32 max = 0;
	if (fd < 0)
		return NULL;
	LSMT_READ(files, t->files);
	if (!files)
		return NULL;
	bpf_probe_read_kernel(&fdt, sizeof(fdt), files + LSMT_FILES_FDT);
	if (!fdt)
		return NULL;
	if (LSMT_FDT_FD == LSMT_FDT_MAX_FDS + 8) {
		/* struct fdtable { unsigned int max_fds; struct file **fd; ...}: one read */
		u64 head[2] = {};
		bpf_probe_read_kernel(head, sizeof(head), fdt + LSMT_FDT_MAX_FDS);
		max = (u32)head[0];
		fds = (struct file **)head[1];
	} else {
		bpf_probe_read_kernel(&max, sizeof(max), fdt + LSMT_FDT_MAX_FDS);
		bpf_probe_read_kernel(&fds, sizeof(fds), fdt + LSMT_FDT_FD);
	}
	if ((u32)fd >= max || !fds)
		return NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* Remember a hook denial of this thread (for the syscall that contains it). */
static __always_inline void lsmt_note_denial(u16 id, u16 lsm, s32 ret)
{
	u64 key = bpf_get_current_pid_tgid();
	struct lsmt_pending p = {
		.ts_ns = bpf_ktime_get_ns(),
		.ret = ret,
		.lsm = lsm,
		.id = id,
		.syscall = lsmt_current_syscall(),
	};
	if (pending.update(&key, &p) != 0)
		lsmt_stat(LSMT_STAT_MAP_FULL);
}

/*
 * Capabilities that only override DAC: their denial inside a failing syscall is
 * the DAC decision itself (generic_permission asks for them after the mode bits
 * said no), not a capability-module veto.
 */
static __always_inline int lsmt_cap_is_dac_override(s32 cap)
{
	return cap == 1 /* CAP_DAC_OVERRIDE */ || cap == 2 /* CAP_DAC_READ_SEARCH */ ||
	       cap == 3 /* CAP_FOWNER */;
}

#endif /* LSMTRACE_COMMON_H */
