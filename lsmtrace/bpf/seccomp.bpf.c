/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The seccomp filter run (hook rungs): which syscalls a seccomp filter refused.
 *
 * A filter's SECCOMP_RET_ERRNO (and a user notifier's or tracer's refusal)
 * makes the kernel skip the syscall: kernel/seccomp.c __seccomp_filter()
 * returns -1 after setting the return value, before any LSM hook runs. The
 * syscall's exit tracepoint still fires, with the filter's errno, and no hook
 * denied inside it: without this program an EPERM/EACCES from a filter reads
 * `dac`. An exit program on __seccomp_filter notes the refusal for the thread
 * the way a hook denial is noted (`pending`, common.h), so lsmt_sys_exit
 * names it `seccomp`. A filter that allows returns 0: nothing is noted.
 *
 * lsmtrace/hookgen.py writes the one-line wrapper (fexit with the function's
 * arity from BTF, or a kretprobe) when the kernel has the function; the
 * tracepoint rung has no such program (seccomp is seen there only through
 * its audit records).
 *
 * common.h and syscalls.bpf.c precede this file in the program text.
 */

static __always_inline int lsmt_seccomp_exit(s32 ret)
{
	if (ret == 0)
		return 0;
	/* hook id 0: no hook's exit takes it; the syscall's exit does */
	lsmt_note_denial(0, LSMT_LSM_SECCOMP, ret);
	return 0;
}
