"""The plugin SDK: stdlib only, no trio, nothing from kestra_trio outside this package.

See docs/plugins.md for the protocol, which plugins in any language can speak.
"""

from kestra_trio.sdk.context import ActionFailed as ActionFailed
from kestra_trio.sdk.context import Context as Context
from kestra_trio.sdk.context import Logger as Logger
from kestra_trio.sdk.context import Plugin as Plugin
from kestra_trio.sdk.context import Secrets as Secrets
from kestra_trio.sdk.protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from kestra_trio.sdk.protocol import ProtocolError as ProtocolError
from kestra_trio.sdk.context import MAX_RECORD_BYTES as MAX_RECORD_BYTES
from kestra_trio.sdk.context import bounded_log_record as bounded_log_record
from kestra_trio.sdk.context import system_exit_failure as system_exit_failure
from kestra_trio.sdk.protocol import MAX_RESULT_BYTES as MAX_RESULT_BYTES
