"""kestra-trio: a workflow engine on trio that records exactly what happened in every execution."""

__version__ = "0.1.0"

from kestra_trio.errors import ExitCode as ExitCode
from kestra_trio.errors import KestraTrioError as KestraTrioError
