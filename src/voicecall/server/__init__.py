"""The HTTP side of voicecall: carrier webhook listener, control listener, JSON-RPC, metrics.

Import the submodules directly (``voicecall.server.control``, ``.webhook``, ``.methods``);
this package stays import-light so ``voicecall.tool`` can share the method table.
"""

__all__: list[str] = []
