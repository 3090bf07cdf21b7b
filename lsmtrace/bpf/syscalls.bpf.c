/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Syscall-level observation, shared by every rung.
 *
 * On the tracepoint rung this is all there is: security-relevant syscalls'
 * exits with their errno and decoded object, capability:cap_capable (the
 * capability module's verdict), avc:selinux_audited, and sched events.
 * On the fexit/kprobe rungs the same exit program answers "DAC or LSM?" for
 * syscalls failing with EACCES/EPERM: a hook denial noted inside the syscall
 * (the `pending` map) names the LSM, none means plain DAC.
 *
 * One program, lsmt_sys_exit, is attached to every chosen syscalls:sys_exit_*
 * tracepoint; `sys_desc[nr]` (written by user space from lsmtrace/syscalls.py)
 * says how to decode the syscall's object from the task's user registers.
 *
 * File names are resolved here, on every rung, for streamed events only: the
 * file a successful open's new descriptor refers to (exact), otherwise the
 * directory (dirfd, the cwd for AT_FDCWD, the root for an absolute name)
 * joined with the name (joined). obj.file.path_kind says which.
 *
 * Process events (exec with the executable's path and argv head, fork, exit)
 * pass every filter: the process tree needs them whatever the consumer shows;
 * those outside the scope filters are flagged LSMT_EV_CONTEXT.
 *
 * Options: LSMT_WITH_CAP_TP, LSMT_WITH_AVC_TP, LSMT_WITH_SIGNAL_TP, LSMT_WITH_SCHED.
 */
/* common.h comes first in the program text (see lsmtrace/bpfgen.py). */

#define LSMT_EPERM 1
#define LSMT_EACCES 13
#define LSMT_AT_FDCWD (-100)

BPF_ARRAY(sys_desc, struct lsmt_sys_desc, LSMT_MAX_SYSCALL);

/* Layout of every syscalls:sys_{enter,exit}_* record (see their format files). */
struct lsmt_sys_exit_args {
	u64 common;
	s32 nr;
	s32 pad;
	s64 ret;
};

struct lsmt_sys_enter_args {
	u64 common;
	s32 nr;
	s32 pad;
};

/* The six syscall arguments, from the task's user registers (struct pt_regs
 * at exit holds them as they were at entry): one read of the registers that
 * hold them side by side (LSMT_ARGS_FROM, LSMT_ARGS_LEN), one more for the
 * first argument where it is apart (aarch64's orig_x0). */
struct lsmt_args {
	u64 a[6];
};

/* Where argument n sits in the span read (a constant) */
#define LSMT_ARG_SLOT(n)                                                               \
	((__builtin_offsetof(struct pt_regs, LSMT_R##n) -                              \
	  __builtin_offsetof(struct pt_regs, LSMT_ARGS_FROM)) /                        \
	 8)

_Static_assert(LSMT_ARG_SLOT(1) < LSMT_ARGS_LEN / 8 && LSMT_ARG_SLOT(2) < LSMT_ARGS_LEN / 8 &&
		       LSMT_ARG_SLOT(3) < LSMT_ARGS_LEN / 8 &&
		       LSMT_ARG_SLOT(4) < LSMT_ARGS_LEN / 8 &&
		       LSMT_ARG_SLOT(5) < LSMT_ARGS_LEN / 8 &&
		       (!LSMT_ARG0_IN_SPAN || LSMT_ARG_SLOT(0) < LSMT_ARGS_LEN / 8),
	       "the argument registers are not where LSMT_ARGS_FROM/LEN say");

static __always_inline void lsmt_read_args(struct pt_regs *regs, struct lsmt_args *out)
{
	u64 span[LSMT_ARGS_LEN / 8] = {};
	bpf_probe_read_kernel(span, sizeof(span),
			      (void *)regs + __builtin_offsetof(struct pt_regs, LSMT_ARGS_FROM));
	out->a[1] = span[LSMT_ARG_SLOT(1)];
	out->a[2] = span[LSMT_ARG_SLOT(2)];
	out->a[3] = span[LSMT_ARG_SLOT(3)];
	out->a[4] = span[LSMT_ARG_SLOT(4)];
	out->a[5] = span[LSMT_ARG_SLOT(5)];
#if LSMT_ARG0_IN_SPAN
	out->a[0] = span[LSMT_ARG_SLOT(0)];
#else
	LSMT_READ(out->a[0], LSMT_ARG0(regs));
#endif
}

/* Argument i (a syscall descriptor's index: constant per case) */
static __always_inline u64 lsmt_arg(const struct lsmt_args *args, u8 i)
{
	switch (i) {
	case 0:
		return args->a[0];
	case 1:
		return args->a[1];
	case 2:
		return args->a[2];
	case 3:
		return args->a[3];
	case 4:
		return args->a[4];
	case 5:
		return args->a[5];
	}
	return 0;
}

/*
 * Replace the name a file syscall was given (obj.file.path, as read from user
 * memory) by the path of its object: the file of a successful open's new fd,
 * or of an fd argument (exact); else the directory it is relative to -- the
 * dirfd, the cwd (AT_FDCWD), the root for an absolute name -- joined with it.
 * Whatever cannot be placed keeps the name as given (a walk deeper than
 * LSMT_MAX_DEPTH, a result longer than LSMT_PATH_LEN, an unknown dirfd).
 *
 * `unread`: a successful open's name, not read yet. Its new fd's file gives
 * the exact path, so the name is read from user memory (~130 ns; opens are
 * the most streamed events) only when that walk cannot place it.
 */
static __always_inline void lsmt_resolve_path(struct lsmt_event *e, u8 dec, s64 ret,
					      const void *unread)
{
	struct lsmt_obj_file *o = &e->obj.file;
	struct file *f = NULL;
	struct vfsmount *mnt = NULL;
	struct dentry *d = NULL;
	char first = o->path[0];
	int join = 0, complete = 0;
	u16 kind = LSMT_PATHKIND_EXACT;

	if (!unread) {
		o->path_kind = first ? LSMT_PATHKIND_AS_GIVEN : LSMT_PATHKIND_NONE;
		if (e->flags & (LSMT_EV_READ_ERR | LSMT_EV_TRUNCATED))
			return;
	}
#ifdef LSMT_NO_MOUNT_WALK
	goto given;
#endif
	if (unread) {
		f = lsmt_fd_file((s32)ret);
	} else {
		if (dec == LSMT_DEC_FD) {
			f = lsmt_fd_file(o->dfd);
		} else if (!first) {
			/* AT_EMPTY_PATH (fexecve, fchmodat(fd, "")): the dirfd itself */
			f = lsmt_fd_file(o->dfd);
		} else {
			join = 1;
			kind = LSMT_PATHKIND_JOINED;
			if (first == '/')
				lsmt_fs_path(1, &mnt, &d);
			else if (o->dfd == LSMT_AT_FDCWD)
				lsmt_fs_path(0, &mnt, &d);
			else
				f = lsmt_fd_file(o->dfd);
		}
	}
	if (f)
		lsmt_file_path(f, &mnt, &d);
	char *b = lsmt_scratch();
	if (!d || !b)
		goto given;
	u32 len = lsmt_dpath_build(b, d, mnt, &complete);
	if (!complete)
		goto given;
	if (join) {
		/* complete: len < LSMT_PATH_LEN. An absolute name under a root that
		 * is not "/" (chroot) follows the root's path. */
		u32 off = len;
		LSMT_MASK(off, 255);
		if (off == 1) { /* the directory is "/" */
			off = first == '/' ? 0 : 1;
		} else if (first != '/') {
			b[off] = '/';
			off += 1;
		}
		long n = bpf_probe_read_kernel_str(&b[off], LSMT_PATH_LEN, o->path);
		len = n > 1 ? off + n - 1 : off;
		if (len >= LSMT_PATH_LEN)
			return; /* does not fit: the name as given */
	}
	lsmt_path_out(o->path, b, len);
	o->path_kind = kind;
	return;
given:
	if (unread) {
		lsmt_str(e, o->path, LSMT_PATH_LEN, unread, LSMT_USER);
		o->path_kind = o->path[0] ? LSMT_PATHKIND_AS_GIVEN : LSMT_PATHKIND_NONE;
	}
}

/* Decode the syscall's object from its arguments (user memory). */
static __always_inline void lsmt_decode_syscall(struct lsmt_event *e, struct lsmt_sys_desc *d,
						s64 ret)
{
	struct lsmt_args args;
	struct lsmt_args *regs = &args;
	lsmt_read_args(lsmt_user_regs(), regs);
	u8 a0 = d->arg[0], a1 = d->arg[1], a2 = d->arg[2], a3 = d->arg[3];
	const void *unread = NULL;

	e->obj_type = d->obj_type;
	switch (d->decoder) {
	case LSMT_DEC_OPEN:
		if (ret >= 0) { /* a valid name: read by lsmt_resolve_path() if need be */
			unread = (const void *)lsmt_arg(regs, a0);
		} else {
			lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0),
				 LSMT_USER);
		}
		e->obj.file.flags = a1 != LSMT_NONE_ARG ? lsmt_arg(regs, a1) : 0;
		e->obj.file.mode = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		e->obj.file.dfd = a3 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a3) : LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_PATH:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		e->obj.file.flags = a1 != LSMT_NONE_ARG ? lsmt_arg(regs, a1) : 0;
		e->obj.file.mode = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		e->obj.file.dfd = a3 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a3) : LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_PATH2:
		/* arg[3]: the dirfd of the first name (renameat, linkat, symlinkat) */
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		lsmt_str(e, e->obj.file.name, LSMT_NAME_LEN, (void *)lsmt_arg(regs, a1), LSMT_USER);
		e->obj.file.flags = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		e->obj.file.dfd = a3 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a3) : LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_EXEC:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		e->obj.file.dfd = a1 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a1) : LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_KILL:
		e->obj.signal.target_pid = (s32)lsmt_arg(regs, a0);
		e->obj.signal.sig = (s32)lsmt_arg(regs, a1);
		break;
	case LSMT_DEC_PTRACE:
		e->obj.ptrace.request = (s64)lsmt_arg(regs, a0);
		e->obj.ptrace.target_pid = (s32)lsmt_arg(regs, a1);
		break;
	case LSMT_DEC_MEM:
		e->obj.mem.addr = lsmt_arg(regs, a0);
		e->obj.mem.len = lsmt_arg(regs, a1);
		e->obj.mem.prot = lsmt_arg(regs, a2);
		e->obj.mem.reqprot = e->obj.mem.prot;
		e->obj.mem.flags = a3 != LSMT_NONE_ARG ? lsmt_arg(regs, a3) : 0;
		e->obj.mem.fd = a3 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, 4) : -1;
		break;
	case LSMT_DEC_SOCKET:
		e->obj.sock.family = lsmt_arg(regs, a0);
		e->obj.sock.type = lsmt_arg(regs, a1);
		e->obj.sock.protocol = lsmt_arg(regs, a2);
		break;
	case LSMT_DEC_SOCKADDR:
		lsmt_sockaddr(e, (void *)lsmt_arg(regs, a1), (u32)lsmt_arg(regs, a2), LSMT_USER);
		break;
	case LSMT_DEC_MSGHDR: {
		/* struct user_msghdr: void *msg_name; int msg_namelen; ... */
		void *msg = (void *)lsmt_arg(regs, a1);
		void *name = NULL;
		u32 namelen = 0;
		bpf_probe_read_user(&name, sizeof(name), msg);
		bpf_probe_read_user(&namelen, sizeof(namelen), msg + 8);
		lsmt_sockaddr(e, name, namelen, LSMT_USER);
		break;
	}
	case LSMT_DEC_SETID:
		e->obj.setid.ids[0] = a0 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a0) : -1;
		e->obj.setid.ids[1] = a1 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a1) : -1;
		e->obj.setid.ids[2] = a2 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a2) : -1;
		break;
	case LSMT_DEC_MOUNT:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		lsmt_str(e, e->obj.file.name, LSMT_NAME_LEN, (void *)lsmt_arg(regs, a2), LSMT_USER);
		e->obj.file.flags = a3 != LSMT_NONE_ARG ? lsmt_arg(regs, a3) : 0;
		e->obj.file.dfd = LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_FD:
		e->obj.file.dfd = (s32)lsmt_arg(regs, a0);
		e->obj.file.mode = a1 != LSMT_NONE_ARG ? lsmt_arg(regs, a1) : 0;
		break;
	case LSMT_DEC_MODNAME:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		break;
	case LSMT_DEC_BPF:
		e->obj.bpf.cmd = (s32)lsmt_arg(regs, a0);
		e->obj.bpf.size = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		break;
	case LSMT_DEC_NICE:
		e->obj.nice.which = (s32)lsmt_arg(regs, a0);
		e->obj.nice.who = (s32)lsmt_arg(regs, a1);
		e->obj.nice.nice = (s32)lsmt_arg(regs, a2);
		e->obj.nice.target_pid = -1;
		break;
	default:
		break;
	}
	/* one call site: the path walker is inlined once in the program */
	switch (d->decoder) {
	case LSMT_DEC_PATH:
	case LSMT_DEC_OPEN:
	case LSMT_DEC_PATH2:
	case LSMT_DEC_EXEC:
	case LSMT_DEC_FD:
		lsmt_resolve_path(e, d->decoder, ret, unread);
		break;
	default:
		break;
	}
}

