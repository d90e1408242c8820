"""The web console under ``/console``: pages for marketing, customer managers, risk officers and
management, served by the same BentoML process as the API (same keys, roles and audit log).

:func:`serving.console.app.console_app` builds the Starlette app :mod:`serving.service` mounts
(not imported here, so ``crmscore campaign --help`` stays instant). Pages are rendered on
the server from Jinja2 templates (``templates/``) with one stylesheet (``static/``) and inline SVG
charts: nothing is fetched from the network and no script runs.
"""
