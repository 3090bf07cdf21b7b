/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hook rungs: fexit (or kprobe/kretprobe) on security_* wrappers, and on
 * each active LSM's implementation of the same hooks, so that a denial names
 * the LSM that returned it.
 *
 * lsmtrace/hookgen.py writes one short wrapper per traced function (bcc needs
 * the function's name and arity in the program); every wrapper calls the
 * functions below with constant hook id and decoder, so the compiler keeps
 * only the decoder each program needs.
 *
 * The decoders (enum lsmt_hdec) are part of the wire contract, bpf/lsmtrace.h.
 * Needs (-D from bpfgen.struct_offsets(), read from BTF, so real and
 * synthesized headers both work): LSMT_SK_FAMILY, LSMT_SK_NUM,
 * LSMT_SK_PROTOCOL (struct sock: net/sock.h pulls in linux/bpf.h, which bcc
 * 0.26 cannot compile against on 6.9+ kernels), and the offsets common.h's
 * path walker needs.
 *
 * common.h and syscalls.bpf.c precede this file in the program text.
 */

#include <linux/binfmts.h>
#include <linux/mm_types.h>
#include <linux/dcache.h>
#include <linux/mount.h>
#include <linux/net.h>
#include <linux/socket.h>

/* Entry time (and kprobe arguments) of each thread's hook calls in flight. */
BPF_TABLE("lru_hash", struct lsmt_entry_key, struct lsmt_entry, entries, 16384);
/* The last LSM implementation that returned non-zero, per thread. */
BPF_TABLE("lru_hash", u64, struct lsmt_pending, denier, 16384);

/*
 * A dentry walked without its mount (lsmt_dpath stops at its filesystem's
 * root): exact when that filesystem is the one mounted at the task's root,
 * otherwise relative to a mount point the hook does not name.
 */
static __always_inline u16 lsmt_dentry_kind(struct dentry *d)
{
	struct vfsmount *rmnt = NULL;
	struct dentry *rd = NULL, *sroot = NULL, *mroot = NULL;
	struct super_block *sb = NULL, *rsb = NULL;
	lsmt_fs_path(1, &rmnt, &rd);
	if (!d || !rmnt)
		return LSMT_PATHKIND_FS_RELATIVE;
	LSMT_READ(sb, d->d_sb);
	LSMT_READ(rsb, rmnt->mnt_sb);
	LSMT_READ(mroot, rmnt->mnt_root);
	if (rsb)
		LSMT_READ(sroot, rsb->s_root);
	return sb && sb == rsb && mroot == sroot ? LSMT_PATHKIND_EXACT
						  : LSMT_PATHKIND_FS_RELATIVE;
}

static __always_inline void lsmt_inode_info(struct lsmt_event *e, struct inode *inode)
{
	struct super_block *sb = NULL;
	u16 mode = 0;
	if (!inode)
		return;
	LSMT_READ(e->obj.file.ino, inode->i_ino);
	LSMT_READ(mode, inode->i_mode);
	e->obj.file.mode = mode;
	LSMT_READ(sb, inode->i_sb);
	if (sb)
		LSMT_READ(e->obj.file.dev, sb->s_dev);
}

static __always_inline void lsmt_file(struct lsmt_event *e, char *buf, struct file *f)
{
	struct vfsmount *mnt = NULL;
	struct dentry *d = NULL;
	struct inode *inode = NULL;
	if (!f)
		return;
	lsmt_file_path(f, &mnt, &d);
	lsmt_dpath(e, buf, d, mnt);
	LSMT_READ(inode, f->f_inode);
	if (buf == e->obj.file.path) {
		lsmt_inode_info(e, inode);
		LSMT_READ(e->obj.file.flags, f->f_flags);
	}
}

static __always_inline void lsmt_dentry_name(struct lsmt_event *e, char *buf, u32 size,
					     struct dentry *d)
{
	const unsigned char *name = NULL;
	if (!d)
		return;
	LSMT_READ(name, d->d_name.name);
	if (name)
		lsmt_str(e, buf, size, name, LSMT_KERNEL);
}

static __always_inline void lsmt_task(struct lsmt_event *e, s32 *pid, char *comm,
				      struct task_struct *t)
{
	if (!t)
		return;
	LSMT_READ(*pid, t->tgid);
	bpf_probe_read_kernel_str(comm, LSMT_COMM_LEN, t->comm);
}

static __always_inline void lsmt_socket(struct lsmt_event *e, struct socket *sock)
{
	struct sock *sk = NULL;
	short type = 0;
	if (!sock)
		return;
	LSMT_READ(type, sock->type);
	e->obj.sock.type = type;
	LSMT_READ(sk, sock->sk);
	if (sk) {
		u16 proto = 0;
		/* offsets from BTF (-D): see bpfgen.struct_offsets() */
		bpf_probe_read_kernel(&e->obj.sock.family, 2, (void *)sk + LSMT_SK_FAMILY);
		bpf_probe_read_kernel(&e->obj.sock.port, 2, (void *)sk + LSMT_SK_NUM);
		bpf_probe_read_kernel(&proto, 2, (void *)sk + LSMT_SK_PROTOCOL);
		e->obj.sock.protocol = proto;
	}
}

static __always_inline void lsmt_hdecode(struct lsmt_event *e, u32 dec, u64 x0, u64 x1,
					 u64 x2, u64 x3)
{
	switch (dec) {
	case LSMT_HD_FILE:
	case LSMT_HD_FILE_MASK:
		e->obj_type = LSMT_OBJ_FILE;
		lsmt_file(e, e->obj.file.path, (struct file *)x0);
		e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		if (dec == LSMT_HD_FILE_MASK)
			e->obj.file.mask = x1;
		break;
	case LSMT_HD_MMAP:
		e->obj_type = LSMT_OBJ_MEM;
		if (x0)
			lsmt_file(e, e->obj.mem.path, (struct file *)x0);
		e->obj.mem.prot = x1;
		e->obj.mem.reqprot = x1;
		e->obj.mem.flags = x2;
		e->obj.mem.fd = -1;
		break;
	case LSMT_HD_MPROTECT: {
		struct vm_area_struct *vma = (struct vm_area_struct *)x0;
		struct file *f = NULL;
		u64 start = 0, end = 0;
		e->obj_type = LSMT_OBJ_MEM;
		LSMT_READ(start, vma->vm_start);
		LSMT_READ(end, vma->vm_end);
		LSMT_READ(f, vma->vm_file);
		e->obj.mem.addr = start;
		e->obj.mem.len = end - start;
		e->obj.mem.reqprot = x1;
		e->obj.mem.prot = x2;
		e->obj.mem.fd = -1;
		if (f)
			lsmt_file(e, e->obj.mem.path, f);
		break;
	}
	case LSMT_HD_BPRM: {
		/* the file being executed (a script, then its interpreter), else
		 * the name the exec was given */
		struct linux_binprm *bprm = (struct linux_binprm *)x0;
		struct file *f = NULL;
		const char *fn = NULL;
		e->obj_type = LSMT_OBJ_EXEC;
		LSMT_READ(f, bprm->file);
		if (f) {
			lsmt_file(e, e->obj.file.path, f);
			e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
			break;
		}
		LSMT_READ(fn, bprm->filename);
		if (fn) {
			lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, fn, LSMT_KERNEL);
			e->obj.file.path_kind = LSMT_PATHKIND_AS_GIVEN;
		}
		break;
	}
	case LSMT_HD_CAP:
		e->obj_type = LSMT_OBJ_CAP;
		e->obj.cap.cap = (s32)x0;
		e->obj.cap.opts = x1;
		break;
	case LSMT_HD_KILL:
		e->obj_type = LSMT_OBJ_SIGNAL;
		lsmt_task(e, &e->obj.signal.target_pid, e->obj.signal.target_comm,
			  (struct task_struct *)x0);
		e->obj.signal.sig = (s32)x1;
		break;
	case LSMT_HD_TASK:
		e->obj_type = LSMT_OBJ_SIGNAL;
		lsmt_task(e, &e->obj.signal.target_pid, e->obj.signal.target_comm,
			  (struct task_struct *)x0);
		break;
	case LSMT_HD_PTRACE:
		e->obj_type = LSMT_OBJ_PTRACE;
		lsmt_task(e, &e->obj.ptrace.target_pid, e->obj.ptrace.target_comm,
			  (struct task_struct *)x0);
		e->obj.ptrace.mode = x1;
		e->obj.ptrace.request = -1;
		break;
	case LSMT_HD_SETID:
	case LSMT_HD_SETGID: {
		struct cred *c = (struct cred *)x0;
		e->obj_type = LSMT_OBJ_SETID;
		if (dec == LSMT_HD_SETID) {
			LSMT_READ(e->obj.setid.ids[0], c->uid.val);
			LSMT_READ(e->obj.setid.ids[1], c->euid.val);
			LSMT_READ(e->obj.setid.ids[2], c->suid.val);
		} else {
			LSMT_READ(e->obj.setid.ids[0], c->gid.val);
			LSMT_READ(e->obj.setid.ids[1], c->egid.val);
			LSMT_READ(e->obj.setid.ids[2], c->sgid.val);
		}
		e->obj.setid.flags = x1;
		break;
	}
	case LSMT_HD_NICE:
		e->obj_type = LSMT_OBJ_NICE;
		lsmt_task(e, &e->obj.nice.target_pid, e->obj.nice.target_comm,
			  (struct task_struct *)x0);
		e->obj.nice.nice = (s32)x1;
		e->obj.nice.which = -1;
		e->obj.nice.who = -1;
		break;
	case LSMT_HD_SOCK_CREATE:
		e->obj_type = LSMT_OBJ_SOCK;
		e->obj.sock.family = x0;
		e->obj.sock.type = x1;
		e->obj.sock.protocol = x2;
		break;
	case LSMT_HD_SOCKADDR:
		e->obj_type = LSMT_OBJ_SOCK;
		lsmt_socket(e, (struct socket *)x0);
		e->obj.sock.port = 0;
		lsmt_sockaddr(e, (const void *)x1, (u32)x2, LSMT_KERNEL);
		break;
	case LSMT_HD_SOCK:
		e->obj_type = LSMT_OBJ_SOCK;
		lsmt_socket(e, (struct socket *)x0);
		break;
	case LSMT_HD_SENDMSG: {
		struct msghdr *msg = (struct msghdr *)x1;
		void *name = NULL;
		int namelen = 0;
		e->obj_type = LSMT_OBJ_SOCK;
		lsmt_socket(e, (struct socket *)x0);
		LSMT_READ(name, msg->msg_name);
		LSMT_READ(namelen, msg->msg_namelen);
		if (name) {
			e->obj.sock.port = 0;
			lsmt_sockaddr(e, name, namelen, LSMT_KERNEL);
		}
		break;
	}
	case LSMT_HD_MOUNT:
		e->obj_type = LSMT_OBJ_MOUNT;
		if (x0)
			lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (const void *)x0, LSMT_KERNEL);
		if (x2)
			lsmt_str(e, e->obj.file.name, LSMT_NAME_LEN, (const void *)x2, LSMT_KERNEL);
		e->obj.file.flags = x3;
		break;
	case LSMT_HD_UMOUNT: {
		struct vfsmount *m = (struct vfsmount *)x0;
		struct dentry *root = NULL;
		e->obj_type = LSMT_OBJ_FILE;
		LSMT_READ(root, m->mnt_root);
		lsmt_dpath(e, e->obj.file.path, root, m);
		e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		e->obj.file.flags = x1;
		break;
	}
	case LSMT_HD_PATH2: {
		struct path *from = (struct path *)x0, *to = (struct path *)x1;
		struct vfsmount *mnt = NULL;
		struct dentry *d = NULL;
		e->obj_type = LSMT_OBJ_FILE;
		LSMT_READ(mnt, from->mnt);
		LSMT_READ(d, from->dentry);
		lsmt_dpath(e, e->obj.file.path, d, mnt);
		e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		LSMT_READ(d, to->dentry);
		lsmt_dentry_name(e, e->obj.file.name, LSMT_NAME_LEN, d);
		break;
	}
	case LSMT_HD_KSTR:
		e->obj_type = LSMT_OBJ_MODULE;
		if (x0)
			lsmt_str(e, e->obj.file.path, LSMT_PATH_LEN, (const void *)x0, LSMT_KERNEL);
		break;
	case LSMT_HD_LOAD_DATA:
		e->obj_type = LSMT_OBJ_MODULE;
		e->obj.file.flags = x0;
		e->obj.file.dfd = -1;
		break;
	case LSMT_HD_READ_FILE:
		e->obj_type = LSMT_OBJ_MODULE;
		if (x0) {
			lsmt_file(e, e->obj.file.path, (struct file *)x0);
			e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		}
		e->obj.file.flags = x1;
		break;
	case LSMT_HD_BPF:
		e->obj_type = LSMT_OBJ_BPF;
		e->obj.bpf.cmd = (s32)x0;
		e->obj.bpf.size = x1;
		break;
	case LSMT_HD_LOCKDOWN:
		e->obj_type = LSMT_OBJ_LOCKDOWN;
		e->obj.lockdown.reason = x0;
		break;
	case LSMT_HD_INODE:
		e->obj_type = LSMT_OBJ_FILE;
		lsmt_inode_info(e, (struct inode *)x0);
		e->obj.file.mask = x1;
		break;
	case LSMT_HD_DENTRY:
	case LSMT_HD_DENTRY2: {
		struct dentry *d = (struct dentry *)x0;
		struct inode *inode = NULL;
		e->obj_type = LSMT_OBJ_FILE;
		lsmt_dpath(e, e->obj.file.path, d, NULL);
		e->obj.file.path_kind = lsmt_dentry_kind(d);
		LSMT_READ(inode, d->d_inode);
		lsmt_inode_info(e, inode);
		if (dec == LSMT_HD_DENTRY2)
			lsmt_dentry_name(e, e->obj.file.name, LSMT_NAME_LEN, (struct dentry *)x1);
		break;
	}
	case LSMT_HD_PATH: {
		struct path *p = (struct path *)x0;
		struct vfsmount *mnt = NULL;
		struct dentry *d = NULL;
		struct inode *inode = NULL;
		e->obj_type = LSMT_OBJ_FILE;
		LSMT_READ(mnt, p->mnt);
		LSMT_READ(d, p->dentry);
		lsmt_dpath(e, e->obj.file.path, d, mnt);
		e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		LSMT_READ(inode, d->d_inode);
		lsmt_inode_info(e, inode);
		if (x1)
			e->obj.file.mode = x1;
		break;
	}
	case LSMT_HD_PATHD:
	case LSMT_HD_PATHD2: {
		struct path *dir = (struct path *)x0;
		struct vfsmount *mnt = NULL;
		e->obj_type = LSMT_OBJ_FILE;
		LSMT_READ(mnt, dir->mnt);
		lsmt_dpath(e, e->obj.file.path, (struct dentry *)x1, mnt);
		e->obj.file.path_kind = LSMT_PATHKIND_EXACT;
		if (dec == LSMT_HD_PATHD2)
			lsmt_dentry_name(e, e->obj.file.name, LSMT_NAME_LEN, (struct dentry *)x3);
		break;
	}
	default:
		break;
	}
}

