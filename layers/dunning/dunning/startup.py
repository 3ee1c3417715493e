"""No garbage collection during a function's cold start: its objects are made to last.

A cold start allocates about 80,000 (indexer) to 100,000 (sender) objects that live as long as the
process (modules, classes, pydantic validators, rulebooks, templates) and hardly any garbage (about 830
unreachable objects after the sender's). The collector's passes over them find nothing to free, and cost
10-45 ms of CPU of a cold start (measured with ``gc.callbacks``, docs/benchmarks.md).

Each handler module calls ``pause(__name__)`` before its other imports, and its handler calls ``resume()``
once the service is built, before the first record is processed: the objects made until then are moved
out of the collector's reach (``gc.freeze``), and collection runs as usual from there. The pause only
happens when Lambda's runtime imports the module as the handler (``app``, as ``Handler: app.handler``
names it), never when it is imported any other way: the local invoker (``dunning_local.invoke``) imports
handlers afresh, concurrently, in one long-lived process, where pausing the whole process's collector
would be wrong.
"""

from __future__ import annotations

import gc

HANDLER_MODULE = "app"

_paused = False


def pause(module: str) -> None:
    """Pause collection if ``module`` is the handler module Lambda imports (and collection is on)."""
    global _paused
    if module == HANDLER_MODULE and gc.isenabled() and not _paused:
        gc.disable()
        _paused = True


def resume() -> None:
    """End the pause, if there is one: what exists now is frozen, then collection resumes."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