int lsmt_sys_exit(struct lsmt_sys_exit_args *args)
{
	s32 nr = args->nr;
	s64 ret = args->ret;
	if (nr < 0 || nr >= LSMT_MAX_SYSCALL)
		return 0;
	u32 k = nr;
	struct lsmt_sys_desc *d = sys_desc.lookup(&k);
	if (!d || !d->enabled)
		return 0;
	u16 id = LSMT_SYSCALL_BASE + nr;
	s32 r = ret < 0 ? (s32)ret : 0;
	u16 lsm = LSMT_LSM_UNKNOWN;
	u16 evflags = 0;

	if (r == -LSMT_EPERM || r == -LSMT_EACCES) {
		u64 key = bpf_get_current_pid_tgid();
		struct lsmt_pending *p = pending.lookup(&key);
#if LSMT_RUNG == LSMT_RUNG_TRACEPOINT
		/* Only cap_capable is seen here: name it when a capability denial
		 * happened inside this syscall; otherwise the rung cannot tell. */
		if (p && p->syscall == nr) {
			lsm = p->lsm;
			evflags = LSMT_EV_ATTRIBUTED;
		}
#else
		/* sys_enter cleared the slot, so a denial here is from inside. */
		if (p) {
			lsm = p->lsm;
			evflags = LSMT_EV_ATTRIBUTED;
		} else {
			lsm = LSMT_LSM_DAC;
		}
#endif
		if (p)
			pending.delete(&key);
	}
	lsmt_count(id, lsm, r, 0);

	struct lsmt_config *cfg = lsmt_config();
	if (!cfg)
		return 0;
#if LSMT_RUNG != LSMT_RUNG_TRACEPOINT
	/* Hooks carry the decisions here; a syscall event only says DAC or LSM. */
	if (r != -LSMT_EPERM && r != -LSMT_EACCES) {
		if (cfg->flags & LSMT_CFG_STREAM)
			lsmt_stat(LSMT_STAT_FILTERED);
		return 0;
	}
#endif
	struct lsmt_event *e = lsmt_begin(cfg, r == -LSMT_EPERM || r == -LSMT_EACCES, id);
	if (!e)
		return 0;
	lsmt_fill_nr(e, LSMT_KIND_SYSCALL, id, r, lsm, nr);
	e->flags |= evflags;
	lsmt_decode_syscall(e, d, ret);
	lsmt_submit(args, e);
	return 0;
}

