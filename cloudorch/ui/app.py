"""The web application: Starlette routes over `views`, Jinja2 templates with autoescaping, vendored
htmx, and the headers that keep a page inert: a strict Content-Security-Policy (no inline script,
no other origin), no framing, no sniffing. With a token, every request must carry it."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cloudorch.errors import CloudorchError, ConfigError
from cloudorch.fleet.discover import Stack
from cloudorch.ui import svg, views

HERE = Path(__file__).resolve().parent
HTMX = "htmx-2.0.4.min.js"
COOKIE = "cloudorch_ui_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Guard(BaseHTTPMiddleware):
    """Security headers on every answer; with a token, 401 for any request that lacks it."""

    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    def _allowed(self, request: Request) -> bool:
        if not self.token:
            return True
        given = request.headers.get("authorization", "")
        bearer = given[7:] if given.lower().startswith("bearer ") else ""
        cookie = request.cookies.get(COOKIE, "")
        want = self.token.encode()
        return hmac.compare_digest(bearer.encode(), want) or hmac.compare_digest(cookie.encode(), want)

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/login" and self.token:
            given = request.query_params.get("token", "")
            if hmac.compare_digest(given.encode(), self.token.encode()):
                response: Response = RedirectResponse("/", status_code=303)
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            else:
                response = Response("401 Unauthorized: wrong token\n", status_code=401, media_type="text/plain")
        elif not self._allowed(request):
            response = Response(
                "401 Unauthorized: this server needs its token "
                "(Authorization: Bearer TOKEN, or open /login?token=TOKEN)\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="cloudorch"'},
            )
        else:
            response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers[k] = v
        return response


def create_app(paths: Sequence[Path], *, token: str | None = None, refresh_every: float = 5.0) -> Starlette:
    """The application for the stacks PATHs name (plan files, folders, fleet.yaml)."""
    catalog = views.Catalog(list(paths), every=refresh_every)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters["q"] = lambda v: quote(str(v), safe="")
    # a value as JSON text, escaped by autoescape like any text (`tojson` would show `\u003c` for `<`)
    env.filters["shown"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    env.globals["htmx"] = HTMX

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(**context), status_code=status)

    def failed(exc: CloudorchError, api: bool) -> Response:
        status = 404 if exc.message.startswith("no stack named") else 400
        if api:
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)
        return page("error.html", status=status, message=exc.message, hint=exc.hint)

    def guarded(fn: Callable[[Request], Response], api: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return fn(request)
            except CloudorchError as exc:
                return failed(exc, api)

        return endpoint

    def stack_of(request: Request) -> Stack:
        return catalog.stack(request.path_params["name"])

    def overview(_: Request) -> Response:
        return page("overview.html", doc=catalog.overview())

    def api_overview(_: Request) -> Response:
        return JSONResponse(catalog.overview())

    def stack(request: Request) -> Response:
        return page("stack.html", doc=views.stack_doc(stack_of(request)))

    def api_stack(request: Request) -> Response:
        return JSONResponse(views.stack_doc(stack_of(request)))

    def _serials(request: Request) -> tuple[int, int]:
        try:
            return int(request.query_params["old"]), int(request.query_params["new"])
        except (KeyError, ValueError):
            raise ConfigError("give two serials: ?old=N&new=M") from None

    def diff(request: Request) -> Response:
        return page("diff.html", doc=views.diff_doc(stack_of(request), *_serials(request)))

    def api_diff(request: Request) -> Response:
        return JSONResponse(views.diff_doc(stack_of(request), *_serials(request)))

    def live(request: Request) -> Response:
        s = stack_of(request)
        return page("live.html", doc=views.live_doc(s), name=s.name)

    def api_live(request: Request) -> Response:
        return JSONResponse(views.live_doc(stack_of(request)))

    def pipeline(request: Request) -> Response:
        s = stack_of(request)
        stages = _stages_of(s)
        newest = {r["name"]: r.get("last_run") for r in catalog.overview().get("stacks", [])}
        return page("pipeline.html", doc=views.pipeline_doc(s), name=s.name, stacks=stages,
                    last_runs={stage: newest.get(name) for stage, name in stages.items()})

    def api_pipeline(request: Request) -> Response:
        return JSONResponse(views.pipeline_doc(stack_of(request)))

    def _stages_of(s: Stack) -> dict[str, str]:
        """stage -> the stack name showing it (to link each stage of the pipeline to its stack)."""
        return {t.stage: t.name for t in catalog.fleet.stacks if t.plan_file == s.plan_file and t.stage}

    drawn: dict[str, tuple[tuple[int, Any], dict[str, Any], str]] = {}

    def graph_of(s: Stack) -> tuple[dict[str, Any], str]:
        """The graph document and its SVG, kept until the plan file or the stack's serial moves
        (a plan of thousands of resources takes longer to load than a page may)."""
        serial = next((r.get("serial") for r in catalog.overview().get("stacks", []) if r["name"] == s.name), None)
        key = (s.plan_file.stat().st_mtime_ns, serial)
        hit = drawn.get(s.name)
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        doc = views.graph_doc(s)
        stages = _stages_of(s)

        def link(node: dict[str, Any]) -> str | None:
            name = stages.get(node["stage"]) if node.get("stage") else s.name
            return f"/stack/{quote(name, safe='')}" if name else None

        picture = svg.render(doc, link=link)
        drawn[s.name] = (key, doc, picture)
        return doc, picture

    def graph(request: Request) -> Response:
        s = stack_of(request)
        doc, picture = graph_of(s)
        return page("graph.html", name=s.name, doc=doc, svg=picture)

    def api_graph(request: Request) -> Response:
        return JSONResponse(graph_of(stack_of(request))[0])

    def _filters(request: Request) -> dict[str, str | None]:
        q = request.query_params
        return {k: (q.get(k) or None) for k in ("stack", "stage", "command", "result")}

    def runs(request: Request) -> Response:
        return page("runs.html", doc=views.runs_doc(catalog, **_filters(request)),
                    stacks=[s.name for s in catalog.fleet.stacks])

    def api_runs(request: Request) -> Response:
        return JSONResponse(views.runs_doc(catalog, **_filters(request)))

    def run(request: Request) -> Response:
        return page("run.html", doc=views.run_doc(stack_of(request), request.path_params["run_id"]))

    def api_run(request: Request) -> Response:
        return JSONResponse(views.run_doc(stack_of(request), request.path_params["run_id"]))

    routes = [
        Route("/runs", guarded(runs)),
        Route("/api/runs", guarded(api_runs, True)),
        Route("/runs/{name}/{run_id}", guarded(run)),
        Route("/api/runs/{name}/{run_id}", guarded(api_run, True)),
        Route("/", guarded(overview)),
        Route("/api/overview", guarded(api_overview, True)),
        Route("/stack/{name}", guarded(stack)),
        Route("/stack/{name}/diff", guarded(diff)),
        Route("/stack/{name}/live", guarded(live)),
        Route("/pipeline/{name}", guarded(pipeline)),
        Route("/graph/{name}", guarded(graph)),
        Route("/api/stack/{name}", guarded(api_stack, True)),
        Route("/api/stack/{name}/diff", guarded(api_diff, True)),
        Route("/api/stack/{name}/live", guarded(api_live, True)),
        Route("/api/pipeline/{name}", guarded(api_pipeline, True)),
        Route("/api/graph/{name}", guarded(api_graph, True)),
        Route("/login", guarded(overview)),  # answered by the guard
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, token=token)])
    app.state.catalog = catalog
    return app


def serve(paths: Sequence[Path], *, host: str, port: int, token: str | None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; a bind beyond this machine needs a token."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host} would show state and releases to the network without a token",
            hint="pass --token TOKEN (or set CLOUDORCH_UI_TOKEN); requests must then carry it",
        )
    app = create_app(paths, token=token)
    app.state.catalog.start()
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    if on_ready is not None:
        on_ready(url)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        app.state.catalog.stop()
