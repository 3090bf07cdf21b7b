#!/bin/sh
# Kernel text patching under load, without lsmtrace: the reproducer of the guest
# crashes that multi-threaded TCG caused (docs/vm.md, "Boot"). Run it in a guest:
#   /usr/bin/python3 vagrant/vmtest.py run --kernel 6.1 --timeout 900 -- \
#       sh -c "$(cat vagrant/textpoke-stress.sh)"
#   VMTEST_ACCEL=tcg ...   # multi-threaded: hung (rcu stall, soft lockups) in ~1 min
# Each round plants and removes a kprobe on security_file_open and flips the
# static keys of the openat syscall tracepoints (text_poke_bp each time) while
# two loops keep opening files on the vCPUs. DUR seconds (default 240).
cd /sys/kernel/tracing || exit 1
dur=${DUR:-240}
for _ in 1 2; do (while :; do cat /etc/hostname >/dev/null; done) & done
end=$(($(date +%s) + dur))
i=0
while [ "$(date +%s)" -lt "$end" ]; do
	echo 'p:lt security_file_open' >kprobe_events
	echo 1 >events/kprobes/lt/enable
	echo 1 >events/syscalls/sys_enter_openat/enable
	echo 1 >events/syscalls/sys_exit_openat/enable
	echo 0 >events/kprobes/lt/enable
	echo 0 >events/syscalls/sys_enter_openat/enable
	echo 0 >events/syscalls/sys_exit_openat/enable
	echo >kprobe_events
	i=$((i + 1))
done
kill $(jobs -p)
echo "rounds: $i"
if dmesg | grep -E "Oops|BUG:|soft lockup|rcu: INFO"; then exit 1; fi
echo "no Oops, BUG, lockup or stall"
