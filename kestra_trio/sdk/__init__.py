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
