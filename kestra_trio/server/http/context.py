"""What every handler works with: the running service and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from kestra_trio.secrets.masking import Masker
from kestra_trio.server.log import ServerLog
from kestra_trio.service.app import Service
from kestra_trio.storage.tokens import TokenStore

MIB = 1024 * 1024


@dataclass
class ApiContext:
    service: Service
    log: ServerLog
    #: secret values (KESTRA_TRIO_SECRET_*) masked in every answer
    masker: Masker
    #: tokens are required even while none exists (a non-loopback --host: no token, no access)
    tokens_always_required: bool = False
    max_body_bytes: int = MIB
    #: secrets by name, for webhook keys written `{{ secrets.NAME }}`
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.service.db)

    @property
    def stopping(self) -> bool:
        return self.service.stopping.is_set()
