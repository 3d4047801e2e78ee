"""The embedded default's broker: kombu's filesystem transport, with atomic writes.

kombu's filesystem transport creates a message file and then writes into it,
while a consumer in another process (or thread) may already list, move and
read the still-empty file, failing with a JSON decode error.  This transport
writes each message to a scratch file first and renames it into the queue
folder: a rename is atomic, so consumers only ever see complete messages.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class AtomicChannel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        scratch = os.path.join(os.path.dirname(os.path.abspath(folder)), "scratch")
        os.makedirs(scratch, exist_ok=True)
        temporary = os.path.join(scratch, name)
        try:
            with open(temporary, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    Channel = AtomicChannel
