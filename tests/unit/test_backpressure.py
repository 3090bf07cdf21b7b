"""record --pause-on-loss: the BackPressure switch on a real process group
(no root: it stops and continues a child of the test)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lsmtrace.commands.record import BackPressure


def test_backpressure_stops_and_continues_the_group() -> None:
    """BackPressure on a real process group: stopped at the high mark, continued
    at the low one, and always continued at close()."""

    child = subprocess.Popen(["sleep", "30"], process_group=0)
    try:
        level = [0.0]
        bp = BackPressure(child.pid, lambda: level[0], high=0.5, low=0.1)

        def state() -> str:
            time.sleep(0.1)
            stat = Path(f"/proc/{child.pid}/stat").read_text()
            return stat.rsplit(")", 1)[1].split()[0]

        bp.check()
        assert state() == "S"
        level[0] = 0.6
        bp.check()
        assert bp.stopped
        assert state() == "T"
        level[0] = 0.3  # between the marks: stays stopped
        bp.check()
        assert state() == "T"
        level[0] = 0.05
        bp.check()
        assert state() == "S"
        level[0] = 0.9
        bp.check()
        assert state() == "T"
        bp.close()
        assert state() == "S"
        assert bp.pauses == 2
    finally:
        child.kill()
        child.wait()
