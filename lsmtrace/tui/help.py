"""The help screen: keys and the filter syntax."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]lsmtrace tui[/b]: LSM decisions, live or replayed. Denials are red.

[b]Keys[/b]
  q, ctrl+c  quit (the tracer detaches)  ?      this help
  f          edit the filter             /      search (n, N: next, previous)
  escape     back to the table           space  pause / resume
  d          denials only (toggle)       c      clear the history
  w          would-deny only (toggle: what --policy's candidate policy lacks)
  1 2 3      events, top, process tree   enter  focus the detail pane
  arrows, pgup, pgdn, home: move         end, G: follow new events

[b]Filter[/b] (applied as you type; all keys must match)
  hook:file_open  hook:sys_*   family:file   verdict:deny|allow|error
  lsm:apparmor  lsm:none (rung cannot tell)  errno:EACCES
  pid:1234  uid:1000  comm:nginx  container:web  unit:ssh.service
  /etc/shadow    a bare word: path substring    text:foo  the whole row
  -hook:capable  a leading '-' excludes         two values of one key: either
  would_deny:yes (wd:yes)  decisions the --policy file would deny; :no the rest

[b]Columns[/b]  PID COMM HOOK RESULT (errno:deciding LSM; '?': the rung cannot
tell DAC from an LSM; 'would-deny': the --policy file lacks a rule, magenta,
shown in the detail pane) CONTAINER/UNIT (when known) OBJECT. The status line shows
events, denials, the rate, [b]lost[/b] (kernel ring buffer full) and [b]dropped[/b]
(the screen fell behind a flood; history is bounded by --history).

Logs go to ~/.cache/lsmtrace/tui.log (--log FILE), never to the terminal.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP, id="help-text")
