"""Task store backends: implementations of `actors.store_port.TaskBackend`."""

from runtime.store.memory import MemoryBackend, open_memory_backend
from runtime.store.sqlite import SQLiteBackend, open_sqlite_backend

__all__ = ["MemoryBackend", "SQLiteBackend", "open_memory_backend", "open_sqlite_backend"]
