"""What every handler works with: the running service and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from kestra_trio.secrets.masking import Masker
from kestra_trio.server.log import ServerLog
from kestra_trio.service.app import Service
from kestra_trio.storage.db import Database
from kestra_trio.storage.tokens import TokenStore
from kestra_trio.storage.workflows import WorkflowStore

MIB = 1024 * 1024
#: largest request line + headers (431 beyond)
MAX_HEAD_BYTES = 16 * 1024
#: longest request target, path and query string (414 beyond)
MAX_TARGET_BYTES = 8 * 1024
#: seconds a request body may take to arrive (408 after)
BODY_SECONDS = 30.0


@dataclass
class ApiContext:
    service: Service
    log: ServerLog
    #: secret values (KESTRA_TRIO_SECRET_*) masked in every answer
    masker: Masker
    #: tokens are required even while none exists (a non-loopback --host: no token, no access)
    tokens_always_required: bool = False
    max_body_bytes: int = MIB
    body_seconds: float = BODY_SECONDS
    #: secrets by name, for webhook keys written `{{ secrets.NAME }}`
    secrets: dict[str, str] = field(default_factory=dict)
    #: the connection requests read through (None: the service's). A server gives the API its
    #: own, so reads (tokens, registry, pages, SSE follows) never queue behind the writer
    #: connection's transactions; every write still goes through the service's.
    reads: Database | None = None

    @property
    def db(self) -> Database:
        return self.reads or self.service.db

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.db)

    @property
    def workflows(self) -> WorkflowStore:
        return WorkflowStore(self.db)

    @property
    def stopping(self) -> bool:
        return self.service.stopping.is_set()
