"""Real frameworks on `fastcore serve`: a Flask application and a Django
project made with `django-admin startproject`."""
import re
import subprocess
import sys

import django  # noqa: F401  (a test dependency: fail here if it is missing)
import flask  # noqa: F401
import requests

FLASK_APP = '''
from flask import Flask, jsonify, make_response, request

app = Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"


@app.route("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, double=item_id * 2, args=request.args.to_dict())


@app.route("/api/echo", methods=["POST"])
def api_echo():
    return jsonify(received=request.get_json(), method=request.method)


@app.route("/form", methods=["POST"])
def form():
    return "name=%s tags=%s" % (request.form["name"], ",".join(request.form.getlist("tag")))


@app.route("/cookie/set")
def set_cookie():
    response = make_response("cookie set")
    response.set_cookie("flavour", "oatmeal raisin")
    return response


@app.route("/cookie/get")
def get_cookie():
    return "flavour=" + request.cookies.get("flavour", "none")
'''


def test_flask_routes_json_form_cookie(serve):
    server = serve(FLASK_APP)
    with requests.Session() as session:
        index = session.get(f"{server.url}/", timeout=10)
        assert (index.status_code, index.text) == (200, "hello from flask")

        item = session.get(f"{server.url}/items/21?colour=blue", timeout=10)
        assert item.status_code == 200
        assert item.headers["Content-Type"] == "application/json"
        assert item.json() == {"id": 21, "double": 42, "args": {"colour": "blue"}}

        missing = session.get(f"{server.url}/items/not-a-number", timeout=10)
        assert missing.status_code == 404

        payload = {"list": [1, 2, 3], "text": "caf\u00e9"}
        echoed = session.post(f"{server.url}/api/echo", json=payload, timeout=10)
        assert echoed.status_code == 200
        assert echoed.json() == {"received": payload, "method": "POST"}

        form = session.post(f"{server.url}/form", data={"name": "Ada", "tag": ["x", "y"]}, timeout=10)
        assert (form.status_code, form.text) == (200, "name=Ada tags=x,y")

        wrong_method = session.get(f"{server.url}/form", timeout=10)
        assert wrong_method.status_code == 405

        assert session.get(f"{server.url}/cookie/get", timeout=10).text == "flavour=none"
        set_response = session.get(f"{server.url}/cookie/set", timeout=10)
        assert set_response.status_code == 200
        assert "flavour=" in set_response.headers["Set-Cookie"]
        assert session.get(f"{server.url}/cookie/get", timeout=10).text == "flavour=oatmeal raisin"
    assert "Traceback" not in server.stderr_text()


def test_django_admin_login_csrf_and_form_error(serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run([sys.executable, "-m", "django", "startproject", "project", str(site)],
                   check=True, capture_output=True, timeout=60)
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=site,
                              capture_output=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr.decode()
    server = serve("", "--chdir", str(site), app="project.wsgi:application")

    with requests.Session() as session:
        page = session.get(f"{server.url}/admin/login/", timeout=10)
        assert page.status_code == 200
        cookie_token = session.cookies.get("csrftoken")
        assert cookie_token
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, page.text[:2000]

        response = session.post(f"{server.url}/admin/login/?next=/admin/", timeout=10, data={
            "csrfmiddlewaretoken": match.group(1),
            "username": "nobody",
            "password": "not-the-password",
            "next": "/admin/",
        })
        assert response.status_code == 200, response.text[:2000]
        assert "Please enter the correct username and password" in response.text
        assert "errornote" in response.text
    assert "Traceback" not in server.stderr_text()
