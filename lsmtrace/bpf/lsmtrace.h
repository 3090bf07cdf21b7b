/* SPDX-License-Identifier: GPL-2.0 */
/*
 * THE wire format of lsmtrace: every struct the kernel side writes into a map or
 * the ring buffer, and every enum both sides share. lsmtrace/abi.py mirrors it
 * with ctypes and tests/unit/test_abi.py checks the mirror against this file
 * compiled by the host C compiler (bpf/layout_check.c).
 *
 * Rules: fixed-width types, explicit padding, no bitfields, no packed. Enum
 * values only grow; a value is never renumbered or reused. A layout change bumps
 * LSMT_ABI_VERSION (and the recording format version).
 */
#ifndef LSMTRACE_H
#define LSMTRACE_H

#ifndef LSMT_HOST
typedef __u8 lsmt_u8;
typedef __u16 lsmt_u16;
typedef __u32 lsmt_u32;
typedef __s32 lsmt_s32;
typedef __u64 lsmt_u64;
typedef __s64 lsmt_s64;
#else
#include <stdint.h>
typedef uint8_t lsmt_u8;
typedef uint16_t lsmt_u16;
typedef uint32_t lsmt_u32;
typedef int32_t lsmt_s32;
typedef uint64_t lsmt_u64;
typedef int64_t lsmt_s64;
#endif

#define LSMT_ABI_VERSION 2

#define LSMT_COMM_LEN 16
#define LSMT_PATH_LEN 256
#define LSMT_NAME_LEN 64
#define LSMT_MAX_IDS 2048      /* hook ids + syscall ids, sizes count arrays */
#define LSMT_SYSCALL_BASE 1024 /* id of syscall nr N is LSMT_SYSCALL_BASE + N */
#define LSMT_MAX_SYSCALL 1024
#define LSMT_LAT_BUCKETS 32    /* log2 latency histogram, ns */
#define LSMT_PROC_BUF 336      /* exec: filename and argv head (struct lsmt_obj_proc) */
#define LSMT_QUIET_SITES 16    /* kernel functions that ask for capabilities quietly */

/* Event ids that are neither hooks (1..) nor syscalls (LSMT_SYSCALL_BASE + nr). */
#define LSMT_ID_CAPABLE (LSMT_SYSCALL_BASE - 1) /* capability:cap_capable */
#define LSMT_ID_AVC (LSMT_SYSCALL_BASE - 2)     /* avc:selinux_audited */
#define LSMT_ID_SIGNAL (LSMT_SYSCALL_BASE - 3)  /* signal:signal_generate */

/* What produced the event. */
enum lsmt_kind {
	LSMT_KIND_HOOK = 1,    /* a security_* hook returned (fexit/kretprobe) */
	LSMT_KIND_SYSCALL = 2, /* a security-relevant syscall returned */
	LSMT_KIND_CAPABLE = 3, /* capability:cap_capable tracepoint */
	LSMT_KIND_AVC = 4,     /* avc:selinux_audited tracepoint */
	LSMT_KIND_EXEC = 5,    /* sched:sched_process_exec */
	LSMT_KIND_FORK = 6,    /* sched:sched_process_fork */
	LSMT_KIND_EXIT = 7,    /* sched:sched_process_exit */
	LSMT_KIND_SIGNAL = 8,  /* signal:signal_generate (a signal that was allowed) */
};

/* How the event was observed (macros, not an enum: #if compares them). */
#define LSMT_RUNG_FEXIT 1
#define LSMT_RUNG_KPROBE 2
#define LSMT_RUNG_TRACEPOINT 3

/* Who decided. UNKNOWN: the rung cannot tell. DAC: no LSM hook denied. */
enum lsmt_lsm {
	LSMT_LSM_UNKNOWN = 0,
	LSMT_LSM_DAC = 1,
	LSMT_LSM_CAPABILITY = 2,
	LSMT_LSM_SELINUX = 3,
	LSMT_LSM_APPARMOR = 4,
	LSMT_LSM_SMACK = 5,
	LSMT_LSM_TOMOYO = 6,
	LSMT_LSM_LANDLOCK = 7,
	LSMT_LSM_YAMA = 8,
	LSMT_LSM_LOCKDOWN = 9,
	LSMT_LSM_BPF = 10,
	LSMT_LSM_SAFESETID = 11,
	LSMT_LSM_LOADPIN = 12,
	LSMT_LSM_IPE = 13,
	LSMT_LSM_INTEGRITY = 14,
	LSMT_LSM_HOOK = 15, /* the security_* wrapper denied, no traced impl did */
	LSMT_LSM_SECCOMP = 16, /* a seccomp filter refused the syscall (not an LSM) */
	LSMT_LSM_MAX = 17,
};

