"""The members of an organisation over HTTP (Flask's test client, CSRF on, real SQLite): the list for admins
only, invitations by e-mail whose link works once, role changes and removals after re-authentication, the
last-admin guard, and a removed member losing access at once."""

from __future__ import annotations

import re

import pytest
from console_fixtures import PASSWORD, Client
from sqlalchemy import select

from central import schema as t

NEW = "nina.nouvelle@begles.fr"


@pytest.fixture
def org(site):
    return site.organisation("Médiathèque de Bègles", slug="begles")


def user_id(site, email):
    with site.engine.connect() as conn:
        return conn.execute(select(t.users.c.id).where(t.users.c.email == email)).scalar_one()


def role_of(site, org, email):
    with site.engine.connect() as conn:
        return conn.execute(
            select(t.memberships.c.role).where(
                t.memberships.c.organisation_id == org.id, t.memberships.c.user_id == user_id(site, email)
            )
        ).scalar()


def audit(site, action):
    with site.engine.connect() as conn:
        return conn.execute(select(t.audit_log).where(t.audit_log.c.action == action)).all()


def invite(site, admin, email=NEW, role="member", caplog=None):
    with caplog.at_level("INFO", logger="central.mail"):
        r = admin.post("/console/organisation/membres/inviter", {"email": email, "role": role})
    assert r.status_code == 302 and r.headers["Location"] == "/console/organisation/membres"
    return re.search(r"http://localhost(/console/invitation/[\w-]+)", caplog.text).group(1)


def member_page(site, email):
    return f"/console/organisation/membres/{user_id(site, email)}"


def test_the_members_pages_are_for_admins_only(site, org):
    member = site.client(org.member)
    for path in (
        "/console/organisation/membres",
        "/console/organisation/membres/inviter",
        member_page(site, org.admin),
    ):
        assert member.get(path).status_code == 404, path
    html = site.client(org.admin).get("/console/organisation/membres").get_data(as_text=True)
    assert org.admin in html and org.member in html and "Administrateur" in html and "10/03/2026" in html


def test_an_invited_person_joins_the_organisation_with_the_link_once(site, org, caplog):
    admin = site.client(org.admin)
    path = invite(site, admin, caplog=caplog)
    assert f"mail to {NEW}" in caplog.text and "Médiathèque de Bègles" in caplog.text
    assert NEW in admin.get("/console/organisation/membres").get_data(as_text=True)  # pending invitation
    newcomer = Client(site.app)
    assert "Rejoindre la console" in newcomer.get(path).get_data(as_text=True)
    r = newcomer.post(path, {"name": "Nina Nouvelle", "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302
    page = newcomer.get("/console/organisation")
    assert page.status_code == 200 and "Médiathèque de Bègles" in page.get_data(as_text=True)
    assert newcomer.get("/console/organisation/membres").status_code == 404  # a plain member
    assert role_of(site, org, NEW) == "member"
    assert Client(site.app).get(path).status_code == 404  # the same link again: spent
    html = admin.get("/console/organisation/membres").get_data(as_text=True)
    assert "Nina Nouvelle" in html and "Aucune invitation en attente" in html
    assert audit(site, "invitation.sent")[0].organisation_id == org.id
    assert audit(site, "invitation.used")


def test_an_invitation_as_admin_grants_the_admin_role(site, org, caplog):
    path = invite(site, site.client(org.admin), role="admin", caplog=caplog)
    Client(site.app).post(path, {"password": PASSWORD, "confirm": PASSWORD})
    assert role_of(site, org, NEW) == "admin"


def test_a_bad_invitation_is_refused_with_the_fields_message(site, org):
    admin = site.client(org.admin)
    r = admin.post("/console/organisation/membres/inviter", {"email": "pas-une-adresse", "role": "member"})
    assert r.status_code == 400 and 'id="f-email-error"' in r.get_data(as_text=True)
    r = admin.post("/console/organisation/membres/inviter", {"email": org.member, "role": "member"})
    assert r.status_code == 400 and "déjà membre" in r.get_data(as_text=True)
    r = admin.post("/console/organisation/membres/inviter", {"email": NEW, "role": "chef"})
    assert r.status_code == 400 and 'id="f-role-error"' in r.get_data(as_text=True)
    assert not audit(site, "invitation.sent")


def test_member_changes_ask_for_the_password_again(site, org):
    admin = site.client(org.admin)
    site.clock.advance(minutes=11)
    assert admin.get("/console/organisation/membres").status_code == 200  # reading needs no confirmation
    for path in ("/console/organisation/membres/inviter", member_page(site, org.member)):
        r = admin.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/console/confirmer"), path
    r = admin.post(member_page(site, org.member), {"action": "remove"}, form_page="/console/compte")
    assert r.headers["Location"].startswith("/console/confirmer")
    assert role_of(site, org, org.member) == "member"
    r = admin.post(r.headers["Location"], {"password": PASSWORD})
    assert r.headers["Location"] == member_page(site, org.member)
    assert admin.post(member_page(site, org.member), {"action": "remove"}).status_code == 302
    assert role_of(site, org, org.member) is None


def test_roles_change_but_the_last_admin_stays(site, org):
    admin = site.client(org.admin)
    r = admin.post(member_page(site, org.admin), {"action": "role", "role": "member"})
    assert r.status_code == 409 and "au moins un administrateur" in r.get_data(as_text=True)
    r = admin.post(member_page(site, org.admin), {"action": "remove"})
    assert r.status_code == 409 and "au moins un administrateur" in r.get_data(as_text=True)
    assert role_of(site, org, org.admin) == "admin"
    r = admin.post(member_page(site, org.member), {"action": "role", "role": "admin"})
    assert r.status_code == 302 and role_of(site, org, org.member) == "admin"
    [entry] = audit(site, "member.role")
    assert entry.user_id == user_id(site, org.admin) and entry.details == {"role": "admin"}
    # Two admins now: the first may step down, and then loses the members' pages.
    r = admin.post(member_page(site, org.admin), {"action": "role", "role": "member"})
    assert r.status_code == 302 and role_of(site, org, org.admin) == "member"
    assert admin.get("/console/organisation/membres").status_code == 404
    journal = site.client(org.member).get("/console/organisation/journal").get_data(as_text=True)
    assert "Rôle modifié" in journal and org.admin in journal


def test_a_removed_member_loses_access_at_once(site, org):
    member = site.client(org.member)
    assert member.get("/console/organisation").status_code == 200
    r = site.client(org.admin).post(member_page(site, org.member), {"action": "remove"})
    assert r.status_code == 302
    r = member.get("/console/organisation")
    assert r.status_code in (302, 404)
    assert audit(site, "member.removed")[0].organisation_id == org.id
    assert org.member not in site.client(org.admin).get("/console/organisation/membres").get_data(as_text=True)


def test_another_organisations_member_is_not_found(site, org):
    other = site.organisation("Espace numérique de Talence", slug="talence")
    admin = site.client(org.admin)
    stranger = member_page(site, other.member)
    assert admin.get(stranger).status_code == 404
    token = admin.token("/console/compte")
    r = admin.http.post(stranger, data={"csrf_token": token, "action": "remove"})
    assert r.status_code == 404
    assert admin.get("/console/organisation/membres/999999").status_code == 404
    assert role_of(site, other, other.member) == "member"
