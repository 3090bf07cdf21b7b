/* hook bpf (id 1): security_bpf, decoder BPF (x0 = a0, x1 = a2) */
int lsmt_kp_bpf(struct pt_regs *ctx) { return lsmt_hook_enter(1, PT_REGS_PARM1(ctx), PT_REGS_PARM3(ctx), 0, 0); }
int lsmt_krp_bpf(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 1, LSMT_HD_BPF, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_bpf(struct pt_regs *ctx) { return lsmt_impl_exit(1, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_bpf(struct pt_regs *ctx) { return lsmt_impl_exit(1, 10, (s32)PT_REGS_RC(ctx)); }
/* hook bprm_check_security (id 2): security_bprm_check, decoder BPRM (x0 = a0) */
int lsmt_kp_bprm_check_security(struct pt_regs *ctx) { return lsmt_hook_enter(2, PT_REGS_PARM1(ctx), 0, 0, 0); }
int lsmt_krp_bprm_check_security(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 2, LSMT_HD_BPRM, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_bprm_check_security(struct pt_regs *ctx) { return lsmt_impl_exit(2, 10, (s32)PT_REGS_RC(ctx)); }
/* hook capable (id 3): security_capable, decoder CAP (x0 = a2, x1 = a3) */
int lsmt_kp_capable(struct pt_regs *ctx) { return lsmt_hook_enter(3, PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx), 0, 0); }
int lsmt_krp_capable(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 3, LSMT_HD_CAP, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_cap_capable(struct pt_regs *ctx) { return lsmt_impl_exit(3, 2, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_capable(struct pt_regs *ctx) { return lsmt_impl_exit(3, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_capable(struct pt_regs *ctx) { return lsmt_impl_exit(3, 10, (s32)PT_REGS_RC(ctx)); }
/* hook cred_prepare (id 4): security_prepare_creds, decoder NONE */
int lsmt_kp_cred_prepare(struct pt_regs *ctx) { return lsmt_hook_enter(4, 0, 0, 0, 0); }
int lsmt_krp_cred_prepare(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 4, LSMT_HD_NONE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_cred_prepare(struct pt_regs *ctx) { return lsmt_impl_exit(4, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_cred_prepare(struct pt_regs *ctx) { return lsmt_impl_exit(4, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_cred_prepare(struct pt_regs *ctx) { return lsmt_impl_exit(4, 10, (s32)PT_REGS_RC(ctx)); }
/* hook file_open (id 5): security_file_open, decoder FILE (x0 = a0) */
int lsmt_kp_file_open(struct pt_regs *ctx) { return lsmt_hook_enter(5, PT_REGS_PARM1(ctx), 0, 0, 0); }
int lsmt_krp_file_open(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 5, LSMT_HD_FILE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_file_open(struct pt_regs *ctx) { return lsmt_impl_exit(5, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_file_open(struct pt_regs *ctx) { return lsmt_impl_exit(5, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_file_open(struct pt_regs *ctx) { return lsmt_impl_exit(5, 10, (s32)PT_REGS_RC(ctx)); }
/* hook file_permission (id 6): security_file_permission, decoder FILE_MASK (x0 = a0, x1 = a1) */
int lsmt_kp_file_permission(struct pt_regs *ctx) { return lsmt_hook_enter(6, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, 0); }
int lsmt_krp_file_permission(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 6, LSMT_HD_FILE_MASK, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_file_permission(struct pt_regs *ctx) { return lsmt_impl_exit(6, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_file_permission(struct pt_regs *ctx) { return lsmt_impl_exit(6, 10, (s32)PT_REGS_RC(ctx)); }
/* hook inode_rename (id 8): security_inode_rename, decoder DENTRY2 (x0 = a1, x1 = a3) */
int lsmt_kp_inode_rename(struct pt_regs *ctx) { return lsmt_hook_enter(8, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), 0, 0); }
int lsmt_krp_inode_rename(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 8, LSMT_HD_DENTRY2, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_inode_rename(struct pt_regs *ctx) { return lsmt_impl_exit(8, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_inode_rename(struct pt_regs *ctx) { return lsmt_impl_exit(8, 10, (s32)PT_REGS_RC(ctx)); }
/* hook inode_setxattr (id 9): security_inode_setxattr, decoder NONE */
int lsmt_kp_inode_setxattr(struct pt_regs *ctx) { return lsmt_hook_enter(9, 0, 0, 0, 0); }
int lsmt_krp_inode_setxattr(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 9, LSMT_HD_NONE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_inode_setxattr(struct pt_regs *ctx) { return lsmt_impl_exit(9, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_inode_setxattr(struct pt_regs *ctx) { return lsmt_impl_exit(9, 10, (s32)PT_REGS_RC(ctx)); }
/* hook kernel_read_file (id 10): security_kernel_read_file, decoder READ_FILE (x0 = a0, x1 = a1) */
int lsmt_kp_kernel_read_file(struct pt_regs *ctx) { return lsmt_hook_enter(10, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, 0); }
int lsmt_krp_kernel_read_file(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 10, LSMT_HD_READ_FILE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_kernel_read_file(struct pt_regs *ctx) { return lsmt_impl_exit(10, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_kernel_read_file(struct pt_regs *ctx) { return lsmt_impl_exit(10, 10, (s32)PT_REGS_RC(ctx)); }
/* hook locked_down (id 11): security_locked_down, decoder LOCKDOWN (x0 = a0) */
int lsmt_kp_locked_down(struct pt_regs *ctx) { return lsmt_hook_enter(11, PT_REGS_PARM1(ctx), 0, 0, 0); }
int lsmt_krp_locked_down(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 11, LSMT_HD_LOCKDOWN, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_locked_down(struct pt_regs *ctx) { return lsmt_impl_exit(11, 10, (s32)PT_REGS_RC(ctx)); }
/* hook mmap_file (id 12): security_mmap_file, decoder MMAP (x0 = a0, x1 = a1, x2 = a2) */
int lsmt_kp_mmap_file(struct pt_regs *ctx) { return lsmt_hook_enter(12, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), 0); }
int lsmt_krp_mmap_file(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 12, LSMT_HD_MMAP, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_mmap_file(struct pt_regs *ctx) { return lsmt_impl_exit(12, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_mmap_file(struct pt_regs *ctx) { return lsmt_impl_exit(12, 10, (s32)PT_REGS_RC(ctx)); }
/* hook path_chmod (id 13): security_path_chmod, decoder PATH (x0 = a0, x1 = a1) */
int lsmt_kp_path_chmod(struct pt_regs *ctx) { return lsmt_hook_enter(13, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, 0); }
int lsmt_krp_path_chmod(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 13, LSMT_HD_PATH, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_path_chmod(struct pt_regs *ctx) { return lsmt_impl_exit(13, 10, (s32)PT_REGS_RC(ctx)); }
/* hook sb_alloc_security (id 14): security_sb_alloc, decoder NONE */
int lsmt_kp_sb_alloc_security(struct pt_regs *ctx) { return lsmt_hook_enter(14, 0, 0, 0, 0); }
int lsmt_krp_sb_alloc_security(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 14, LSMT_HD_NONE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_sb_alloc_security(struct pt_regs *ctx) { return lsmt_impl_exit(14, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_sb_alloc_security(struct pt_regs *ctx) { return lsmt_impl_exit(14, 10, (s32)PT_REGS_RC(ctx)); }
/* hook sb_mount (id 16): security_sb_mount, decoder MOUNT (x0 = a0, x1 = a1, x2 = a2, x3 = a3) */
int lsmt_kp_sb_mount(struct pt_regs *ctx) { return lsmt_hook_enter(16, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), PT_REGS_PARM4(ctx)); }
int lsmt_krp_sb_mount(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 16, LSMT_HD_MOUNT, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_mount(struct pt_regs *ctx) { return lsmt_impl_exit(16, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_sb_mount(struct pt_regs *ctx) { return lsmt_impl_exit(16, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_sb_mount(struct pt_regs *ctx) { return lsmt_impl_exit(16, 10, (s32)PT_REGS_RC(ctx)); }
/* hook settime (id 17): security_settime64, decoder NONE */
int lsmt_kp_settime(struct pt_regs *ctx) { return lsmt_hook_enter(17, 0, 0, 0, 0); }
int lsmt_krp_settime(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 17, LSMT_HD_NONE, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_cap_settime(struct pt_regs *ctx) { return lsmt_impl_exit(17, 2, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_settime(struct pt_regs *ctx) { return lsmt_impl_exit(17, 10, (s32)PT_REGS_RC(ctx)); }
/* hook socket_connect (id 18): security_socket_connect, decoder SOCKADDR (x0 = a0, x1 = a1, x2 = a2) */
int lsmt_kp_socket_connect(struct pt_regs *ctx) { return lsmt_hook_enter(18, PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM3(ctx), 0); }
int lsmt_krp_socket_connect(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 18, LSMT_HD_SOCKADDR, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_socket_connect(struct pt_regs *ctx) { return lsmt_impl_exit(18, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_socket_connect(struct pt_regs *ctx) { return lsmt_impl_exit(18, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_socket_connect(struct pt_regs *ctx) { return lsmt_impl_exit(18, 10, (s32)PT_REGS_RC(ctx)); }
/* hook task_fix_setuid (id 19): security_task_fix_setuid, decoder SETID (x0 = a0, x1 = a2) */
int lsmt_kp_task_fix_setuid(struct pt_regs *ctx) { return lsmt_hook_enter(19, PT_REGS_PARM1(ctx), PT_REGS_PARM3(ctx), 0, 0); }
int lsmt_krp_task_fix_setuid(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 19, LSMT_HD_SETID, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_cap_task_fix_setuid(struct pt_regs *ctx) { return lsmt_impl_exit(19, 2, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_task_fix_setuid(struct pt_regs *ctx) { return lsmt_impl_exit(19, 10, (s32)PT_REGS_RC(ctx)); }
/* hook task_kill (id 20): security_task_kill, decoder KILL (x0 = a0, x1 = a2) */
int lsmt_kp_task_kill(struct pt_regs *ctx) { return lsmt_hook_enter(20, PT_REGS_PARM1(ctx), PT_REGS_PARM3(ctx), 0, 0); }
int lsmt_krp_task_kill(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 20, LSMT_HD_KILL, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_task_kill(struct pt_regs *ctx) { return lsmt_impl_exit(20, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_task_kill(struct pt_regs *ctx) { return lsmt_impl_exit(20, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_task_kill(struct pt_regs *ctx) { return lsmt_impl_exit(20, 10, (s32)PT_REGS_RC(ctx)); }
/* hook unix_may_send (id 21): security_unix_may_send, decoder SOCK (x0 = a0) */
int lsmt_kp_unix_may_send(struct pt_regs *ctx) { return lsmt_hook_enter(21, PT_REGS_PARM1(ctx), 0, 0, 0); }
int lsmt_krp_unix_may_send(struct pt_regs *ctx) { return lsmt_hook_exit(ctx, 21, LSMT_HD_SOCK, 1, 0, 0, 0, 0, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_selinux_socket_unix_may_send(struct pt_regs *ctx) { return lsmt_impl_exit(21, 3, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_hook_unix_may_send(struct pt_regs *ctx) { return lsmt_impl_exit(21, 7, (s32)PT_REGS_RC(ctx)); }
int lsmt_kri_bpf_lsm_unix_may_send(struct pt_regs *ctx) { return lsmt_impl_exit(21, 10, (s32)PT_REGS_RC(ctx)); }
