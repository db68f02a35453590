"""`cloudorch ui`: a read-only web view of stacks, stages and releases, runs, drift and the graph.

It owns the views' data (`views.py`: plain JSON documents built through `run`, `fleet` and
`release`, each served as-is under `/api/...`), the SVG drawing of a dependency graph (`svg.py`),
and the web application (`app.py`: Starlette, Jinja2 templates with autoescaping, vendored htmx, a
strict Content-Security-Policy, a bearer token for any bind beyond this machine). Imported only by
the `ui` command (the optional extra `cloudorch[ui]`); it writes nothing, anywhere.
"""
