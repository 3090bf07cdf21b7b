"""`lsmtrace tui`: a Textual front end for debugging denials, live or from a recording.

Pure modules (importable without textual): ``model`` (bounded history, filters,
statistics, process tree), ``explain`` (who denied and which rule would allow it)
and ``sources`` (the live tracer thread and the recording reader, both posting
merged batches through a callback). Everything else is Textual: ``app`` (wiring
and the CLI entry points), one widget per module, ``messages`` and ``tui.tcss``.
"""
