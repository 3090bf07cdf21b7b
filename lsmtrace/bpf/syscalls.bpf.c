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
 * Options: LSMT_WITH_CAP_TP, LSMT_WITH_AVC_TP, LSMT_WITH_SIGNAL_TP, LSMT_WITH_SCHED.
 */
/* common.h comes first in the program text (see lsmtrace/bpfgen.py). */

#define LSMT_EPERM 1
#define LSMT_EACCES 13
#define LSMT_AT_FDCWD (-100)
#define LSMT_ID_CAPABLE (LSMT_SYSCALL_BASE - 1)
#define LSMT_ID_AVC (LSMT_SYSCALL_BASE - 2)
#define LSMT_ID_SIGNAL (LSMT_SYSCALL_BASE - 3)

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

static __always_inline u64 lsmt_arg(struct pt_regs *regs, u8 i)
{
	u64 v = 0;
	switch (i) {
	case 0:
		LSMT_READ(v, LSMT_ARG0(regs));
		break;
	case 1:
		LSMT_READ(v, LSMT_ARG1(regs));
		break;
	case 2:
		LSMT_READ(v, LSMT_ARG2(regs));
		break;
	case 3:
		LSMT_READ(v, LSMT_ARG3(regs));
		break;
	case 4:
		LSMT_READ(v, LSMT_ARG4(regs));
		break;
	case 5:
		LSMT_READ(v, LSMT_ARG5(regs));
		break;
	}
	return v;
}

/* Decode a user sockaddr into the sock object. */
static __always_inline void lsmt_decode_syscall(struct lsmt_event *e, struct lsmt_sys_desc *d)
{
	struct pt_regs *regs = lsmt_user_regs();
	u8 a0 = d->arg[0], a1 = d->arg[1], a2 = d->arg[2], a3 = d->arg[3];

	e->obj_type = d->obj_type;
	switch (d->decoder) {
	case LSMT_DEC_PATH:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		e->obj.file.flags = a1 != LSMT_NONE_ARG ? lsmt_arg(regs, a1) : 0;
		e->obj.file.mode = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		e->obj.file.dfd = a3 != LSMT_NONE_ARG ? (s32)lsmt_arg(regs, a3) : LSMT_AT_FDCWD;
		break;
	case LSMT_DEC_PATH2:
		lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (void *)lsmt_arg(regs, a0), LSMT_USER);
		lsmt_str(e, e->obj.file.name, LSMT_NAME_LEN, (void *)lsmt_arg(regs, a1), LSMT_USER);
		e->obj.file.flags = a2 != LSMT_NONE_ARG ? lsmt_arg(regs, a2) : 0;
		e->obj.file.dfd = LSMT_AT_FDCWD;
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
		e->obj.setid.ids[0] = (s32)lsmt_arg(regs, a0);
		e->obj.setid.ids[1] = (s32)lsmt_arg(regs, a1);
		e->obj.setid.ids[2] = (s32)lsmt_arg(regs, a2);
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
	lsmt_count(id, lsm, r);

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
	struct lsmt_event *e = lsmt_begin(cfg, r == -LSMT_EPERM || r == -LSMT_EACCES);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_SYSCALL, id, r, lsm);
	e->flags |= evflags;
	e->syscall = nr;
	lsmt_decode_syscall(e, d);
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
TRACEPOINT_PROBE(capability, cap_capable)
{
	s32 ret = args->ret;
	s32 cap = args->cap;
	lsmt_count(LSMT_ID_CAPABLE, LSMT_LSM_CAPABILITY, ret);
	if (ret < 0 && !lsmt_cap_is_dac_override(cap))
		lsmt_note_denial(LSMT_ID_CAPABLE, LSMT_LSM_CAPABILITY, ret);
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg)
		return 0;
	struct lsmt_event *e = lsmt_begin(cfg, ret < 0);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_CAPABLE, LSMT_ID_CAPABLE, ret, LSMT_LSM_CAPABILITY);
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
	lsmt_count(LSMT_ID_AVC, LSMT_LSM_SELINUX, ret);
	struct lsmt_config *cfg = lsmt_config();
	if (!cfg)
		return 0;
	struct lsmt_event *e = lsmt_begin(cfg, ret < 0);
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
	struct lsmt_event *e = lsmt_reserve();
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
/* A process event, or NULL when they are not wanted or the buffer is full. */
static __always_inline struct lsmt_event *lsmt_proc_event(u16 kind, s32 child, s32 code)
{
	struct lsmt_config *cfg = lsmt_config();
	/* scope filters apply; --denied does not (the process tree needs them) */
	if (!cfg || !(cfg->flags & LSMT_CFG_PROC_EVENTS) || !lsmt_want(cfg, 1))
		return NULL;
	struct lsmt_event *e = lsmt_reserve();
	if (!e)
		return NULL;
	lsmt_fill(e, kind, 0, 0, LSMT_LSM_UNKNOWN);
	e->obj_type = LSMT_OBJ_PROC;
	e->obj.proc.child_pid = child;
	e->obj.proc.exit_code = code;
	e->obj.proc.filename[0] = 0;
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

TRACEPOINT_PROBE(sched, sched_process_exec)
{
	struct lsmt_event *e = lsmt_proc_event(LSMT_KIND_EXEC, 0, 0);
	if (!e)
		return 0;
	TP_DATA_LOC_READ_STR(e->obj.proc.filename, filename, LSMT_PATH_LEN);
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
