"""Make Landlock denials from a process that has no syscall audit context.

Start it BEFORE audit is enabled for the first time since boot (a process
forked before that never gets an audit context), then let capture.py write the
hex paths to FIFO. Its records come alone, as under an `-a never,task` rule.

    python3 pre_helper.py FIFO &
"""

import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
with open(sys.argv[1]) as f:
    paths = [bytes.fromhex(x) for x in f.read().split()]
attr = ctypes.create_string_buffer(struct.pack("<Q", 1 << 2), 8)  # READ_FILE
fd = libc.syscall(444, attr, ctypes.c_size_t(8), ctypes.c_uint32(0))
assert fd >= 0, ctypes.get_errno()
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(446, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0
out = []
for p in paths:
    try:
        os.close(os.open(p, os.O_RDONLY))
        out.append("ok")
    except OSError as e:
        out.append(str(e.errno))
print(os.getpid(), out, flush=True)
