"""A batch consumer of a BPF ring buffer map, reading its mmap directly.

bcc's ring_buffer_poll() calls a ctypes callback per record (~1 µs each); this
reader walks the records of the shared mapping itself and hands the consumer a
whole batch as one contiguous bytes object, releasing ring space before the
batch is processed. The kernel side submits with BPF_RB_NO_WAKEUP unless a good
part of the ring is waiting, so the reader also wakes on a short timer.

Layout (kernel/bpf/ringbuf.c): page 0 holds consumer_pos (read-write for us);
page 1 holds producer_pos; then the data pages, mapped twice in a row so that a
record crossing the end reads contiguously. Each record has an 8-byte header:
u32 len (bit 31 BUSY, bit 30 DISCARD) and u32 page offset; records are 8-byte
aligned.
"""

from __future__ import annotations

import contextlib
import mmap
import select
import struct
from collections.abc import Callable

BUSY = 1 << 31
DISCARD = 1 << 30
HDR = 8
_u64 = struct.Struct("<Q")
_u32 = struct.Struct("<I")

# (chunk, offsets): each record's payload is chunk[off:off + size]
BatchCallback = Callable[[bytes, list[int]], None]


def record_stride(size: int) -> int:
    return (size + HDR + 7) & ~7


class RingBuffer:
    def __init__(self, map_fd: int, size: int, record_size: int | None = None) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size must be a power of two, not {size}")
        self.fd = map_fd
        self.size = size
        self.mask = size - 1
        page = mmap.PAGESIZE
        self._cons = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self._data = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._page = page
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)
        self.delivered = 0
        # records whose length is not sizeof(struct lsmt_event): never handed
        # over (a C/Python layout mismatch would show here first)
        self.record_size = record_size
        self.malformed = 0

    def close(self) -> None:
        self._epoll.close()
        self._cons.close()
        self._data.close()

    def _producer(self) -> int:
        return int(_u64.unpack_from(self._data, 0)[0])

    def _consumer(self) -> int:
        return int(_u64.unpack_from(self._cons, 0)[0])

    def available(self) -> int:
        return self._producer() - self._consumer()

    def consume(self, callback: BatchCallback) -> int:
        """Deliver every committed record; return how many."""
        total = 0
        data = self._data
        base = self._page
        while True:
            cons = self._consumer()
            prod = self._producer()
            if cons >= prod:
                return total
            start = cons & self.mask
            size = self.record_size
            if size is not None and (n := self._committed_run(start, prod - cons)):
                # the common case: whole records of our size, all committed
                stride = record_stride(size)
                pos = cons + n * stride
                offsets = list(range(HDR, n * stride, stride))
            else:
                pos, offsets = self._walk(cons, prod)
                if pos == cons:
                    return total  # the oldest record is still being written
            # The data area is mapped twice: the batch is contiguous past the end.
            chunk = data[base + start : base + start + (pos - cons)]
            _u64.pack_into(self._cons, 0, pos)
            if offsets:
                self.delivered += len(offsets)
                total += len(offsets)
                callback(chunk, offsets)

    def _walk(self, cons: int, prod: int) -> tuple[int, list[int]]:
        """Record by record from `cons`: where the walk stopped (a busy record
        or `prod`) and the offsets of the deliverable records from `cons`;
        discarded ones are skipped, ones of another size counted malformed."""
        data, base = self._data, self._page
        pos = cons
        offsets: list[int] = []
        while pos < prod:
            hdr = _u32.unpack_from(data, base + (pos & self.mask))[0]
            if hdr & BUSY:
                break
            length = hdr & ~(BUSY | DISCARD)
            if hdr & DISCARD:
                pass
            elif self.record_size is not None and length != self.record_size:
                self.malformed += 1
            else:
                offsets.append(pos - cons + HDR)
            pos += (length + HDR + 7) & ~7
        return pos, offsets

    def _committed_run(self, start: int, avail: int) -> int:
        """How many records from `start` on are committed records of
        record_size (neither busy nor discarded), if all the whole records in
        `avail` bytes are; else 0 (consume() then walks them one by one). The
        headers are read in the mapping itself, in one strided pass, before the
        records are copied: a record's data is written before its header says
        committed. Our programs submit only sizeof(struct lsmt_event), so the
        records are at every stride; a record of another size (a C/Python layout
        mismatch, which tests/bpf/test_payload_size.py guards) would shift them
        and almost surely fail the check, sending the batch to the walk, which
        counts it as malformed."""
        size = self.record_size
        assert size is not None
        stride = record_stride(size)
        n = avail // stride
        if n == 0:
            return 0
        lo = self._page + start
        with (
            memoryview(self._data) as mv,
            mv[lo : lo + n * stride] as run,
            run.cast("I") as words,
            words[:: stride // 4] as hdrs,
        ):
            lens = hdrs.tolist()
        return n if lens.count(size) == n else 0

    def poll(self, callback: BatchCallback, timeout: float) -> int:
        """Wait up to `timeout` seconds for a wakeup, then consume."""
        if self.available() == 0:
            with contextlib.suppress(InterruptedError):
                self._epoll.poll(timeout)
        return self.consume(callback)