static __always_inline struct lsmt_entry_key lsmt_ekey(u32 id)
{
	struct lsmt_entry_key k = {.pid_tgid = bpf_get_current_pid_tgid(), .id = id};
	return k;
}

/* Hook entry: remember when (and, on the kprobe rung, with which arguments). */
static __always_inline int lsmt_hook_enter(u32 id, u64 a0, u64 a1, u64 a2, u64 a3)
{
	struct lsmt_entry_key k = lsmt_ekey(id);
	struct lsmt_entry v = {.ts_ns = bpf_ktime_get_ns(), .args = {a0, a1, a2, a3}};
	if (entries.update(&k, &v) != 0)
		lsmt_stat(LSMT_STAT_MAP_FULL);
	return 0;
}

/* An LSM's implementation returned: a non-zero return names the denier. */
static __always_inline int lsmt_impl_exit(u32 id, u16 lsm, s32 ret)
{
	if (ret == 0)
		return 0;
	u64 key = bpf_get_current_pid_tgid();
	struct lsmt_pending p = {.ts_ns = bpf_ktime_get_ns(), .ret = ret, .lsm = lsm, .id = id};
	if (denier.update(&key, &p) != 0)
		lsmt_stat(LSMT_STAT_MAP_FULL);
	return 0;
}