#if LSMT_RUNG != LSMT_RUNG_TRACEPOINT
/* Hook rungs: a new syscall starts with no pending hook denial. */
int lsmt_sys_enter(struct lsmt_sys_enter_args *args)
{
	u64 key = bpf_get_current_pid_tgid();
	pending.delete(&key);
	return 0;
}
#endif

#ifdef LSMT_WITH_CAP_TP
/*
 * The kernel functions that ask for a capability without enforcing it
 * (CAP_OPT_NOAUDIT: has_ns_capability_noaudit, ns_capable_noaudit, the
 * memory accounting of security_vm_enough_memory_mm...), as text address
 * ranges from kallsyms, written by user space; an empty first slot turns the
 * classification off. The tracepoint has no opts argument: a refused check
 * whose callers include one of them is a quiet probe.
 */
BPF_ARRAY(quiet_sites, struct lsmt_site, LSMT_QUIET_SITES);
/* callers of cap_capable looked at: the quiet asker is the first (a direct
 * call) or the second (through security_capable) */
#define LSMT_QUIET_DEPTH 2

static __always_inline int lsmt_quiet_call_site(void *ctx)
{
	u64 ips[LSMT_QUIET_DEPTH] = {};
	u32 zero = 0;
	struct lsmt_site *s0 = quiet_sites.lookup(&zero);
	if (!s0 || !s0->start)
		return 0;
	/* skip 1: the first frame is cap_capable itself */
	long n = bpf_get_stack(ctx, ips, sizeof(ips), 1);
	if (n <= 0)
		return 0;
#pragma unroll
	for (int i = 0; i < LSMT_QUIET_DEPTH; i++) {
		if (i * 8 >= n)
			break;
		u64 ip = ips[i];
#pragma unroll
		for (u32 j = 0; j < LSMT_QUIET_SITES; j++) {
			struct lsmt_site *s = quiet_sites.lookup(&j);
			if (!s || !s->start)
				break;
			if (ip >= s->start && ip < s->end)
				return 1;
		}
	}
	return 0;
}

