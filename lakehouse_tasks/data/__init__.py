"""Data protection: backups, their store, the services stopped around them (issue 17's
``data/`` package).

- :mod:`.manifest`: what a backup is on disk (artefacts, manifest, verify record, checksums)
- :mod:`.store`: where backups live (destination, ids, listing, finding, free space)
- :mod:`.plan`: the stack as data to back up (databases, volume users, ``--only``)
- :mod:`.maintenance`: services stopped around a backup or restore, and their recovery
- :mod:`.backup`: making a backup (dumps and archives side by side, plugins' artefacts)
- :mod:`.tables`: backups rendered as tables

Every docker command goes through :mod:`lakehouse_tasks.engine`; the deployment target is the
backend object handed in.
"""