/* Which member of union lsmt_object is valid. */
enum lsmt_obj_type {
	LSMT_OBJ_NONE = 0,
	LSMT_OBJ_FILE = 1,   /* path (+ second path/name), flags, mode, mask */
	LSMT_OBJ_CAP = 2,    /* capability number, opts */
	LSMT_OBJ_SOCK = 3,   /* family, type, protocol, address, port */
	LSMT_OBJ_SIGNAL = 4, /* signal number, target pid */
	LSMT_OBJ_PTRACE = 5, /* target pid, mode/request */
	LSMT_OBJ_EXEC = 6,   /* exec filename (file.path) */
	LSMT_OBJ_MEM = 7,    /* mmap/mprotect: prot, flags, (file.path) */
	LSMT_OBJ_MOUNT = 8,  /* source path (file.path), fs type (file.name) */
	LSMT_OBJ_SETID = 9,  /* ids asked for */
	LSMT_OBJ_MODULE = 10, /* module name / read-file id (file.path) */
	LSMT_OBJ_BPF = 11,   /* bpf() command */
	LSMT_OBJ_LOCKDOWN = 12, /* lockdown reason */
	LSMT_OBJ_AVC = 13,   /* selinux_audited fields */
	LSMT_OBJ_PROC = 14,  /* fork child / exec filename and argv / exit code */
	LSMT_OBJ_NICE = 15,  /* nice value asked for; target task or which/who */
};

/* How exact obj.file.path is (struct lsmt_obj_file.path_kind). */
enum lsmt_path_kind {
	LSMT_PATHKIND_NONE = 0,        /* no path, or not a file name (module name...) */
	LSMT_PATHKIND_EXACT = 1,       /* the kernel's path of the object, from the root */
	LSMT_PATHKIND_JOINED = 2,      /* the directory's path + "/" + the name given */
	LSMT_PATHKIND_AS_GIVEN = 3,    /* the name as the program passed it */
	LSMT_PATHKIND_FS_RELATIVE = 4, /* from the root of the object's filesystem (a
				    * hook that sees a dentry but not its mount) */
};

/* Ids of the counters in the `stats` per-CPU array. */
enum lsmt_stat {
	LSMT_STAT_SEEN = 0,      /* decisions (and streamed process events) seen */
	LSMT_STAT_FILTERED = 1,  /* not streamed: filters said no */
	LSMT_STAT_ATTEMPTED = 2, /* passed filters, ring/perf output attempted */
	LSMT_STAT_LOST = 3,      /* reserve/output failed: buffer full */
	LSMT_STAT_MAP_FULL = 4,  /* a bookkeeping map update failed */
	LSMT_STAT_READ_ERR = 5,  /* a probe read of the object failed (partial) */
	LSMT_STAT_MAX = 8,
};

/* Flags in struct lsmt_config.flags. */
#define LSMT_CFG_STREAM (1u << 0)     /* emit events (else count only) */
#define LSMT_CFG_DENIED_ONLY (1u << 1)
#define LSMT_CFG_PID (1u << 2)        /* filter on the traced_tgids set */
#define LSMT_CFG_UID (1u << 3)
#define LSMT_CFG_COMM (1u << 4)
#define LSMT_CFG_CGROUP (1u << 5)
#define LSMT_CFG_PROC_EVENTS (1u << 6) /* emit exec/fork/exit events */
#define LSMT_CFG_LATENCY (1u << 7)    /* keep the latency histogram */
#define LSMT_CFG_CHILDREN (1u << 8)   /* --children: forks of traced join */

/* Flags in struct lsmt_event.flags. */
#define LSMT_EV_TRUNCATED (1u << 0) /* a string hit its buffer size */
#define LSMT_EV_READ_ERR (1u << 1)  /* part of the object could not be read */
#define LSMT_EV_ATTRIBUTED (1u << 2) /* lsm comes from a hook seen inside */
/* A denied capability check that was a quiet probe (CAP_OPT_NOAUDIT), known
 * from the hook's opts argument (exact) or from the kernel call site. */
#define LSMT_EV_NOAUDIT_OPTS (1u << 3)
#define LSMT_EV_NOAUDIT_CALL_SITE (1u << 4)
/* A process event outside the scope filters: for the process tree only. */
#define LSMT_EV_CONTEXT (1u << 5)