TRACEPOINT_PROBE(capability, cap_capable)
{
	s32 ret = args->ret;
	s32 cap = args->cap;
	int quiet = ret < 0 && lsmt_quiet_call_site(args);
	lsmt_count(LSMT_ID_CAPABLE, LSMT_LSM_CAPABILITY, ret, quiet);
	/* a quiet probe refuses nothing: it does not name a syscall's LSM */
	if (ret < 0 && !quiet && !lsmt_cap_is_dac_override(cap))
		lsmt_note_denial(LSMT_ID_CAPABLE, LSMT_LSM_CAPABILITY, ret);
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg)
		return 0;
	struct lsmt_event *e = lsmt_begin(cfg, ret < 0, LSMT_ID_CAPABLE);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_CAPABLE, LSMT_ID_CAPABLE, ret, LSMT_LSM_CAPABILITY);
	if (quiet)
		e->flags |= LSMT_EV_NOAUDIT_CALL_SITE;
	e->obj_type = LSMT_OBJ_CAP;
	e->obj.cap.cap = cap;
	e->obj.cap.opts = 0;
	e->obj.cap.ns_inum = 0;
	struct user_namespace *ns = (struct user_namespace *)args->capable_ns;
	if (ns)
		LSMT_READ(e->obj.cap.ns_inum, ns->ns.inum);
	lsmt_submit(args, e);
	return 0;
}
#endif

