/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host-side layout dump of bpf/lsmtrace.h, for tests/unit/test_abi.py.
 *
 * Build: cc -I bpf -o layout_check bpf/layout_check.c && ./layout_check
 *
 * Output, one fact per line:
 *   struct <name> size <sizeof>
 *   field <name>.<field> <offsetof> <sizeof> <type>
 * where <type> is u8..s64 or char, an element type + "[]" for an array, or
 * the name of a nested struct/union ("?": TYPE() below needs a new case).
 *   const <NAME> <value>
 * Every name is spelled in C, so a field or constant missing from the header
 * is a compile error; the test compares the field lists both ways. A struct
 * added to lsmtrace.h must be added here too (and to abi.STRUCTS).
 */
#define LSMT_HOST 1
#include <stddef.h>
#include <stdio.h>

#include "lsmtrace.h"

/* One global instance of each wire struct (STYLE.md), so they show in DWARF too. */
struct lsmt_config lsmt_config_v;
struct lsmt_count_key lsmt_count_key_v;
struct lsmt_lat_key lsmt_lat_key_v;
struct lsmt_pending lsmt_pending_v;
struct lsmt_site lsmt_site_v;
struct lsmt_sys_desc lsmt_sys_desc_v;
struct lsmt_entry_key lsmt_entry_key_v;
struct lsmt_entry lsmt_entry_v;
struct lsmt_obj_file lsmt_obj_file_v;
struct lsmt_obj_cap lsmt_obj_cap_v;
struct lsmt_obj_sock lsmt_obj_sock_v;
struct lsmt_obj_signal lsmt_obj_signal_v;
struct lsmt_obj_ptrace lsmt_obj_ptrace_v;
struct lsmt_obj_mem lsmt_obj_mem_v;
struct lsmt_obj_setid lsmt_obj_setid_v;
struct lsmt_obj_bpf lsmt_obj_bpf_v;
struct lsmt_obj_lockdown lsmt_obj_lockdown_v;
struct lsmt_obj_avc lsmt_obj_avc_v;
struct lsmt_obj_proc lsmt_obj_proc_v;
struct lsmt_obj_nice lsmt_obj_nice_v;
union lsmt_object lsmt_object_v;
struct lsmt_event lsmt_event_v;

/* The C type of a member: scalars by width and sign, arrays as element type
 * plus "[]" (the member decays to a pointer here), nested structs by name. */
#define TYPE(x) _Generic((x),                                              \
	uint8_t: "u8", uint16_t: "u16", uint32_t: "u32", uint64_t: "u64",  \
	int8_t: "s8", int16_t: "s16", int32_t: "s32", int64_t: "s64",      \
	char: "char",                                                      \
	uint8_t *: "u8[]", uint16_t *: "u16[]", uint32_t *: "u32[]",       \
	int32_t *: "s32[]", uint64_t *: "u64[]", char *: "char[]",         \
	struct lsmt_obj_file: "lsmt_obj_file",                             \
	struct lsmt_obj_cap: "lsmt_obj_cap",                               \
	struct lsmt_obj_sock: "lsmt_obj_sock",                             \
	struct lsmt_obj_signal: "lsmt_obj_signal",                         \
	struct lsmt_obj_ptrace: "lsmt_obj_ptrace",                         \
	struct lsmt_obj_mem: "lsmt_obj_mem",                               \
	struct lsmt_obj_setid: "lsmt_obj_setid",                           \
	struct lsmt_obj_bpf: "lsmt_obj_bpf",                               \
	struct lsmt_obj_lockdown: "lsmt_obj_lockdown",                     \
	struct lsmt_obj_avc: "lsmt_obj_avc",                               \
	struct lsmt_obj_proc: "lsmt_obj_proc",                             \
	struct lsmt_obj_nice: "lsmt_obj_nice",                             \
	union lsmt_object: "lsmt_object",                                  \
	default: "?")