/* Flags in struct lsmt_obj_proc.flags (exec events). */
#define LSMT_EXEC_ARGV_TRUNCATED (1u << 0) /* argv did not fit: its head only */
#define LSMT_EXEC_AS_GIVEN (1u << 1)       /* filename from the exec call, not the
					      * executable's path (no exe_file) */

/* CAP_OPT_NOAUDIT of include/linux/security.h (the `opts` of security_capable). */
#define LSMT_CAP_OPT_NOAUDIT 2

struct lsmt_config {
	lsmt_u32 flags;
	lsmt_u32 uid;
	lsmt_u64 cgroup_id;
	char comm[LSMT_COMM_LEN];
	lsmt_u32 self_tgid; /* lsmtrace itself: never traced */
	lsmt_u32 pad;
};

/* Key of the per (hook, LSM, errno) counts; errno 0 = allowed. */
struct lsmt_count_key {
	lsmt_u16 id;
	lsmt_u16 lsm;
	lsmt_s32 err;
};

/* Key of the latency histogram. */
struct lsmt_lat_key {
	lsmt_u16 id;
	lsmt_u16 bucket;
	lsmt_u32 pad;
};

/* Per-task record of the last hook denial, for DAC-vs-LSM attribution. */
struct lsmt_pending {
	lsmt_u64 ts_ns;
	lsmt_s32 ret;
	lsmt_u16 lsm;
	lsmt_u16 id;
	lsmt_s32 syscall;
	lsmt_u32 pad;
};

/* An address range [start, end) of kernel text (struct lsmt_site): the
 * functions that check a capability with CAP_OPT_NOAUDIT, found in kallsyms
 * by user space (the `quiet_sites` array; unused entries are zero). */
struct lsmt_site {
	lsmt_u64 start;
	lsmt_u64 end;
};

/* How the generic syscall-exit program decodes a syscall's object. */
enum lsmt_decoder {
	LSMT_DEC_NONE = 0,
	LSMT_DEC_PATH = 1,     /* arg[0] path, arg[1] flags, arg[2] mode, arg[3] dfd */
	LSMT_DEC_PATH2 = 2,    /* arg[0] path, arg[1] second path, arg[2] flags, arg[3] dfd */
	LSMT_DEC_EXEC = 3,     /* arg[0] filename, arg[1] dfd */
	LSMT_DEC_KILL = 4,     /* arg[0] pid, arg[1] sig */
	LSMT_DEC_PTRACE = 5,   /* arg[0] request, arg[1] pid */
	LSMT_DEC_MEM = 6,      /* arg[0] addr, arg[1] len, arg[2] prot, arg[3] flags (fd = arg 4) */
	LSMT_DEC_SOCKET = 7,   /* arg[0] family, arg[1] type, arg[2] protocol */
	LSMT_DEC_SOCKADDR = 8, /* arg[0] fd, arg[1] sockaddr, arg[2] addrlen */
	LSMT_DEC_MSGHDR = 9,   /* arg[0] fd, arg[1] msghdr (msg_name) */
	LSMT_DEC_SETID = 10,   /* arg[0..2] ids (NONE_ARG: unchanged) */
	LSMT_DEC_MOUNT = 11,   /* arg[0] source, arg[1] target, arg[2] fstype, arg[3] flags */
	LSMT_DEC_FD = 12,      /* arg[0] fd, arg[1] mode/flags */
	LSMT_DEC_MODNAME = 13, /* arg[0] module name (user string) */
	LSMT_DEC_BPF = 14,     /* arg[0] cmd, arg[2] size */
	LSMT_DEC_NICE = 15,    /* arg[0] which, arg[1] who, arg[2] prio */
	LSMT_DEC_OPEN = 16,    /* as PATH; on success the returned fd names the file */
};

/*
 * How a hook rung's generated program decodes its hook's object from the
 * wrapper's arguments x0..x3 (lsmt_hdecode in hooks.bpf.c; lsmtrace/bpfgen.py
 * says which hook uses which, and which arguments).
 */
