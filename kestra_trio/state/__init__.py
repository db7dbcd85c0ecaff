from kestra_trio.state.states import TERMINAL as TERMINAL
from kestra_trio.state.states import AttemptState as AttemptState
from kestra_trio.state.states import Reason as Reason
from kestra_trio.state.states import State as State
from kestra_trio.state.transitions import transition as transition
