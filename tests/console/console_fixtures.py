"""Helpers of the console's tests: a central with organisations, members and carnets, Flask test clients
that log in and post forms with their CSRF token, and the page checks of the browser tests (axe-core,
screenshots, no request leaving the machine)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from central.app import create_app
from central.config import Settings
from central.db import make_engine, migrate
from central.services import accounts, admin

SECRET = b"console-test-secret"
PASSWORD = "Médiation-2026!"  # 15 characters, 4 classes: what the CNIL rule accepts
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def serve_site(db_url: str, clock: Any, tmp_path: Path) -> Iterator[Site]:
    """The central's app on a freshly migrated database at ``db_url`` (the ``site`` fixtures use it)."""
    engine = make_engine(db_url)
    migrate(engine)
    app = create_app(Settings(tmp_path, db_url, SECRET), now=clock, engine=engine)
    try:
        yield Site(app, engine, clock)
    finally:
        engine.dispose()


class Client:
    """A browser-like test client: it logs in, and ``post`` first fetches the form page for its token."""

    def __init__(self, app: Flask) -> None:
        self.http: FlaskClient = app.test_client()

    def get(self, url: str, **kw: Any) -> Any:
        return self.http.get(url, **kw)

    def token(self, page: str) -> str:
        return csrf_token(self.http.get(page).get_data(as_text=True))

    def post(self, url: str, data: dict[str, Any] | None = None, *, form_page: str | None = None, **kw: Any) -> Any:
        """POST ``data`` with the CSRF token of ``form_page`` (default: the same URL)."""
        body = dict(data or {})
        body.setdefault("csrf_token", self.token(form_page or url))
        return self.http.post(url, data=body, **kw)

    def login(self, email: str, password: str = PASSWORD) -> Any:
        return self.post("/console/connexion", {"email": email, "password": password})


@dataclass
class Org:
    id: int
    points: list[int]
    admin: str  # e-mail of an admin
    member: str  # e-mail of a plain member


@dataclass
class Site:
    """The central's app (not served: Flask's test client) with helpers that use its services."""

    app: Flask
    engine: Engine
    clock: Any
    _siret: itertools.count = field(default_factory=lambda: itertools.count(30_000_000_000_000))

    def user(self, email: str, organisation: int | None = None, role: str = "member", *,
             operator: bool = False, password: str = PASSWORD) -> int:  # fmt: skip
        return accounts.create_user(self.engine, email, self.clock(), password=password, organisation_id=organisation,
                                    role=role, is_operator=operator)  # fmt: skip

    def organisation(self, name: str, *, insee: str = "33039", points: int = 1, slug: str | None = None) -> Org:
        org = admin.add_organisation(self.engine, name, str(next(self._siret)), self.clock())
        pts = [
            admin.add_point(self.engine, org, f"{name} {i + 1}", insee, ["BIB"], self.clock()) for i in range(points)
        ]
        slug = slug or f"org{org}"
        self.user(f"admin@{slug}.fr", org, "admin")
        self.user(f"membre@{slug}.fr", org, "member")
        return Org(org, pts, f"admin@{slug}.fr", f"membre@{slug}.fr")

    def carnets(self, carnets: int = 1, size: int = 10, **kw: Any) -> list[str]:
        kw.setdefault("commanditaire", "Département de la Gironde")
        kw.setdefault("millesime", self.clock().year)
        return admin.issue_carnets(self.engine, SECRET, self.clock(), carnets=carnets, size=size, **kw)["passes"]

    def client(self, email: str | None = None) -> Client:
        client = Client(self.app)
        if email:
            r = client.login(email)
            assert r.status_code == 302, r.get_data(as_text=True)
        return client