/*
 * Hook exit. `use_saved`: take the arguments saved at entry (kretprobe) instead
 * of x0..x3 (fexit sees them at exit).
 */
static __always_inline int lsmt_hook_exit(void *ctx, u32 id, u32 dec, int use_saved,
					  u64 x0, u64 x1, u64 x2, u64 x3, s32 ret)
{
	struct lsmt_entry_key k = lsmt_ekey(id);
	struct lsmt_entry *ent = entries.lookup(&k);
	u64 latency = 0;
	if (ent) {
		latency = bpf_ktime_get_ns() - ent->ts_ns;
		if (use_saved) {
			x0 = ent->args[0];
			x1 = ent->args[1];
			x2 = ent->args[2];
			x3 = ent->args[3];
		}
		entries.delete(&k);
	} else if (use_saved) {
		return 0; /* entry missed (map full or attached mid-call) */
	}

	u16 lsm = LSMT_LSM_UNKNOWN;
	/* a quiet probe: the kernel asked without enforcing (CAP_OPT_NOAUDIT) */
	int quiet = ret != 0 && dec == LSMT_HD_CAP && (x1 & LSMT_CAP_OPT_NOAUDIT);
	if (ret != 0) {
		u64 key = k.pid_tgid;
		struct lsmt_pending *d = denier.lookup(&key);
		lsm = (d && d->id == id) ? d->lsm : LSMT_LSM_HOOK;
		if (d)
			denier.delete(&key);
		/* a failed DAC-override capability is the DAC decision itself, and
		 * a quiet probe refuses nothing: neither names the syscall's LSM */
		if (!quiet && !(dec == LSMT_HD_CAP && lsmt_cap_is_dac_override((s32)x0)))
			lsmt_note_denial(id, lsm, ret);
	}
	lsmt_count(id, lsm, ret, quiet);
	struct lsmt_config *cfg = lsmt_config();
	if (cfg && (cfg->flags & LSMT_CFG_LATENCY) && latency)
		lsmt_latency(id, latency);
	if (!cfg)
		return 0;
	struct lsmt_event *e = lsmt_begin(cfg, ret != 0, id);
	if (!e)
		return 0;
	lsmt_fill(e, LSMT_KIND_HOOK, id, ret, lsm);
	e->latency_ns = latency;
	if (quiet)
		e->flags |= LSMT_EV_NOAUDIT_OPTS;
	lsmt_hdecode(e, dec, x0, x1, x2, x3);
	lsmt_submit(ctx, e);
	return 0;
}
