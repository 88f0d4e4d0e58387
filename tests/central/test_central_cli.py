"""``aptic-central``: the admin commands of docs/contracts.md with their JSON outputs, and the migrations."""

from __future__ import annotations

import json

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from aptic.passnumber import authentic as is_authentic
from aptic.passnumber import hmac_authenticator, parse
from central import cli
from central.db import make_engine
from central.schema import metadata


@pytest.fixture
def run(db_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "cli-secret")

    def run(*args: str, expect: int = 0) -> object:
        code = cli.main([args[0], "--db", db_url, "--data-dir", str(tmp_path), *args[1:]])
        out = capsys.readouterr().out
        assert code == expect, out
        return json.loads(out) if "--json" in args else out

    return run


def test_admin_commands_print_the_contract_json(run):
    assert "database ready" in run("init-db")
    assert "database ready" in run("init-db")  # twice is fine
    org = run("add-organisation", "--name", "Médiathèque", "--siret", "123 456 789 00012", "--json")
    assert org == {"id": 1}
    dup = run("add-organisation", "--name", "Autre", "--siret", "12345678900012", "--json", expect=1)
    assert dup["error"] == "siret_taken"
    point = run("add-point", "--organisation", "1", "--name", "Annexe", "--insee", "33063", "--typologie", "BIB",
                "--json")  # fmt: skip
    assert point == {"id": 1}
    kit = run("add-kit", "--organisation", "1", "--json")
    assert set(kit) == {"kit_number", "activation_code"}
    issued = run(
        "issue-carnets", "--commanditaire", "CD33", "--millesime", "2026", "--carnets", "3", "--size", "5",
        "--territory", "33", "--services", "84-95,1.2", "--place-types", "BIB", "--points", "1", "--json",
    )  # fmt: skip
    assert set(issued) == {"order", "passes"} and len(issued["passes"]) == 15
    auth = hmac_authenticator(b"cli-secret")
    assert all(is_authentic(parse(p), auth) for p in issued["passes"])
    assert len({p[:10] for p in issued["passes"]}) == 3
    more = run("issue-carnets", "--commanditaire", "CD33", "--millesime", "2026", "--carnets", "1", "--size", "10",
               "--not-activated", "--json")  # fmt: skip
    assert int(more["passes"][0][3:10]) == 4  # serials continue the millésime's series
    run("block-carnet", issued["passes"][0][:10])
    run("block-carnet", "9999999999", expect=1)
    rows = run("referentiel", "--json")
    assert len(rows) == 129 and set(rows[0]) == {"number", "title", "level", "category", "category_name"}
    statement = run("statement", "--organisation", "1", "--month", "2026-03", "--json")
    assert statement["passes"] == 0 and statement["status"] == "open"
    closed = run("close-month", "--month", "2026-03", "--json")
    assert closed["month"] == "2026-03"
    assert run("statement", "--organisation", "1", "--month", "2026-03", "--json")["status"] == "closed"
    assert run("activate-order", str(more["order"]), "--json") == {"order": more["order"], "activated": True}
    fresh = run("reissue-code", kit["kit_number"], "--json")
    assert fresh["kit_number"] == kit["kit_number"] and fresh["activation_code"] != kit["activation_code"]


def test_demo_seed(run):
    data = run("demo-seed", "--json")
    assert data["kit_number"] and data["activation_code"]
    assert set(data["orders"]) == {"gironde", "bordeaux_demarches", "not_activated"}


def test_migrations_match_the_schema(db_url, run):
    run("init-db")
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_secret_key_file_is_private(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("APTIC_CENTRAL_SECRET", raising=False)
    assert cli.main(["init-db", "--data-dir", str(tmp_path)]) == 0
    key = tmp_path / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "central.db").exists()
