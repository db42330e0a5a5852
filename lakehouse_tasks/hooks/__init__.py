"""The plugin system, a leaf of the package (modelled on pluggy's eggsample and tox 4's
``plugin/``).

* :mod:`.specs`: every hook specification, grouped by lifecycle phase;
* :mod:`.types`: the values hooks carry (``AccessURL``, ``ExtraArtefact``, ``PluginInfo``);
* :mod:`.manager`: the typed facade ``LakehousePlugins`` and the process's manager;
* :mod:`.emit`: the one way the lifecycle sends an event (always with the resolved environment);
* :mod:`.reference`: the generated hook reference of docs/PLUGINS.md;
* :mod:`.builtin`: the host's own behaviour, registered like any plugin.

Nothing here imports a module above the core floor (errors, checks, events, environment,
paths); ``Project`` appears in annotations only. Plugins import :mod:`lakehouse_tasks.plugin`,
not these modules.
"""
