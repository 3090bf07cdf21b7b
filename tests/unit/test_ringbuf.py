"""The ring-buffer walker (lsmtrace/ringbuf.py) on a ring laid out like the
kernel's (kernel/bpf/ringbuf.c): the consumer page, the producer page, then the
data pages mapped twice in a row. Busy, discarded and wrapping records, and a
record of the wrong size."""

from __future__ import annotations

import struct

import pytest

from lsmtrace.ringbuf import BUSY, DISCARD, HDR, RingBuffer, record_stride

PAGE = 4096
SIZE = 4096  # data area: one page (a power of two)
REC = 40  # payload size of our fake event (stride 48: records cross the end)


class FakeRing:
    """Consumer page, producer page + data mapped twice, as bytearrays."""

    def __init__(self) -> None:
        self.cons = bytearray(PAGE)
        self.data = bytearray(PAGE + 2 * SIZE)  # producer page, then data x2
        self.prod = 0

    def put(self, payload: bytes, flags: int = 0, length: int | None = None) -> int:
        """Write one record at the producer position; returns its position."""
        pos = self.prod
        n = len(payload) if length is None else length
        rec = struct.pack("<II", n | flags, 0) + payload
        rec += b"\0" * (record_stride(len(payload)) - len(rec))
        for i, b in enumerate(rec):  # both mappings of the data area
            off = (pos + i) % SIZE
            self.data[PAGE + off] = b
            self.data[PAGE + SIZE + off] = b
        self.prod = pos + record_stride(len(payload))
        struct.pack_into("<Q", self.data, 0, self.prod)
        return pos

    def set_flags(self, pos: int, flags: int, length: int = REC) -> None:
        for base in (PAGE, PAGE + SIZE):
            struct.pack_into("<I", self.data, base + pos % SIZE, length | flags)

    def reader(self) -> RingBuffer:
        rb = RingBuffer.__new__(RingBuffer)  # no map: the walker only
        rb.size, rb.mask, rb._page = SIZE, SIZE - 1, PAGE
        rb._cons, rb._data = self.cons, self.data  # type: ignore[assignment]
        rb.delivered, rb.malformed, rb.record_size = 0, 0, REC
        return rb

    @property
    def consumer(self) -> int:
        return int(struct.unpack_from("<Q", self.cons, 0)[0])


def payload(i: int) -> bytes:
    return struct.pack("<Q", i) + bytes([i % 256]) * (REC - 8)


def collect(rb: RingBuffer) -> list[int]:
    got: list[int] = []

    def cb(chunk: bytes, offsets: list[int]) -> None:
        got.extend(struct.unpack_from("<Q", chunk, o)[0] for o in offsets)

    rb.consume(cb)
    return got


def test_committed_records_in_one_batch() -> None:
    ring = FakeRing()
    for i in range(5):
        ring.put(payload(i))
    batches: list[tuple[bytes, list[int]]] = []
    rb = ring.reader()
    assert rb.consume(lambda c, o: batches.append((c, o))) == 5
    assert len(batches) == 1
    chunk, offsets = batches[0]
    assert offsets == [HDR + i * record_stride(REC) for i in range(5)]
    assert [chunk[o : o + REC] for o in offsets] == [payload(i) for i in range(5)]
    assert ring.consumer == ring.prod  # space released
    assert rb.delivered == 5


def test_busy_record_stops_the_walk_until_committed() -> None:
    ring = FakeRing()
    ring.put(payload(0))
    busy = ring.put(payload(1))
    ring.put(payload(2))
    ring.set_flags(busy, BUSY)
    rb = ring.reader()
    assert collect(rb) == [0]
    assert ring.consumer == busy  # nothing past the record being written
    assert collect(rb) == []  # still busy: nothing more, no spin
    ring.set_flags(busy, 0)
    assert collect(rb) == [1, 2]
    assert ring.consumer == ring.prod


def test_discarded_records_are_skipped_and_released() -> None:
    ring = FakeRing()
    ring.put(payload(0))
    gone = ring.put(payload(1))
    ring.put(payload(2))
    ring.set_flags(gone, DISCARD)
    rb = ring.reader()
    assert collect(rb) == [0, 2]
    assert ring.consumer == ring.prod
    assert rb.delivered == 2


