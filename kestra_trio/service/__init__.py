"""The service: the parts a process opens once (database, collector, watchdog, signals,
recovery, retention) and the worker that claims and runs executions. `kestra-trio run`, the
Python API and (next) the server and the test harness all run executions through it."""
