"""How ``authserver serve`` runs the application: uvicorn, and the parts of it we replace.

The application (``authserver.web``) is plain ASGI and knows nothing of this package beyond asking whether
the server is draining. Everything here is about sockets, processes and signals:

========================  ================================================================================
``http_protocol.py``      uvicorn's ``http=``: its httptools protocol, with each response's head held until
                          the body's first write so both leave in one ``send`` (one segment instead of two
                          per response), and ``Connection: close`` on every response once draining.
``balanced_loop.py``      uvicorn's ``loop=`` with ``--workers N``: uvloop, with an accept loop that hands
                          each new connection (before a byte of it is read) to the worker holding fewest.
``connection_shares.py``  the table those workers share: one slot per worker (pid, connections held,
                          connections handed to it), in a private directory beside each worker's doorbell
                          (the Unix socket a handed connection arrives on).
``graceful_shutdown.py``  SIGTERM drains first (readiness 503, keep-alive off) for ``shutdown_drain``, then
                          uvicorn's own graceful stop; the application installs it at startup.
========================  ================================================================================

How they meet: ``cli.py`` (``cmd_serve``) creates the connection table when there is more than one worker
and balancing is on (``AUTHSERVER_BALANCE_CONNECTIONS``), names ``UVICORN_LOOP`` and ``UVICORN_HTTP`` to
uvicorn, and removes the table when uvicorn returns. Each worker then runs the application factory; its
startup installs the drain. The benchmark's ceiling app (``bench/processes.py``) runs on the same loop and
protocol, so its numbers stay comparable with the server's.

Why not uvicorn's defaults: workers sharing a listening socket race to accept, and a burst of connections
lands unevenly (the busier worker's queue becomes the server's tail latency); and uvicorn writes a
response's head and body separately, which the client wakes up for twice. Both costs are per connection or
per response, which is why they are paid for here, once, rather than in the application.
"""
