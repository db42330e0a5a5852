"""The benchmark suite of lakehouse-ops (``invoke bench``, docs/PERFORMANCE.md).

Every figure times the tool and the raw docker/compose command doing the same work, in the
same run and interleaved, so that load from anything else on the machine hits both sides.
"""
