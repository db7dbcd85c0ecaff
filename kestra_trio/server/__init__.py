"""`kestra-trio server`: the service root plus an HTTP API, in one trio process.

    run_server(config)                      server/run.py
    ├─ API tokens checked                   before anything listens (a non-loopback host needs one)
    └─ open_service(...)                    database, collector, watchdog, recovery, worker, signals
        ├─ server parts                     SERVER_PARTS: the HTTP listener, then (issue 10c) triggers
        └─ drain                            first signal: 503 to new starts, running tasks finish within
                                            --drain-timeout, then `server shutdown`; listener closed last

Libraries: hypercorn's trio worker (`hypercorn.trio.serve`) is the HTTP/1.1 + HTTP/2 server —
it runs in our own nursery, reports the addresses it bound (port 0) and closes gracefully on a
trigger; Starlette (anyio, so trio) gives routing, requests, body limits and — for the web view —
static files and mounts. The API's routes, their parameters, bodies and answers are declared
once (`http/spec.py`): the router, the request checks and `/api/v1/openapi.json` come from there.
"""
