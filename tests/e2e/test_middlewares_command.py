"""`fastcore middlewares`: the onion a request passes, listed for a Flask
application, a Django project and Starlette/FastAPI applications whose
middlewares were added in a known order, through the real command."""
import json
import subprocess
import sys

import django  # noqa: F401  (test dependencies: fail here if one is missing)
import fastapi  # noqa: F401
import flask  # noqa: F401
import starlette  # noqa: F401

CORE = ["core      listen", "core      head", "core      real-ip", "core      limits", "core      body",
        "core      response"]


def middlewares(directory, *args, expect=0):
    done = subprocess.run([sys.executable, "-m", "fastcore", "middlewares", *args], cwd=directory,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == expect, done.stderr
    return done


def lines_of(directory, *args):
    return middlewares(directory, *args).stdout.splitlines()


def names(lines):
    """kind and name of each line, without settings and notes."""
    return [line[:10] + line[10:].split("  ")[0] for line in lines]


FLASK_APP = '''
from flask import Blueprint, Flask
from werkzeug.middleware.proxy_fix import ProxyFix


class Outer:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


app = Flask("shop")
app.wsgi_app = ProxyFix(app.wsgi_app)
app.wsgi_app = Outer(app.wsgi_app)   # wrapped last: runs first

admin = Blueprint("admin", __name__)


@admin.before_request
def require_admin():
    pass


@admin.route("/admin")
def admin_index():
    return "admin"


@app.before_request
def open_session():
    pass


@app.before_request
def load_user():
    pass


@app.route("/")
def index():
    return "hi"


app.register_blueprint(admin)
'''


def test_middlewares_flask_whole_onion_in_execution_order(tmp_path):
    (tmp_path / "app.py").write_text(FLASK_APP)
    (tmp_path / "public").mkdir()
    lines = lines_of(tmp_path, "app:app", "--static", "/assets=public", "--static", "/assets/big=public",
                     "--proxy", "/api=127.0.0.1:9001,127.0.0.1:9002",
                     "--middleware", "fastcore.middleware:RequestID",
                     "--middleware", "fastcore.middleware:Compress(level=5, min_size=256)")
    assert names(lines) == CORE + [
        "route     static /assets/big",
        "route     static /assets",
        "route     proxy /api",
        "route     app /",
        "use       fastcore.middleware:RequestID",
        "use       fastcore.middleware:Compress",
        "flask     app:Outer",
        "flask     werkzeug.middleware.proxy_fix:ProxyFix",
        "flask     app:open_session",
        "flask     app:load_user",
        "flask     app:require_admin",
        "run       Flask application 'shop'",
    ]
    text = "\n".join(lines)
    assert "use       fastcore.middleware:Compress  level=5 min_size=256" in text
    assert "use       fastcore.middleware:RequestID  forwarded_allow_ips=127.0.0.1/8,::1" in text
    assert "servers=127.0.0.1:9001,127.0.0.1:9002 balance=round_robin" in text
    assert "flask     app:require_admin  (before_request, blueprint admin)" in text
    assert lines[-1] == "run       Flask application 'shop'  url_rules=3"
    assert "header_timeout=20s max_request_line=8190 max_header_bytes=32k max_headers=100" in lines[1]


def test_middlewares_reads_the_config_file_and_prints_json(tmp_path):
    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    config = tmp_path / "fastcore.toml"
    config.write_text('header_timeout = "5s"\nmax_body = "1m"\n'
                      'middleware = [{factory = "fastcore.middleware:ProxyFix", prefix = false}]\n')
    layers = json.loads(middlewares(tmp_path, "app:app", "--config", str(config), "--json").stdout)
    assert [(layer["kind"], layer["name"]) for layer in layers][len(CORE):] == [
        ("route", "app /"), ("use", "fastcore.middleware:ProxyFix"), ("run", "app:app")]
    head = next(layer for layer in layers if layer["name"] == "head")
    assert head["settings"]["header_timeout"] == 5.0
    body = next(layer for layer in layers if layer["name"] == "body")
    assert body["settings"]["max_body"] == 1 << 20
    fix = next(layer for layer in layers if layer["kind"] == "use")
    assert fix["settings"] == {"prefix": False, "forwarded_allow_ips": ["127.0.0.1/8", "::1"]}


def test_middlewares_bad_entry_is_one_line(tmp_path):
    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    done = middlewares(tmp_path, "app:app", "--middleware", "fastcore.middleware:Compress(levle=1)", expect=1)
    assert done.stderr == ("fastcore: error: middleware fastcore.middleware:Compress: unknown option 'levle'; "
                           "did you mean 'level'?\n")
    assert done.stdout == ""


def test_middlewares_django_project_in_settings_order(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", "project", str(site)],
                   check=True, capture_output=True, timeout=60)
    (site / "project" / "timing.py").write_text(
        "class Timing:\n"
        "    def __init__(self, get_response):\n"
        "        self.get_response = get_response\n\n"
        "    def __call__(self, request):\n"
        "        return self.get_response(request)\n")
    settings = site / "project" / "settings.py"
    text = settings.read_text()
    # ours first, and drop one of the defaults, so the listing must follow the file
    text = text.replace("MIDDLEWARE = [\n", "MIDDLEWARE = [\n    'project.timing.Timing',\n", 1)
    text = text.replace("    'django.middleware.clickjacking.XFrameOptionsMiddleware',\n", "")
    settings.write_text(text)
    lines = lines_of(site, "project.wsgi:application", "--middleware", "fastcore.middleware:RequestID")
    assert names(lines)[len(CORE):] == [
        "route     app /",
        "use       fastcore.middleware:RequestID",
        "django    project.timing.Timing",
        "django    django.middleware.security.SecurityMiddleware",
        "django    django.contrib.sessions.middleware.SessionMiddleware",
        "django    django.middleware.common.CommonMiddleware",
        "django    django.middleware.csrf.CsrfViewMiddleware",
        "django    django.contrib.auth.middleware.AuthenticationMiddleware",
        "django    django.contrib.messages.middleware.MessageMiddleware",
        "run       project.urls",
    ]
    assert lines[-1] == "run       project.urls  url_patterns=1  (Django URLconf)"


STARLETTE_APP = '''
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route


class Audit:
    def __init__(self, app, label="audit"):
        self.app, self.label = app, label

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def home(request):
    return PlainTextResponse("hi")


app = Starlette(routes=[Route("/", home)])
app.add_middleware(GZipMiddleware, minimum_size=500)       # added first: runs last of the three
app.add_middleware(Audit, label="inner-most-added-first")
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["example.com"])   # added last: runs first
'''

FASTAPI_APP = '''
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origins=["https://example.com"])


@app.middleware("http")
async def timing(request, call_next):
    return await call_next(request)


@app.get("/")
def root():
    return {}
'''


def test_middlewares_starlette_in_the_order_it_really_runs(tmp_path):
    (tmp_path / "app.py").write_text(STARLETTE_APP)
    lines = lines_of(tmp_path, "app:app")
    assert names(lines)[len(CORE):] == [
        "route     app /",
        "gateway   asgi",
        "starlette starlette.middleware.errors:ServerErrorMiddleware",
        "starlette starlette.middleware.trustedhost:TrustedHostMiddleware",
        "starlette app:Audit",
        "starlette starlette.middleware.gzip:GZipMiddleware",
        "starlette starlette.middleware.exceptions:ExceptionMiddleware",
        "run       starlette.routing:Router",
    ]
    text = "\n".join(lines)
    assert "starlette app:Audit  label=inner-most-added-first  (added)" in text
    assert "starlette starlette.middleware.gzip:GZipMiddleware  minimum_size=500  (added)" in text
    assert "starlette starlette.middleware.errors:ServerErrorMiddleware  (starlette's own)" in text
    assert lines[-1].startswith("run       starlette.routing:Router  routes=1")


def test_middlewares_fastapi_decorator_middleware_runs_before_earlier_added(tmp_path):
    (tmp_path / "app.py").write_text(FASTAPI_APP)
    lines = [line for line in lines_of(tmp_path, "app:app") if line.startswith("fastapi")]
    added = [line for line in lines if line.endswith("(added)")]
    assert added == [
        "fastapi   starlette.middleware.base:BaseHTTPMiddleware dispatch=app:timing  (added)",
        "fastapi   starlette.middleware.cors:CORSMiddleware  allow_origins=https://example.com  (added)",
    ]
    assert lines[0].startswith("fastapi   starlette.middleware.errors:ServerErrorMiddleware")
