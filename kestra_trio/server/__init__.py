"""`kestra-trio server`: the service root plus an HTTP API, in one trio process.

    run_server(config)                      server/run.py
    ├─ token rule, --workflows DIR          on the database, before anything runs or listens
    └─ open_service(...)                    database, collector, watchdog, recovery, worker, signals
        ├─ the API's read connection        reads never queue behind the writer's transactions
        ├─ start_server_parts(...)          THE seam: triggers (issue 10c), then the HTTP listener
        └─ drain                            first signal: 503 to new starts, running executions finish
                                            within --drain-timeout, then `server shutdown`; the listener
                                            closes, then the service (every log line flushed)

Libraries: hypercorn's trio worker (`hypercorn.trio.serve`) is the HTTP/1.1 + HTTP/2 server —
it runs in our own nursery, reports the addresses it bound (port 0) and closes gracefully on a
trigger; Starlette (anyio, so trio) gives routing, requests and — for the web view — static
files and mounts. The API's routes, their parameters, bodies and answers are declared once
(`http/api.py` OPERATIONS, `http/spec.py`): the router, the request checks and
`/api/v1/openapi.json` come from there.
"""