#ifdef LSMT_WITH_AVC_TP
TRACEPOINT_PROBE(avc, selinux_audited)
{
	s32 ret = args->denied ? -LSMT_EACCES : 0;
	lsmt_count(LSMT_ID_AVC, LSMT_LSM_SELINUX, ret, 0);
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg)
		return 0;
	struct lsmt_event *e = lsmt_begin(cfg, ret < 0, LSMT_ID_AVC);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_AVC, LSMT_ID_AVC, ret, LSMT_LSM_SELINUX);
	e->obj_type = LSMT_OBJ_AVC;
	e->obj.avc.requested = args->requested;
	e->obj.avc.denied = args->denied;
	e->obj.avc.audited = args->audited;
	e->obj.avc.result = args->result;
	TP_DATA_LOC_READ_STR(e->obj.avc.tclass, tclass, sizeof(e->obj.avc.tclass));
	TP_DATA_LOC_READ_STR(e->obj.avc.scontext, scontext, sizeof(e->obj.avc.scontext));
	TP_DATA_LOC_READ_STR(e->obj.avc.tcontext, tcontext, sizeof(e->obj.avc.tcontext));
	lsmt_submit(args, e);
	return 0;
}
#endif

#ifdef LSMT_WITH_SIGNAL_TP
/* A generated signal: the kill passed its permission checks (a denied kill
 * never gets here; its sys_kill exit says EPERM). Streamed, not counted. */