#define SIZE(tag, name) \
	printf("struct %s size %zu\n", #name, sizeof(tag name))
#define FIELD(tag, name, f)                                                 \
	printf("field %s.%s %zu %zu %s\n", #name, #f, offsetof(tag name, f), \
	       sizeof(name##_v.f), TYPE(name##_v.f))
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void)
{
	SIZE(struct, lsmt_config);
	FIELD(struct, lsmt_config, flags);
	FIELD(struct, lsmt_config, uid);
	FIELD(struct, lsmt_config, cgroup_id);
	FIELD(struct, lsmt_config, comm);
	FIELD(struct, lsmt_config, self_tgid);
	FIELD(struct, lsmt_config, pad);

	SIZE(struct, lsmt_count_key);
	FIELD(struct, lsmt_count_key, id);
	FIELD(struct, lsmt_count_key, lsm);
	FIELD(struct, lsmt_count_key, err);

	SIZE(struct, lsmt_lat_key);
	FIELD(struct, lsmt_lat_key, id);
	FIELD(struct, lsmt_lat_key, bucket);
	FIELD(struct, lsmt_lat_key, pad);

	SIZE(struct, lsmt_pending);
	FIELD(struct, lsmt_pending, ts_ns);
	FIELD(struct, lsmt_pending, ret);
	FIELD(struct, lsmt_pending, lsm);
	FIELD(struct, lsmt_pending, id);
	FIELD(struct, lsmt_pending, syscall);
	FIELD(struct, lsmt_pending, pad);

	SIZE(struct, lsmt_site);
	FIELD(struct, lsmt_site, start);
	FIELD(struct, lsmt_site, end);

	SIZE(struct, lsmt_sys_desc);
	FIELD(struct, lsmt_sys_desc, enabled);
	FIELD(struct, lsmt_sys_desc, decoder);
	FIELD(struct, lsmt_sys_desc, obj_type);
	FIELD(struct, lsmt_sys_desc, arg);
	FIELD(struct, lsmt_sys_desc, pad);

	SIZE(struct, lsmt_entry_key);
	FIELD(struct, lsmt_entry_key, pid_tgid);
	FIELD(struct, lsmt_entry_key, id);
	FIELD(struct, lsmt_entry_key, pad);

	SIZE(struct, lsmt_entry);
	FIELD(struct, lsmt_entry, ts_ns);
	FIELD(struct, lsmt_entry, args);

	SIZE(struct, lsmt_obj_file);
	FIELD(struct, lsmt_obj_file, ino);
	FIELD(struct, lsmt_obj_file, dev);
	FIELD(struct, lsmt_obj_file, mode);
	FIELD(struct, lsmt_obj_file, flags);
	FIELD(struct, lsmt_obj_file, mask);
	FIELD(struct, lsmt_obj_file, dfd);
	FIELD(struct, lsmt_obj_file, path_kind);
	FIELD(struct, lsmt_obj_file, pad);
	FIELD(struct, lsmt_obj_file, path);
	FIELD(struct, lsmt_obj_file, name);

	SIZE(struct, lsmt_obj_cap);
	FIELD(struct, lsmt_obj_cap, cap);
	FIELD(struct, lsmt_obj_cap, opts);
	FIELD(struct, lsmt_obj_cap, ns_inum);
	FIELD(struct, lsmt_obj_cap, pad);

	SIZE(struct, lsmt_obj_sock);
	FIELD(struct, lsmt_obj_sock, family);
	FIELD(struct, lsmt_obj_sock, port);
	FIELD(struct, lsmt_obj_sock, type);
	FIELD(struct, lsmt_obj_sock, protocol);
	FIELD(struct, lsmt_obj_sock, addrlen);
	FIELD(struct, lsmt_obj_sock, addr);
	FIELD(struct, lsmt_obj_sock, path);
	FIELD(struct, lsmt_obj_sock, pad);

	SIZE(struct, lsmt_obj_signal);
	FIELD(struct, lsmt_obj_signal, sig);
	FIELD(struct, lsmt_obj_signal, target_pid);
	FIELD(struct, lsmt_obj_signal, target_comm);

	SIZE(struct, lsmt_obj_ptrace);
	FIELD(struct, lsmt_obj_ptrace, target_pid);
	FIELD(struct, lsmt_obj_ptrace, mode);
	FIELD(struct, lsmt_obj_ptrace, request);
	FIELD(struct, lsmt_obj_ptrace, target_comm);

	SIZE(struct, lsmt_obj_mem);
	FIELD(struct, lsmt_obj_mem, addr);
	FIELD(struct, lsmt_obj_mem, len);
	FIELD(struct, lsmt_obj_mem, prot);
	FIELD(struct, lsmt_obj_mem, reqprot);
	FIELD(struct, lsmt_obj_mem, flags);
	FIELD(struct, lsmt_obj_mem, fd);
	FIELD(struct, lsmt_obj_mem, path);

	SIZE(struct, lsmt_obj_setid);
	FIELD(struct, lsmt_obj_setid, ids);
	FIELD(struct, lsmt_obj_setid, flags);

	SIZE(struct, lsmt_obj_bpf);
	FIELD(struct, lsmt_obj_bpf, cmd);
	FIELD(struct, lsmt_obj_bpf, size);

	SIZE(struct, lsmt_obj_lockdown);
	FIELD(struct, lsmt_obj_lockdown, reason);
	FIELD(struct, lsmt_obj_lockdown, pad);

	SIZE(struct, lsmt_obj_avc);
	FIELD(struct, lsmt_obj_avc, requested);
	FIELD(struct, lsmt_obj_avc, denied);
	FIELD(struct, lsmt_obj_avc, audited);
	FIELD(struct, lsmt_obj_avc, result);
	FIELD(struct, lsmt_obj_avc, tclass);
	FIELD(struct, lsmt_obj_avc, scontext);
	FIELD(struct, lsmt_obj_avc, tcontext);

	SIZE(struct, lsmt_obj_proc);
	FIELD(struct, lsmt_obj_proc, child_pid);
	FIELD(struct, lsmt_obj_proc, exit_code);
	FIELD(struct, lsmt_obj_proc, filename_len);
	FIELD(struct, lsmt_obj_proc, argv_len);
	FIELD(struct, lsmt_obj_proc, flags);
	FIELD(struct, lsmt_obj_proc, given_len);
	FIELD(struct, lsmt_obj_proc, buf);

	SIZE(struct, lsmt_obj_nice);
	FIELD(struct, lsmt_obj_nice, nice);
	FIELD(struct, lsmt_obj_nice, target_pid);
	FIELD(struct, lsmt_obj_nice, which);
	FIELD(struct, lsmt_obj_nice, who);
	FIELD(struct, lsmt_obj_nice, target_comm);

	SIZE(union, lsmt_object);
	FIELD(union, lsmt_object, file);
	FIELD(union, lsmt_object, cap);
	FIELD(union, lsmt_object, sock);
	FIELD(union, lsmt_object, signal);
	FIELD(union, lsmt_object, ptrace);
	FIELD(union, lsmt_object, mem);
	FIELD(union, lsmt_object, setid);
	FIELD(union, lsmt_object, bpf);
	FIELD(union, lsmt_object, lockdown);
	FIELD(union, lsmt_object, avc);
	FIELD(union, lsmt_object, proc);
	FIELD(union, lsmt_object, nice);

	SIZE(struct, lsmt_event);
	FIELD(struct, lsmt_event, ts_ns);
	FIELD(struct, lsmt_event, latency_ns);
	FIELD(struct, lsmt_event, cgroup_id);
	FIELD(struct, lsmt_event, kind);
	FIELD(struct, lsmt_event, rung);
	FIELD(struct, lsmt_event, id);
	FIELD(struct, lsmt_event, lsm);
	FIELD(struct, lsmt_event, ret);
	FIELD(struct, lsmt_event, syscall);
	FIELD(struct, lsmt_event, pid);
	FIELD(struct, lsmt_event, tgid);
	FIELD(struct, lsmt_event, ppid);
	FIELD(struct, lsmt_event, uid);
	FIELD(struct, lsmt_event, euid);
	FIELD(struct, lsmt_event, gid);
	FIELD(struct, lsmt_event, mntns);
	FIELD(struct, lsmt_event, obj_type);
	FIELD(struct, lsmt_event, flags);
	FIELD(struct, lsmt_event, comm);
	FIELD(struct, lsmt_event, obj);

	/* sizes and ids */
	CONST(LSMT_ABI_VERSION);
	CONST(LSMT_COMM_LEN);
	CONST(LSMT_PATH_LEN);
	CONST(LSMT_NAME_LEN);
	CONST(LSMT_MAX_IDS);
	CONST(LSMT_SYSCALL_BASE);
	CONST(LSMT_MAX_SYSCALL);
	CONST(LSMT_LAT_BUCKETS);
	CONST(LSMT_NONE_ARG);
	CONST(LSMT_PROC_BUF);
	CONST(LSMT_QUIET_SITES);
	CONST(LSMT_CAP_OPT_NOAUDIT);

	/* event ids of the non-hook, non-syscall events */
	CONST(LSMT_ID_CAPABLE);
	CONST(LSMT_ID_AVC);
	CONST(LSMT_ID_SIGNAL);

	/* enum lsmt_kind */
	CONST(LSMT_KIND_HOOK);
	CONST(LSMT_KIND_SYSCALL);
	CONST(LSMT_KIND_CAPABLE);
	CONST(LSMT_KIND_AVC);
	CONST(LSMT_KIND_EXEC);
	CONST(LSMT_KIND_FORK);
	CONST(LSMT_KIND_EXIT);
	CONST(LSMT_KIND_SIGNAL);

	/* rungs */
	CONST(LSMT_RUNG_FEXIT);
	CONST(LSMT_RUNG_KPROBE);
	CONST(LSMT_RUNG_TRACEPOINT);

	/* enum lsmt_lsm */
	CONST(LSMT_LSM_UNKNOWN);
	CONST(LSMT_LSM_DAC);
	CONST(LSMT_LSM_CAPABILITY);
	CONST(LSMT_LSM_SELINUX);
	CONST(LSMT_LSM_APPARMOR);
	CONST(LSMT_LSM_SMACK);
	CONST(LSMT_LSM_TOMOYO);
	CONST(LSMT_LSM_LANDLOCK);
	CONST(LSMT_LSM_YAMA);
	CONST(LSMT_LSM_LOCKDOWN);
	CONST(LSMT_LSM_BPF);
	CONST(LSMT_LSM_SAFESETID);
	CONST(LSMT_LSM_LOADPIN);
	CONST(LSMT_LSM_IPE);
	CONST(LSMT_LSM_INTEGRITY);
	CONST(LSMT_LSM_HOOK);
	CONST(LSMT_LSM_SECCOMP);
	CONST(LSMT_LSM_MAX);

	/* enum lsmt_obj_type */
	CONST(LSMT_OBJ_NONE);
	CONST(LSMT_OBJ_FILE);
	CONST(LSMT_OBJ_CAP);
	CONST(LSMT_OBJ_SOCK);
	CONST(LSMT_OBJ_SIGNAL);
	CONST(LSMT_OBJ_PTRACE);
	CONST(LSMT_OBJ_EXEC);
	CONST(LSMT_OBJ_MEM);
	CONST(LSMT_OBJ_MOUNT);
	CONST(LSMT_OBJ_SETID);
	CONST(LSMT_OBJ_MODULE);
	CONST(LSMT_OBJ_BPF);
	CONST(LSMT_OBJ_LOCKDOWN);
	CONST(LSMT_OBJ_AVC);
	CONST(LSMT_OBJ_PROC);
	CONST(LSMT_OBJ_NICE);

	/* enum lsmt_path_kind */
	CONST(LSMT_PATHKIND_NONE);
	CONST(LSMT_PATHKIND_EXACT);
	CONST(LSMT_PATHKIND_JOINED);
	CONST(LSMT_PATHKIND_AS_GIVEN);
	CONST(LSMT_PATHKIND_FS_RELATIVE);

	/* enum lsmt_stat */
	CONST(LSMT_STAT_SEEN);
	CONST(LSMT_STAT_FILTERED);
	CONST(LSMT_STAT_ATTEMPTED);
	CONST(LSMT_STAT_LOST);
	CONST(LSMT_STAT_MAP_FULL);
	CONST(LSMT_STAT_READ_ERR);
	CONST(LSMT_STAT_MAX);

	/* enum lsmt_decoder */
	CONST(LSMT_DEC_NONE);
	CONST(LSMT_DEC_PATH);
	CONST(LSMT_DEC_PATH2);
	CONST(LSMT_DEC_EXEC);
	CONST(LSMT_DEC_KILL);
	CONST(LSMT_DEC_PTRACE);
	CONST(LSMT_DEC_MEM);
	CONST(LSMT_DEC_SOCKET);
	CONST(LSMT_DEC_SOCKADDR);
	CONST(LSMT_DEC_MSGHDR);
	CONST(LSMT_DEC_SETID);
	CONST(LSMT_DEC_MOUNT);
	CONST(LSMT_DEC_FD);
	CONST(LSMT_DEC_MODNAME);
	CONST(LSMT_DEC_BPF);
	CONST(LSMT_DEC_NICE);
	CONST(LSMT_DEC_OPEN);

	/* enum lsmt_hdec */
	CONST(LSMT_HD_NONE);
	CONST(LSMT_HD_FILE);
	CONST(LSMT_HD_FILE_MASK);
	CONST(LSMT_HD_MMAP);
	CONST(LSMT_HD_MPROTECT);
	CONST(LSMT_HD_BPRM);
	CONST(LSMT_HD_CAP);
	CONST(LSMT_HD_KILL);
	CONST(LSMT_HD_PTRACE);
	CONST(LSMT_HD_SETID);
	CONST(LSMT_HD_SETGID);
	CONST(LSMT_HD_NICE);
	CONST(LSMT_HD_SOCK_CREATE);
	CONST(LSMT_HD_SOCKADDR);
	CONST(LSMT_HD_SOCK);
	CONST(LSMT_HD_SENDMSG);
	CONST(LSMT_HD_MOUNT);
	CONST(LSMT_HD_UMOUNT);
	CONST(LSMT_HD_PATH2);
	CONST(LSMT_HD_KSTR);
	CONST(LSMT_HD_LOAD_DATA);
	CONST(LSMT_HD_READ_FILE);
	CONST(LSMT_HD_BPF);
	CONST(LSMT_HD_LOCKDOWN);
	CONST(LSMT_HD_INODE);
	CONST(LSMT_HD_DENTRY);
	CONST(LSMT_HD_DENTRY2);
	CONST(LSMT_HD_PATH);
	CONST(LSMT_HD_PATHD);
	CONST(LSMT_HD_PATHD2);
	CONST(LSMT_HD_TASK);

	/* struct lsmt_config.flags */
	CONST(LSMT_CFG_STREAM);
	CONST(LSMT_CFG_DENIED_ONLY);
	CONST(LSMT_CFG_PID);
	CONST(LSMT_CFG_UID);
	CONST(LSMT_CFG_COMM);
	CONST(LSMT_CFG_CGROUP);
	CONST(LSMT_CFG_PROC_EVENTS);
	CONST(LSMT_CFG_LATENCY);
	CONST(LSMT_CFG_CHILDREN);

	/* struct lsmt_event.flags */
	CONST(LSMT_EV_TRUNCATED);
	CONST(LSMT_EV_READ_ERR);
	CONST(LSMT_EV_ATTRIBUTED);
	CONST(LSMT_EV_NOAUDIT_OPTS);
	CONST(LSMT_EV_NOAUDIT_CALL_SITE);
	CONST(LSMT_EV_CONTEXT);

	/* struct lsmt_obj_proc.flags */
	CONST(LSMT_EXEC_ARGV_TRUNCATED);
	CONST(LSMT_EXEC_AS_GIVEN);
	return 0;
}
