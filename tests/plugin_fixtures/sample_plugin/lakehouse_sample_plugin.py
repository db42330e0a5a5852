"""A sample lakehouse-ops plugin: records what it receives, contributes one URL and one check."""

from lakehouse_tasks.plugin import AccessURL, hookimpl, passed

RECEIVED_EVENTS = []


@hookimpl
def lakehouse_event(event):
    RECEIVED_EVENTS.append(event)


@hookimpl
def lakehouse_access_urls(env):
    return [AccessURL("Sample dashboard", "http://localhost:9999/", note=env.name)]


@hookimpl
def lakehouse_preflight_checks(project):
    return [passed("sample plugin is happy")]
