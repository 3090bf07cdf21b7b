/* hook bpf (id 1): security_bpf, decoder BPF (x0 = a0, x1 = a2) */
KFUNC_PROBE(security_bpf, u64 a0, u64 a1, u64 a2, u64 a3) { return lsmt_hook_enter(1, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_bpf, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_hook_exit(ctx, 1, LSMT_HD_BPF, 0, a0, a2, 0, 0, ret); }
KRETFUNC_PROBE(selinux_bpf, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(1, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_bpf, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(1, 10, ret); }
/* hook bprm_check_security (id 2): security_bprm_check, decoder BPRM (x0 = a0) */
KFUNC_PROBE(security_bprm_check, u64 a0) { return lsmt_hook_enter(2, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_bprm_check, u64 a0, int ret) { return lsmt_hook_exit(ctx, 2, LSMT_HD_BPRM, 0, a0, 0, 0, 0, ret); }
KRETFUNC_PROBE(bpf_lsm_bprm_check_security, u64 a0, int ret) { return lsmt_impl_exit(2, 10, ret); }
/* hook capable (id 3): security_capable, decoder CAP (x0 = a2, x1 = a3) */
KFUNC_PROBE(security_capable, u64 a0, u64 a1, u64 a2, u64 a3) { return lsmt_hook_enter(3, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_capable, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_hook_exit(ctx, 3, LSMT_HD_CAP, 0, a2, a3, 0, 0, ret); }
KRETFUNC_PROBE(cap_capable, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(3, 2, ret); }
KRETFUNC_PROBE(selinux_capable, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(3, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_capable, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(3, 10, ret); }
/* hook cred_prepare (id 4): security_prepare_creds, decoder NONE */
KFUNC_PROBE(security_prepare_creds, u64 a0, u64 a1, u64 a2) { return lsmt_hook_enter(4, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_prepare_creds, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_hook_exit(ctx, 4, LSMT_HD_NONE, 0, 0, 0, 0, 0, ret); }
KRETFUNC_PROBE(selinux_cred_prepare, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(4, 3, ret); }
KRETFUNC_PROBE(hook_cred_prepare, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(4, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_cred_prepare, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(4, 10, ret); }
/* hook file_open (id 5): security_file_open, decoder FILE (x0 = a0) */
KFUNC_PROBE(security_file_open, u64 a0) { return lsmt_hook_enter(5, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_file_open, u64 a0, int ret) { return lsmt_hook_exit(ctx, 5, LSMT_HD_FILE, 0, a0, 0, 0, 0, ret); }
KRETFUNC_PROBE(selinux_file_open, u64 a0, int ret) { return lsmt_impl_exit(5, 3, ret); }
KRETFUNC_PROBE(hook_file_open, u64 a0, int ret) { return lsmt_impl_exit(5, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_file_open, u64 a0, int ret) { return lsmt_impl_exit(5, 10, ret); }
/* hook file_permission (id 6): security_file_permission, decoder FILE_MASK (x0 = a0, x1 = a1) */
KFUNC_PROBE(security_file_permission, u64 a0, u64 a1) { return lsmt_hook_enter(6, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_file_permission, u64 a0, u64 a1, int ret) { return lsmt_hook_exit(ctx, 6, LSMT_HD_FILE_MASK, 0, a0, a1, 0, 0, ret); }
KRETFUNC_PROBE(selinux_file_permission, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(6, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_file_permission, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(6, 10, ret); }
/* hook inode_rename (id 8): security_inode_rename, decoder DENTRY2 (x0 = a1, x1 = a3) */
KFUNC_PROBE(security_inode_rename, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4) { return lsmt_hook_enter(8, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_inode_rename, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, int ret) { return lsmt_hook_exit(ctx, 8, LSMT_HD_DENTRY2, 0, a1, a3, 0, 0, ret); }
KRETFUNC_PROBE(selinux_inode_rename, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(8, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_inode_rename, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(8, 10, ret); }
/* hook inode_setxattr (id 9): security_inode_setxattr, decoder NONE */
KFUNC_PROBE(security_inode_setxattr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5) { return lsmt_hook_enter(9, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_inode_setxattr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, int ret) { return lsmt_hook_exit(ctx, 9, LSMT_HD_NONE, 0, 0, 0, 0, 0, ret); }
KRETFUNC_PROBE(selinux_inode_setxattr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, int ret) { return lsmt_impl_exit(9, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_inode_setxattr, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, u64 a5, int ret) { return lsmt_impl_exit(9, 10, ret); }
/* hook kernel_read_file (id 10): security_kernel_read_file, decoder READ_FILE (x0 = a0, x1 = a1) */
KFUNC_PROBE(security_kernel_read_file, u64 a0, u64 a1, u64 a2) { return lsmt_hook_enter(10, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_kernel_read_file, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_hook_exit(ctx, 10, LSMT_HD_READ_FILE, 0, a0, a1, 0, 0, ret); }
KRETFUNC_PROBE(selinux_kernel_read_file, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(10, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_kernel_read_file, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(10, 10, ret); }
/* hook locked_down (id 11): security_locked_down, decoder LOCKDOWN (x0 = a0) */
KFUNC_PROBE(security_locked_down, u64 a0) { return lsmt_hook_enter(11, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_locked_down, u64 a0, int ret) { return lsmt_hook_exit(ctx, 11, LSMT_HD_LOCKDOWN, 0, a0, 0, 0, 0, ret); }
KRETFUNC_PROBE(bpf_lsm_locked_down, u64 a0, int ret) { return lsmt_impl_exit(11, 10, ret); }
/* hook mmap_file (id 12): security_mmap_file, decoder MMAP (x0 = a0, x1 = a1, x2 = a2) */
KFUNC_PROBE(security_mmap_file, u64 a0, u64 a1, u64 a2) { return lsmt_hook_enter(12, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_mmap_file, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_hook_exit(ctx, 12, LSMT_HD_MMAP, 0, a0, a1, a2, 0, ret); }
KRETFUNC_PROBE(selinux_mmap_file, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(12, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_mmap_file, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(12, 10, ret); }
/* hook path_chmod (id 13): security_path_chmod, decoder PATH (x0 = a0, x1 = a1) */
KFUNC_PROBE(security_path_chmod, u64 a0, u64 a1) { return lsmt_hook_enter(13, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_path_chmod, u64 a0, u64 a1, int ret) { return lsmt_hook_exit(ctx, 13, LSMT_HD_PATH, 0, a0, a1, 0, 0, ret); }
KRETFUNC_PROBE(bpf_lsm_path_chmod, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(13, 10, ret); }
/* hook sb_alloc_security (id 14): security_sb_alloc, decoder NONE */
KFUNC_PROBE(security_sb_alloc, u64 a0) { return lsmt_hook_enter(14, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_sb_alloc, u64 a0, int ret) { return lsmt_hook_exit(ctx, 14, LSMT_HD_NONE, 0, 0, 0, 0, 0, ret); }
KRETFUNC_PROBE(selinux_sb_alloc_security, u64 a0, int ret) { return lsmt_impl_exit(14, 3, ret); }
KRETFUNC_PROBE(bpf_lsm_sb_alloc_security, u64 a0, int ret) { return lsmt_impl_exit(14, 10, ret); }
/* hook sb_mount (id 16): security_sb_mount, decoder MOUNT (x0 = a0, x1 = a1, x2 = a2, x3 = a3) */
KFUNC_PROBE(security_sb_mount, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4) { return lsmt_hook_enter(16, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_sb_mount, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, int ret) { return lsmt_hook_exit(ctx, 16, LSMT_HD_MOUNT, 0, a0, a1, a2, a3, ret); }
KRETFUNC_PROBE(selinux_mount, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, int ret) { return lsmt_impl_exit(16, 3, ret); }
KRETFUNC_PROBE(hook_sb_mount, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, int ret) { return lsmt_impl_exit(16, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_sb_mount, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4, int ret) { return lsmt_impl_exit(16, 10, ret); }
/* hook settime (id 17): security_settime64, decoder NONE */
KFUNC_PROBE(security_settime64, u64 a0, u64 a1) { return lsmt_hook_enter(17, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_settime64, u64 a0, u64 a1, int ret) { return lsmt_hook_exit(ctx, 17, LSMT_HD_NONE, 0, 0, 0, 0, 0, ret); }
KRETFUNC_PROBE(cap_settime, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(17, 2, ret); }
KRETFUNC_PROBE(bpf_lsm_settime, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(17, 10, ret); }
/* hook socket_connect (id 18): security_socket_connect, decoder SOCKADDR (x0 = a0, x1 = a1, x2 = a2) */
KFUNC_PROBE(security_socket_connect, u64 a0, u64 a1, u64 a2) { return lsmt_hook_enter(18, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_socket_connect, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_hook_exit(ctx, 18, LSMT_HD_SOCKADDR, 0, a0, a1, a2, 0, ret); }
KRETFUNC_PROBE(selinux_socket_connect, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(18, 3, ret); }
KRETFUNC_PROBE(hook_socket_connect, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(18, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_socket_connect, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(18, 10, ret); }
/* hook task_fix_setuid (id 19): security_task_fix_setuid, decoder SETID (x0 = a0, x1 = a2) */
KFUNC_PROBE(security_task_fix_setuid, u64 a0, u64 a1, u64 a2) { return lsmt_hook_enter(19, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_task_fix_setuid, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_hook_exit(ctx, 19, LSMT_HD_SETID, 0, a0, a2, 0, 0, ret); }
KRETFUNC_PROBE(cap_task_fix_setuid, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(19, 2, ret); }
KRETFUNC_PROBE(bpf_lsm_task_fix_setuid, u64 a0, u64 a1, u64 a2, int ret) { return lsmt_impl_exit(19, 10, ret); }
/* hook task_kill (id 20): security_task_kill, decoder KILL (x0 = a0, x1 = a2) */
KFUNC_PROBE(security_task_kill, u64 a0, u64 a1, u64 a2, u64 a3) { return lsmt_hook_enter(20, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_task_kill, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_hook_exit(ctx, 20, LSMT_HD_KILL, 0, a0, a2, 0, 0, ret); }
KRETFUNC_PROBE(selinux_task_kill, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(20, 3, ret); }
KRETFUNC_PROBE(hook_task_kill, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(20, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_task_kill, u64 a0, u64 a1, u64 a2, u64 a3, int ret) { return lsmt_impl_exit(20, 10, ret); }
/* hook unix_may_send (id 21): security_unix_may_send, decoder SOCK (x0 = a0) */
KFUNC_PROBE(security_unix_may_send, u64 a0, u64 a1) { return lsmt_hook_enter(21, 0, 0, 0, 0); }
KRETFUNC_PROBE(security_unix_may_send, u64 a0, u64 a1, int ret) { return lsmt_hook_exit(ctx, 21, LSMT_HD_SOCK, 0, a0, 0, 0, 0, ret); }
KRETFUNC_PROBE(selinux_socket_unix_may_send, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(21, 3, ret); }
KRETFUNC_PROBE(hook_unix_may_send, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(21, 7, ret); }
KRETFUNC_PROBE(bpf_lsm_unix_may_send, u64 a0, u64 a1, int ret) { return lsmt_impl_exit(21, 10, ret); }
