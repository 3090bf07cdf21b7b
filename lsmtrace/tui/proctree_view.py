"""The process tree of denials: denied processes under their ancestors."""

from __future__ import annotations

from typing import Any

from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from lsmtrace.tui.model import ProcNode, Stats, denial_tree

MAX_NODES = 2000


class ProcTreeView(Tree[int]):
    """Rebuilt when the set of denials changed (cheap signature check)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("processes with denials", **kwargs)
        self.show_root = False
        self._signature: tuple[int, int] | None = None

    def update_from(self, stats: Stats) -> None:
        sig = (len(stats.deny_by_proc), stats.counters.deny)
        if sig == self._signature:
            return
        self._signature = sig
        roots = denial_tree(stats)
        self.clear()
        budget = [MAX_NODES]

        def add(parent: TreeNode[int], node: ProcNode) -> None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
            text = node.text
            if node.children:
                child = parent.add(text, data=node.pid, expand=True)
                for c in node.children:
                    add(child, c)
            else:
                parent.add_leaf(text, data=node.pid)

        for r in roots:
            add(self.root, r)
        if not roots:
            self.root.add_leaf("(no denials yet)")
        self.root.expand()
