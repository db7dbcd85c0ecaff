"""`kestra-trio server`: the service root plus an HTTP API, in one trio process.

    run_server(config)                      server/run.py
    ├─ token rule                           on the database, before anything listens
    ├─ bind_listener(host, port)            the port is bound before anything with a side effect:
    │                                       a taken port is exit 2 with nothing claimed or fired
    ├─ --workflows DIR                      applied on the database
    └─ open_service(...)                    database, collector, watchdog, recovery, worker, signals
        ├─ the API's read connection        reads never queue behind the writer's transactions
        ├─ start_server_parts(...)          THE seam: triggers (issue 10c), then serving the bound port
        └─ drain                            first signal: 503 to new starts, running executions finish
                                            within --drain-timeout, then `server shutdown`; the listener
                                            closes, then the service (every log line flushed)

Libraries: hypercorn's trio worker (`hypercorn.trio.run.worker_serve`, what its `serve` runs,
given the sockets we bound) is the HTTP/1.1 + HTTP/2 server — it runs in our own nursery,
reports the addresses (port 0) and closes gracefully on a trigger; Starlette (anyio, so trio) gives routing, requests and — for the web view — static
files and mounts. The API's routes, their parameters, bodies and answers are declared once
(`http/api.py` OPERATIONS, `http/spec.py`): the router, the request checks and
`/api/v1/openapi.json` come from there.
"""
