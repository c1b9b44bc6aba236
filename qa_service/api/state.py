"""What the running app holds: settings, the database, the audio store and the job queue.

Built once by :func:`qa_service.api.app.create_app` and kept on ``app.state``; routes
reach it through the typed dependencies of :mod:`qa_service.api.deps`, never as globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from qa_service.api.throttle import LoginThrottle
from qa_service.ingest.store import AudioStore
from qa_service.settings import Settings

if TYPE_CHECKING:
    from qa_service.worker.queue import JobQueue


@dataclass
class ServiceState:
    """The app's long-lived resources (one per process)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: AudioStore
    queue: JobQueue
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)

    @property
    def upload_tmp_dir(self) -> Path:
        """Where uploads stream to before they are checked and stored (local disk).

        One folder per process, named by its pid: a process killed mid-upload leaves its
        partial body there, and the next ``serve`` removes the folders of dead processes
        (:func:`qa_service.api.uploads.remove_orphaned_spools`) without touching those of
        live ones sharing the data directory.
        """
        return self.settings.data_dir / "tmp" / "uploads" / f"p{os.getpid()}"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 1024 * 1024)