TRACEPOINT_PROBE(signal, signal_generate)
{
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg || !lsmt_want(cfg, 0))
		return 0;
	struct lsmt_event *e = lsmt_reserve(LSMT_ID_SIGNAL);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_SIGNAL, LSMT_ID_SIGNAL, 0, LSMT_LSM_UNKNOWN);
	e->obj_type = LSMT_OBJ_SIGNAL;
	e->obj.signal.sig = args->sig;
	e->obj.signal.target_pid = args->pid;
	bpf_probe_read_kernel(e->obj.signal.target_comm, LSMT_COMM_LEN, args->comm);
	lsmt_submit(args, e);
	return 0;
}
#endif

#ifdef LSMT_WITH_SCHED
/*
 * A process event, or NULL when they are not wanted or the buffer is full.
 * They pass every filter (the process tree needs every exec, fork and exit
 * to say who did what, whatever is shown); those the scope filters (--pid,
 * --uid, --comm, --cgroup) would drop are flagged LSMT_EV_CONTEXT: user space
 * feeds them to the tree only.
 */
static __always_inline struct lsmt_event *lsmt_proc_event(u16 kind, s32 child, s32 code)
{
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg || !(cfg->flags & LSMT_CFG_STREAM) || !(cfg->flags & LSMT_CFG_PROC_EVENTS))
		return NULL;
	if ((u32)(bpf_get_current_pid_tgid() >> 32) == cfg->self_tgid)
		return NULL;
	/* seen: what the programs saw and may stream (seen >= attempted +
	 * filtered), process events included */
	lsmt_stat(LSMT_STAT_SEEN);
	int in_scope = lsmt_want(cfg, 1);
	struct lsmt_event *e = lsmt_reserve(0);
	if (!e)
		return NULL;
	lsmt_fill(e, kind, 0, 0, LSMT_LSM_UNKNOWN);
	if (!in_scope)
		e->flags |= LSMT_EV_CONTEXT;
	e->obj_type = LSMT_OBJ_PROC;
	e->obj.proc.child_pid = child;
	e->obj.proc.exit_code = code;
	return e;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
	u32 parent = bpf_get_current_pid_tgid() >> 32;
	u32 child = args->child_pid;
	struct lsmt_config *cfg = lsmt_config();
	/* --children: a traced process's new process is traced too. */
	if (cfg && (cfg->flags & LSMT_CFG_CHILDREN) && traced_tgids.lookup(&parent)) {
		u8 one = 1;
		if (traced_tgids.update(&child, &one) != 0)
			lsmt_stat(LSMT_STAT_MAP_FULL);
	}
	struct lsmt_event *e = lsmt_proc_event(LSMT_KIND_FORK, child, 0);
	if (e)
		lsmt_submit(args, e);
	return 0;
}

/*
 * exec: obj.proc.buf gets the executable's path (the new mm's exe_file walked
 * to the root, as /proc/<pid>/exe shows it; the exec call's filename when
 * there is none), then the head of argv read from the new process's memory.
 */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
	struct lsmt_event *e = lsmt_proc_event(LSMT_KIND_EXEC, 0, 0);
	if (!e)
		return 0;
	struct lsmt_obj_proc *p = &e->obj.proc;
	char *b = lsmt_scratch();
	if (!b) {
		lsmt_submit(args, e);
		return 0;
	}
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	void *mm = NULL;
	struct file *exe = NULL;
	struct vfsmount *mnt = NULL;
	struct dentry *d = NULL;
	u64 as = 0, ae = 0;
	int complete = 0;
	u32 len = 0;
	/* what is copied out must hold nothing but the filename and argv */
	u64 *w = (u64 *)b;
