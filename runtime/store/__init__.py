"""Task store backends: implementations of `actors.store_port.TaskBackend`.

May import actors/ and protocol/; nothing else of runtime/.
"""

from runtime.store.errors import StoreOpenError
from runtime.store.memory import MemoryBackend, open_memory_backend
from runtime.store.sqlite import SQLiteBackend, open_sqlite_backend

__all__ = [
    "MemoryBackend",
    "SQLiteBackend",
    "StoreOpenError",
    "open_memory_backend",
    "open_sqlite_backend",
]
