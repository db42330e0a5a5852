"""``invoke serve``: a read-only status page, a JSON API and ``/metrics`` over one environment.

The page and the API show the same data objects the terminal tasks render (the health snapshot,
deploy history, lock, backups, schedule, plugins, events), gathered by :mod:`.status` from the
modules that own them; nothing here runs docker itself or writes anything but its own bounded
sample history and the access token.

* :mod:`.status`: one :class:`~.status.StatusReport` from the project's data sources.
* :mod:`.samples`: the small on-disk history the plots draw (CPU and memory per service).
* :mod:`.auth`: the access token (0600 in the state dir) and the sign-in cookie.
* :mod:`.metrics`: the report in the Prometheus exposition format (``prometheus_client``).
* :mod:`.page`: the HTML page and its script.
* :mod:`.app`: the Starlette application, the refresher thread and the uvicorn server.

Everything here is imported by the task body, never by ``invoke --list`` (start-up cost).
"""