#pragma unroll
	for (int i = 0; i < LSMT_PROC_BUF / 8; i++)
		w[i] = 0;
	LSMT_READ(mm, t->mm);
#ifndef LSMT_NO_MOUNT_WALK
	if (mm) { /* offsets from BTF (bpfgen.struct_offsets) */
		bpf_probe_read_kernel(&exe, sizeof(exe), (void *)mm + LSMT_MM_EXE_FILE);
		bpf_probe_read_kernel(&as, sizeof(as), (void *)mm + LSMT_MM_ARG_START);
		bpf_probe_read_kernel(&ae, sizeof(ae), (void *)mm + LSMT_MM_ARG_END);
	}
#endif
	if (exe) {
		lsmt_file_path(exe, &mnt, &d);
		len = lsmt_dpath_build(b, d, mnt, &complete);
	}
	if (!complete) {
		/* the name the exec was given (relative to the caller's cwd) */
		p->flags |= LSMT_EXEC_AS_GIVEN;
#pragma unroll
		for (int i = 0; i < LSMT_PATH_LEN / 8; i++)
			w[i] = 0;
		u16 loc = args->data_loc_filename & 0xFFFF;
		long n = bpf_probe_read_kernel_str(b, LSMT_PATH_LEN, (char *)args + loc);
		len = n > 0 ? n - 1 : 0;
	}
	if (len >= LSMT_PATH_LEN) {
		len = LSMT_PATH_LEN - 1;
		e->flags |= LSMT_EV_TRUNCATED;
	}
	LSMT_MASK(len, 255); /* LSMT_PATH_LEN - 1 */
	b[len] = 0;
	u32 fnlen = len + 1;
	LSMT_MASK(fnlen, 511);
	/* the name the exec was given, after the executable's path: for a #!
	 * script the executable is its interpreter, the name the script */
	u32 glen = 0;
	if (complete) {
		u16 loc = args->data_loc_filename & 0xFFFF;
		long g = bpf_probe_read_kernel_str(&b[fnlen], LSMT_PATH_LEN, (char *)args + loc);
		glen = g > 0 ? g : 0;
		if (fnlen + glen > LSMT_PROC_BUF || glen >= LSMT_PATH_LEN)
			glen = 0; /* does not fit with the path: left out */
	}
	u32 off = fnlen + glen; /* <= LSMT_PROC_BUF */
	if (off > LSMT_PROC_BUF)
		off = LSMT_PROC_BUF;
	u32 room = LSMT_PROC_BUF - off;
	u64 n = ae > as ? ae - as : 0;
	if (n > room) {
		n = room;
		p->flags |= LSMT_EXEC_ARGV_TRUNCATED;
	}
	/* bounds for the verifier (n <= room, off <= LSMT_PROC_BUF already) */
	LSMT_MASK(n, 511);
	LSMT_MASK(off, 511);
	if (n && bpf_probe_read_user(&b[off], n, (void *)as) != 0) {
		n = 0;
		e->flags |= LSMT_EV_READ_ERR;
		lsmt_stat(LSMT_STAT_READ_ERR);
	}
	bpf_probe_read_kernel(p->buf, LSMT_PROC_BUF, b);
	p->filename_len = fnlen;
	p->given_len = glen;
	p->argv_len = n;
	lsmt_submit(args, e);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32;
	pending.delete(&pid_tgid);
	if ((u32)pid_tgid != tgid)
		return 0; /* a thread, not the process */
	int code = 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	LSMT_READ(code, t->exit_code);
	struct lsmt_event *e = lsmt_proc_event(LSMT_KIND_EXIT, 0, code);
	if (e)
		lsmt_submit(args, e);
	/* the pid may be reused by a process we must not trace */
	traced_tgids.delete(&tgid);
	return 0;
}
#endif