enum lsmt_hdec {
	LSMT_HD_NONE = 0,
	LSMT_HD_FILE = 1,         /* x0 file */
	LSMT_HD_FILE_MASK = 2,    /* x0 file, x1 mask */
	LSMT_HD_MMAP = 3,         /* x0 file (may be NULL), x1 prot, x2 flags */
	LSMT_HD_MPROTECT = 4,     /* x0 vma, x1 reqprot, x2 prot */
	LSMT_HD_BPRM = 5,         /* x0 linux_binprm */
	LSMT_HD_CAP = 6,          /* x0 cap, x1 opts */
	LSMT_HD_KILL = 7,         /* x0 target task, x1 sig */
	LSMT_HD_PTRACE = 8,       /* x0 target task, x1 mode */
	LSMT_HD_SETID = 9,        /* x0 new cred (uids), x1 flags */
	LSMT_HD_SETGID = 10,      /* x0 new cred (gids), x1 flags */
	LSMT_HD_NICE = 11,        /* x0 target task, x1 nice */
	LSMT_HD_SOCK_CREATE = 12, /* x0 family, x1 type, x2 protocol */
	LSMT_HD_SOCKADDR = 13,    /* x0 socket, x1 sockaddr, x2 addrlen */
	LSMT_HD_SOCK = 14,        /* x0 socket */
	LSMT_HD_SENDMSG = 15,     /* x0 socket, x1 msghdr */
	LSMT_HD_MOUNT = 16,       /* x0 dev name, x2 fs type, x3 flags */
	LSMT_HD_UMOUNT = 17,      /* x0 vfsmount, x1 flags */
	LSMT_HD_PATH2 = 18,       /* x0 from path, x1 to path */
	LSMT_HD_KSTR = 19,        /* x0 kernel string */
	LSMT_HD_LOAD_DATA = 20,   /* x0 id */
	LSMT_HD_READ_FILE = 21,   /* x0 file, x1 id */
	LSMT_HD_BPF = 22,         /* x0 cmd, x1 size */
	LSMT_HD_LOCKDOWN = 23,    /* x0 reason */
	LSMT_HD_INODE = 24,       /* x0 inode, x1 mask */
	LSMT_HD_DENTRY = 25,      /* x0 dentry */
	LSMT_HD_DENTRY2 = 26,     /* x0 dentry, x1 second dentry (name) */
	LSMT_HD_PATH = 27,        /* x0 path, x1 mode */
	LSMT_HD_PATHD = 28,       /* x0 dir path, x1 dentry */
	LSMT_HD_PATHD2 = 29,      /* x0 dir path, x1 dentry, x3 second dentry (name) */
	LSMT_HD_TASK = 30,        /* x0 target task */
};
#define LSMT_NONE_ARG 255

/* One per syscall nr in the `sys_desc` array, written by user space. */
struct lsmt_sys_desc {
	lsmt_u8 enabled;
	lsmt_u8 decoder; /* enum lsmt_decoder */
	lsmt_u8 obj_type; /* enum lsmt_obj_type of the decoded object */
	lsmt_u8 arg[4];
	lsmt_u8 pad;
};

/* A hook call in flight (hooks.bpf.c): when it started, its arguments. */
struct lsmt_entry_key {
	lsmt_u64 pid_tgid;
	lsmt_u32 id;
	lsmt_u32 pad;
};

struct lsmt_entry {
	lsmt_u64 ts_ns;
	lsmt_u64 args[4];
};

struct lsmt_obj_file {
	lsmt_u64 ino;
	lsmt_u32 dev;
	lsmt_u32 mode;  /* inode mode or requested mode */
	lsmt_u32 flags; /* open flags / mount flags / rename flags */
	lsmt_u32 mask;  /* MAY_* mask / prot */
	lsmt_s32 dfd;
	lsmt_u16 path_kind; /* enum lsmt_path_kind */
	lsmt_u16 pad;
	char path[LSMT_PATH_LEN];
	char name[LSMT_NAME_LEN]; /* rename target, fs type, dentry name */
};

struct lsmt_obj_cap {
	lsmt_s32 cap;
	lsmt_u32 opts;
	lsmt_u32 ns_inum;
	lsmt_u32 pad;
};

struct lsmt_obj_sock {
	lsmt_u16 family;
	lsmt_u16 port; /* host byte order */
	lsmt_s32 type;
	lsmt_s32 protocol;
	lsmt_u32 addrlen;
	lsmt_u8 addr[16]; /* v4 in the first 4 bytes */
	lsmt_u8 path[108]; /* AF_UNIX sun_path, addrlen - 2 bytes (abstract: a NUL first) */
	lsmt_u32 pad;
};

struct lsmt_obj_signal {
	lsmt_s32 sig;
	lsmt_s32 target_pid;
	char target_comm[LSMT_COMM_LEN];
};

