"""The engine package: the only code that builds or runs ``docker ...`` command lines.

One executor (:mod:`.executor`: :func:`~.executor.run`, the call log, tracing and the one
error translation :func:`~.executor.command_failure`) and the argv builders grouped by docker
noun, as python-on-whales' ``components/<noun>`` are:

- :mod:`.client`: the engine itself (``docker info``, versions, image ids)
- :mod:`.compose`: compose projects (python-on-whales' typed API for the state-changing calls)
- :mod:`.containers`: ps, inspect, states, events, exec, run, stop, start, rm
- :mod:`.stats`: CPU and memory samples (:mod:`.api` when the engine is local)
- :mod:`.volumes`: volumes and the throw-away containers that read and write them
- :mod:`.networks`, :mod:`.images` (the rehearsal's builds too), :mod:`.swarm`
- :mod:`.streams`: dumps and archives streamed to and from files
- :mod:`.api`: the direct engine API requests over the local socket (docs/ARCHITECTURE.md
  names each with its measured figure)

The rest of the package calls these functions with data and receives data. This ``__init__``
imports nothing, so that importing one noun stays cheap (CLI start-up).
"""