def test_only_discarded_records_release_space_without_a_callback() -> None:
    ring = FakeRing()
    ring.set_flags(ring.put(payload(0)), DISCARD)
    calls: list[object] = []
    rb = ring.reader()
    assert rb.consume(lambda c, o: calls.append(o)) == 0
    assert calls == []
    assert ring.consumer == ring.prod


def test_records_wrapping_the_end_read_contiguously() -> None:
    ring = FakeRing()
    stride = record_stride(REC)
    n = SIZE // stride  # fill up to just below the end
    assert SIZE % stride  # so that the next record crosses the end
    for i in range(n):
        ring.put(payload(i))
    rb = ring.reader()
    assert collect(rb) == list(range(n))
    # the next record starts before the end of the area and ends after it
    for i in range(n, n + 4):
        ring.put(payload(i))
    assert ring.consumer % SIZE + stride > SIZE
    assert collect(rb) == list(range(n, n + 4))
    assert ring.consumer == ring.prod


@pytest.mark.parametrize("length", [REC - 8, REC + 8])
def test_wrong_size_record_is_counted_not_delivered(length: int) -> None:
    """A C/Python layout mismatch shows as malformed records, and the walk
    goes on past them (the stride comes from the kernel's record header)."""
    ring = FakeRing()
    ring.put(payload(0))
    ring.put(b"\x01" * length)
    ring.put(payload(2))
    rb = ring.reader()
    assert collect(rb) == [0, 2]
    assert rb.malformed == 1
    assert ring.consumer == ring.prod


@pytest.mark.parametrize("seed", range(20))
def test_whole_run_shortcut_delivers_what_the_walk_does(seed: int) -> None:
    """consume() takes a run of committed records of our size in one strided
    read of their headers; any busy, discarded or odd-sized record sends it to
    the record-by-record walk. Both give the same records, batches, releases."""
    import random

    rnd = random.Random(seed)
    n = rnd.randrange(1, 70)
    plan: list[object] = [0] * n  # even seeds: all clean, the shortcut's case
    if seed % 2:
        plan = [rnd.choice([0] * 6 + [BUSY, DISCARD, "odd"]) for _ in range(n)]
    shortcuts: list[int] = []

    def run(shortcut: bool) -> tuple[list[list[int]], int, int, int]:
        ring = FakeRing()
        ring.prod = rnd_start  # records cross the end of the data area
        struct.pack_into("<Q", ring.cons, 0, ring.prod)
        busy = []
        for i, what in enumerate(plan):
            if what == "odd":
                ring.put(payload(i)[:-8])
                continue
            pos = ring.put(payload(i))
            if what:
                ring.set_flags(pos, what)
                if what == BUSY:
                    busy.append(pos)
        rb = ring.reader()
        if shortcut:
            real = rb._committed_run

            def counted(start: int, avail: int) -> int:
                shortcuts.append(real(start, avail))
                return shortcuts[-1]

            rb._committed_run = counted  # type: ignore[method-assign]
        else:
            rb._committed_run = lambda start, avail: 0  # type: ignore[method-assign]
        got: list[list[int]] = []

        def cb(chunk: bytes, offsets: list[int]) -> None:
            got.append([struct.unpack_from("<Q", chunk, o)[0] for o in offsets])

        rb.consume(cb)
        for pos in busy:  # commit them: the rest comes
            ring.set_flags(pos, 0)
        rb.consume(cb)
        return got, ring.consumer - ring.prod, rb.delivered, rb.malformed

    rnd_start = rnd.randrange(0, SIZE // 8) * 8
    fast, slow = run(True), run(False)
    assert fast[1:] == slow[1:]
    assert fast[1] == 0  # everything released in the end
    assert [r for b in fast[0] for r in b] == [r for b in slow[0] for r in b]
    if not seed % 2:
        assert fast[0] == slow[0] == [list(range(n))]
        assert shortcuts[0] == n  # taken, for all n records at once