struct lsmt_obj_ptrace {
	lsmt_s32 target_pid;
	lsmt_u32 mode;    /* PTRACE_MODE_* (hook) */
	lsmt_s64 request; /* PTRACE_* (syscall) */
	char target_comm[LSMT_COMM_LEN];
};

struct lsmt_obj_mem {
	lsmt_u64 addr;
	lsmt_u64 len;
	lsmt_u32 prot;
	lsmt_u32 reqprot;
	lsmt_u32 flags;
	lsmt_s32 fd;
	char path[LSMT_PATH_LEN]; /* the mapped file, when the hook sees it */
};

struct lsmt_obj_setid {
	lsmt_s32 ids[3]; /* real/effective/saved (or fs) asked for, -1 unchanged */
	lsmt_u32 flags;
};

struct lsmt_obj_bpf {
	lsmt_s32 cmd;
	lsmt_u32 size;
};

struct lsmt_obj_lockdown {
	lsmt_u32 reason;
	lsmt_u32 pad;
};

struct lsmt_obj_avc {
	lsmt_u32 requested;
	lsmt_u32 denied;
	lsmt_u32 audited;
	lsmt_s32 result;
	char tclass[32];
	char scontext[96];
	char tcontext[96];
};

struct lsmt_obj_nice {
	lsmt_s32 nice;       /* the nice value asked for */
	lsmt_s32 target_pid; /* hook: the task whose nice value changes */
	lsmt_s32 which;      /* syscall: PRIO_PROCESS, PRIO_PGRP, PRIO_USER */
	lsmt_s32 who;        /* syscall: pid, pgid or uid (0: the caller) */
	char target_comm[LSMT_COMM_LEN];
};

/*
 * exec: buf holds the executable's path (filename_len bytes, its NUL included;
 * for a #! script its interpreter, as /proc/<pid>/exe), then the name the exec
 * call was given (given_len bytes, NUL included; 0 when the executable's path
 * is that name already, LSMT_EXEC_AS_GIVEN, or it did not fit: for a script,
 * the script), then the head of argv as the new process has it (argv_len
 * bytes, each argument NUL-terminated, the last one possibly cut:
 * LSMT_EXEC_ARGV_TRUNCATED).
 */
struct lsmt_obj_proc {
	lsmt_s32 child_pid;
	lsmt_s32 exit_code;
	lsmt_u16 filename_len;
	lsmt_u16 argv_len;
	lsmt_u16 flags; /* LSMT_EXEC_* */
	lsmt_u16 given_len;
	lsmt_u8 buf[LSMT_PROC_BUF];
};

union lsmt_object {
	struct lsmt_obj_file file;
	struct lsmt_obj_cap cap;
	struct lsmt_obj_sock sock;
	struct lsmt_obj_signal signal;
	struct lsmt_obj_ptrace ptrace;
	struct lsmt_obj_mem mem;
	struct lsmt_obj_setid setid;
	struct lsmt_obj_bpf bpf;
	struct lsmt_obj_lockdown lockdown;
	struct lsmt_obj_avc avc;
	struct lsmt_obj_proc proc;
	struct lsmt_obj_nice nice;
};

/* The exec object shares the file object's room: it must not make every
 * event bigger (the union's size is the largest member's). */
_Static_assert(sizeof(struct lsmt_obj_proc) <= sizeof(struct lsmt_obj_file),
	       "struct lsmt_obj_proc outgrew the event");

struct lsmt_event {
	lsmt_u64 ts_ns;      /* bpf_ktime_get_ns() at the decision */
	lsmt_u64 latency_ns; /* hook entry -> exit (0 when the rung cannot tell) */
	lsmt_u64 cgroup_id;
	lsmt_u16 kind;   /* enum lsmt_kind */
	lsmt_u16 rung;   /* enum lsmt_rung */
	lsmt_u16 id;     /* hook id, or LSMT_SYSCALL_BASE + syscall nr */
	lsmt_u16 lsm;    /* enum lsmt_lsm */
	lsmt_s32 ret;
	lsmt_s32 syscall; /* syscall in progress, -1 if none */
	lsmt_u32 pid;     /* thread id */
	lsmt_u32 tgid;    /* process id */
	lsmt_u32 ppid;
	lsmt_u32 uid;
	lsmt_u32 euid;
	lsmt_u32 gid;
	lsmt_u32 mntns;
	lsmt_u16 obj_type; /* enum lsmt_obj_type */
	lsmt_u16 flags;    /* LSMT_EV_* */
	char comm[LSMT_COMM_LEN];
	union lsmt_object obj;
};

#endif /* LSMTRACE_H */
