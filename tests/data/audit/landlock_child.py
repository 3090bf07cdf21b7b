"""Open files inside a Landlock sandbox (handled: read_file, no rule); print JSON.

    python3 landlock_child.py [--repeat N] [--comm NAME] [--fifo FIFO] [HEXPATH...]

Prints {"pid", "errnos" (of the first round), "n" (opens done), "ns_per_open",
"cpu_ns_per_open"}, or
{"setup": errno} when Landlock is unavailable. Every open is denied with EACCES
(or fails with ENOENT for a missing file, before Landlock is asked).

With --fifo the hex paths are read from FIFO, blocking until someone writes
them: started BEFORE audit is first enabled since boot, this process has no
syscall audit context, so its records come alone, as under `-a never,task`
(capture.py --pre-pid/--pre-fifo).
"""

import ctypes
import json
import os
import struct
import sys
import time

args = sys.argv[1:]
repeat, fifo, comm = 1, None, None
while args and args[0].startswith("--"):
    opt, value, args = args[0], args[1], args[2:]
    if opt == "--repeat":
        repeat = int(value)
    elif opt == "--fifo":
        fifo = value
    elif opt == "--comm":
        comm = value
if fifo is not None:
    with open(fifo) as f:
        args = f.read().split()
paths = [bytes.fromhex(h) for h in args]

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
if comm is not None:  # PR_SET_NAME: a name tracers can filter on
    libc.prctl(15, ctypes.create_string_buffer(comm.encode()[:15]), 0, 0, 0)
attr = ctypes.create_string_buffer(struct.pack("<Q", 1 << 2), 8)  # READ_FILE
fd = libc.syscall(444, attr, ctypes.c_size_t(8), ctypes.c_uint32(0))
if fd < 0:
    print(json.dumps({"setup": ctypes.get_errno()}))
    sys.exit(0)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
errnos = []
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(repeat):
    for p in paths:
        try:
            os.close(os.open(p, os.O_RDONLY))
            errnos.append(0)
        except OSError as e:
            errnos.append(e.errno)
n = max(1, len(errnos))
ns = (time.perf_counter() - t0) * 1e9 / n
cpu = (time.process_time() - c0) * 1e9 / n
print(
    json.dumps(
        {
            "pid": os.getpid(),
            "errnos": errnos[: len(paths)],
            "n": len(errnos),
            "ns_per_open": ns,
            "cpu_ns_per_open": cpu,
        }
    )
)
