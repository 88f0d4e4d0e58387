"""Accounts of the console over HTTP (Flask's test client, CSRF on): login and its rate limit, sessions
ended by a password change, single-use invitation and reset links, re-authentication, the audit log."""

from __future__ import annotations

import re

import pytest
from console_fixtures import PASSWORD, Client
from sqlalchemy import select

from central import schema as t
from central.services import accounts


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


def test_login_opens_the_console_and_a_wrong_password_does_not(site, org):
    client = Client(site.app)
    assert client.get("/console/tableau-de-bord").status_code == 302  # to the login page
    r = client.login(org.member, "not the password")
    assert r.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in r.get_data(as_text=True)
    r = client.login(org.member.upper())  # e-mails are not case-sensitive
    assert r.status_code == 302 and r.headers["Location"].endswith("/console/tableau-de-bord")
    assert client.get("/console/tableau-de-bord").status_code == 200


def test_the_same_message_for_an_unknown_address_and_a_wrong_password(site, org):
    unknown = Client(site.app).login("nobody@example.org").get_data(as_text=True)
    wrong = Client(site.app).login(org.member, "Wrong-password-1").get_data(as_text=True)
    assert "Adresse e-mail ou mot de passe incorrect." in unknown
    assert "Adresse e-mail ou mot de passe incorrect." in wrong


def test_a_form_without_its_csrf_token_is_refused(site, org):
    client = Client(site.app)
    r = client.http.post("/console/connexion", data={"email": org.member, "password": PASSWORD})
    assert r.status_code == 400
    assert "Le formulaire a expiré" in r.get_data(as_text=True)
    r = client.http.post("/console/connexion", data={"email": org.member, "password": PASSWORD,
                                                     "csrf_token": "forged"})  # fmt: skip
    assert r.status_code == 400


def test_logins_are_rate_limited_per_address_then_allowed_again(site, org):
    client = Client(site.app)
    for _ in range(accounts.MAX_FAILURES):
        assert client.login(org.member, "Wrong-password-1").status_code == 401
    r = client.login(org.member)  # the right password, too late
    assert r.status_code == 429
    assert "Trop de tentatives" in r.get_data(as_text=True)
    site.clock.advance(minutes=16)
    assert client.login(org.member).status_code == 302


def test_a_password_change_ends_the_other_sessions(site, org):
    phone, desk = site.client(org.member), site.client(org.member)
    new = "Un-nouveau-mot-2-passe"
    r = desk.post("/console/compte", {"current": PASSWORD, "password": new, "confirm": new})
    assert r.status_code == 302
    assert desk.get("/console/tableau-de-bord").status_code == 200  # the session that changed it goes on
    assert phone.get("/console/tableau-de-bord").status_code == 302  # the other one is over
    assert Client(site.app).login(org.member).status_code == 401
    assert Client(site.app).login(org.member, new).status_code == 302


def test_a_weak_password_is_refused_with_the_rule(site, org):
    client = site.client(org.member)
    r = client.post("/console/compte", {"current": PASSWORD, "password": "motdepasse", "confirm": "motdepasse"})
    assert r.status_code == 400
    assert "au moins 12 caractères" in r.get_data(as_text=True)


def test_an_invitation_works_once(site, org):
    token = accounts.new_link(site.engine, "invitation", "nouvelle@begles.fr", site.clock(),
                              organisation_id=org.id, role="member")  # fmt: skip
    client = Client(site.app)
    url = f"/console/invitation/{token}"
    r = client.post(url, {"name": "Nina Nouvelle", "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302
    assert client.get("/console/tableau-de-bord").status_code == 200
    again = Client(site.app)
    assert again.get(url).status_code == 404
    r = again.http.post(
        url, data={"password": PASSWORD, "confirm": PASSWORD, "csrf_token": again.token("/console/connexion")}
    )
    assert r.status_code == 404
    assert "plus valable" in r.get_data(as_text=True)


def test_an_expired_invitation_is_refused(site, org):
    token = accounts.new_link(site.engine, "invitation", "tard@begles.fr", site.clock(), organisation_id=org.id,
                              role="member")  # fmt: skip
    site.clock.advance(days=8)
    assert Client(site.app).get(f"/console/invitation/{token}").status_code == 404


def test_a_forgotten_password_link_goes_to_the_log_without_smtp_and_resets_once(site, org, caplog):
    client = Client(site.app)
    with caplog.at_level("INFO", logger="central.mail"):
        r = client.post("/console/mot-de-passe/oubli", {"email": org.member})
    assert r.status_code == 200 and "Vérifiez votre messagerie" in r.get_data(as_text=True)
    path = re.search(r"http://localhost(/console/mot-de-passe/[\w-]+)", caplog.text).group(1)
    unknown = client.post("/console/mot-de-passe/oubli", {"email": "personne@example.org"})
    assert "Vérifiez votre messagerie" in unknown.get_data(as_text=True)  # the same page: nothing disclosed
    new = "Réinitialisé-le-5-mars"
    assert Client(site.app).post(path, {"password": new, "confirm": new}).status_code == 302
    assert Client(site.app).get(path).status_code == 404
    assert Client(site.app).login(org.member, new).status_code == 302


def test_sensitive_pages_ask_for_the_password_again_after_ten_minutes(site, org):
    client = site.client(org.admin)
    site.clock.advance(minutes=11)
    r = client.get("/console/confirmer?next=/console/organisation")
    assert r.status_code == 200
    r = client.post("/console/confirmer?next=/console/organisation", {"password": "Wrong-password-1"})
    assert r.status_code == 400
    r = client.post("/console/confirmer?next=/console/organisation", {"password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"] == "/console/organisation"
    r = client.post("/console/confirmer?next=https://evil.example/", {"password": PASSWORD})
    assert r.headers["Location"].startswith("/console/")  # never an open redirect


def test_logins_and_failures_are_audited(site, org):
    Client(site.app).login(org.member, "Wrong-password-1")
    site.client(org.member)
    with site.engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(t.audit_log).where(t.audit_log.c.target == org.member))]
    assert "login.failed" in actions and "login" in actions


def test_console_pages_carry_a_strict_content_security_policy(site, org):
    r = site.client(org.member).get("/console/tableau-de-bord")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    login = Client(site.app).login(org.member)
    set_cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie


def test_the_api_keeps_its_json_errors(site):
    r = site.app.test_client().get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.is_json
    r = site.app.test_client().get("/console/nothing-here")
    assert r.status_code == 404 and "Cette page n’existe pas" in r.get_data(as_text=True)
