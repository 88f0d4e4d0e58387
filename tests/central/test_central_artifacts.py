"""The file a command brings back (``PUT /commands/{id}/artifact``) and the operator's ``--artifact FILE``.

On the served app, over HTTP, on SQLite and PostgreSQL: only the device the command was sent to, only the
kinds that bring a file, each with its content type, 5 MiB at most, one per command (sent again, replaced).
"""

from __future__ import annotations

import gzip
import io
import json

from PIL import Image

from central import cli


def png() -> bytes:
    """A real PNG, as grim would write one (smaller)."""
    out = io.BytesIO()
    Image.new("RGB", (4, 3), "white").save(out, "PNG")
    return out.getvalue()


PNG = png()


def put(device, command_id: str, data: bytes, content_type: str = "image/png"):
    return device.http.put(device.base + f"/api/v1/commands/{command_id}/artifact", data=data,
                           headers={"Content-Type": content_type}, timeout=60)  # fmt: skip


def test_a_device_attaches_its_screen_once_and_the_operator_writes_it_to_a_file(
    central, clock, capsys, monkeypatch, tmp_path
):
    from central.services import fleet

    org, _ = central.organisation()
    device = central.device(org)
    sent = fleet.send_command(central.engine, device.id, "screenshot", clock())
    assert fleet.command(central.engine, sent["id"], clock())["artifact"] is None

    first = put(device, sent["id"], PNG + b"first")
    assert first.status_code == 201, first.text
    assert first.json()["size"] == len(PNG) + 5 and first.json()["content_type"] == "image/png"
    again = put(device, sent["id"], PNG)  # its answer was lost: the device sends it again, which replaces it
    assert again.status_code == 200 and again.json()["size"] == len(PNG)
    described = fleet.command(central.engine, sent["id"], clock())["artifact"]
    assert described["size"] == len(PNG) and described["content_type"] == "image/png"
    done = {"acks": [{"id": sent["id"], "status": "done", "result": {"bytes": len(PNG)}}]}
    assert device.post("/api/v1/report", json=done).status_code == 200
    finished = put(device, sent["id"], PNG + b"late")
    assert finished.status_code == 409 and finished.json()["error"] == "command_finished"

    monkeypatch.setenv("APTIC_CENTRAL_SECRET", "x")
    base = ["--db", central.settings.db_url, "--data-dir", str(central.settings.data_dir)]
    target = tmp_path / "screen.png"
    assert cli.main(["fleet", "command", *base, "--json", sent["id"], "--artifact", str(target)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "done" and out["saved"] == {"path": str(target), "size": len(PNG),
                                                        "content_type": "image/png"}  # fmt: skip
    assert target.read_bytes() == PNG and target.stat().st_mode & 0o777 == 0o600
    assert cli.main(["fleet", "command", *base, sent["id"], "--artifact", str(target)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{target}: {len(PNG)} bytes, image/png")

    resync = fleet.send_command(central.engine, device.id, "resync", clock())
    assert cli.main(["fleet", "command", *base, resync["id"], "--artifact", str(tmp_path / "none")]) == 1
    assert "Aucun fichier" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_only_the_commands_device_the_kinds_content_type_and_five_mib(central, clock):
    from central.services import fleet

    org, _ = central.organisation()
    mine, other = central.device(org, "pi-a"), central.device(org, "pi-b")
    logs = fleet.send_command(central.engine, mine.id, "upload_logs", clock())
    archive = gzip.compress(b"2026-03-10 INFO terminal.fleet: Running command\n")

    stolen = put(other, logs["id"], archive, "application/gzip")
    assert stolen.status_code == 404 and stolen.json()["error"] == "unknown_command"  # as for an unknown id
    assert put(mine, "no-such-command", archive, "application/gzip").status_code == 404
    assert put(mine, "x" * 300, archive, "application/gzip").status_code == 404
    url = central.url(f"/api/v1/commands/{logs['id']}/artifact")
    anonymous = mine.http.put(
        url, data=archive, headers={"Authorization": "", "Content-Type": "application/gzip"}, timeout=30
    )
    assert anonymous.status_code == 401

    wrong_type = put(mine, logs["id"], archive, "image/png")
    assert wrong_type.status_code == 415 and wrong_type.json()["fields"] == {"Content-Type": "application/gzip"}
    not_gzip = put(mine, logs["id"], b"plain text, not what the kind brings", "application/gzip")
    assert not_gzip.status_code == 415
    assert put(mine, logs["id"], b"", "application/gzip").status_code == 400

    resync = fleet.send_command(central.engine, mine.id, "resync", clock())
    refused = put(mine, resync["id"], archive, "application/gzip")
    assert refused.status_code == 409 and refused.json()["error"] == "artifact_not_expected"

    # Past 5 MiB: refused with a clear JSON error, whether the length is announced or the body is streamed.
    huge = b"\x1f\x8b" + bytes(5 * 2**20)  # gzip's magic, then 5 MiB: two bytes past the limit
    too_large = put(mine, logs["id"], huge, "application/gzip")
    assert too_large.status_code == 413, too_large.text
    assert too_large.json()["error"] == "artifact_too_large" and "5 Mio" in too_large.json()["message"]
    streamed = mine.http.put(url, data=(huge[i : i + 2**20] for i in range(0, len(huge), 2**20)),
                             headers={"Content-Type": "application/gzip"}, timeout=60)  # fmt: skip
    assert streamed.status_code == 413 and streamed.json()["error"] == "artifact_too_large"
    assert fleet.command(central.engine, logs["id"], clock())["artifact"] is None

    # Just under the limit is taken: the limit is the artifact's own, not the 1 MiB of the JSON calls.
    big = huge[: 5 * 2**20]
    stored = put(mine, logs["id"], big, "application/gzip")
    assert stored.status_code == 201 and stored.json()["size"] == 5 * 2**20
    assert mine.post("/api/v1/scans", data=b"{" + b" " * (2 * 2**20) + b"}",
                     headers={"Content-Type": "application/json"}).status_code == 413  # fmt: skip
