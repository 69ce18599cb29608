"""chatresp audit, chatresp check --orphans and --allow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import completion, write_cassette

from pytest_chatresp.cli import main

FAKE_KEY = "sk-FAKE-planted-key-abcdefghijklmnopqrstuvwxyz"


def planted(path: Path) -> Path:
    write_cassette(path, completion())
    document = json.loads(path.read_text())
    interaction = document["interactions"][0]
    interaction["request"]["headers"]["Authorization"] = [f"Bearer {FAKE_KEY}"]
    interaction["response"]["headers"]["Set-Cookie"] = ["__cf_bm=FAKEcookievalue; path=/"]
    interaction["response"]["headers"]["openai-organization"] = ["org-FAKEorganisation0000"]
    body = json.loads(interaction["response"]["body"]["string"])
    body["choices"][0]["message"]["content"] = "Your project is proj_FAKEproject0000000000"
    interaction["response"]["body"]["string"] = json.dumps(body)
    image = "data:image/png;base64," + "A" * 200_000
    interaction["request"]["body"] = json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": image}]}
    )
    path.write_text(json.dumps(document))
    return path


def test_audit_flags_secrets_ids_cookies_and_big_bodies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = planted(tmp_path / "old.yaml")
    before = path.read_bytes()
    assert main(["audit", "old.yaml"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        "old.yaml: request header authorization: should not be recorded (chatresp scrub removes it)"
        in out
    )
    assert (
        "old.yaml: response header set-cookie: should not be recorded (chatresp scrub removes it)"
        in out
    )
    assert (
        "old.yaml: response header openai-organization: should not be recorded (chatresp scrub removes it)"
        in out
    )
    assert any(
        re.fullmatch(
            r"old\.yaml, interaction 0: request body: 195\.\d KB, more than 100 KB "
            r"\(a base64 image\)",
            line,
        )
        for line in out
    ), out
    assert "old.yaml, interaction 0: response.body: a project id (proj_…)" in out
    assert out[-1] == "1 file audited: see above"
    assert FAKE_KEY not in "\n".join(out)
    assert path.read_bytes() == before  # an audit never writes

    assert main(["audit", "old.yaml", "--max-body-kb", "1000", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {f["where"] for f in data["findings"]} >= {"request header authorization"}
    assert not any("KB" in f["what"] for f in data["findings"])


def test_audit_of_clean_cassettes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(tmp_path / "clean.yaml", completion())
    assert main(["audit", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("1 file audited: nothing flagged")


def test_audit_usage_errors(tmp_path: Path) -> None:
    assert main(["audit", str(tmp_path), "--max-body-kb", "0"]) == 2
    assert main(["audit", str(tmp_path / "missing")]) == 2


def test_check_allow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cassette(tmp_path / "groq.yaml", completion(service_tier="on_demand"))
    assert main(["check", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["check", str(tmp_path), "--allow", "service_tier=on_demand"]) == 0
    assert main(["check", str(tmp_path), "--allow", "service_tier"]) == 2
    assert "--allow: 'service_tier' is not FIELD=VALUE" in capsys.readouterr().err


def test_check_orphans(tmp_path: Path) -> None:
    cassettes = tmp_path / "cassettes"
    write_cassette(cassettes / "test_it/test_used.yaml", completion())
    write_cassette(cassettes / "test_it/test_gone.yaml", completion())
    write_cassette(cassettes / "shared.yaml", completion())
    (cassettes / "test_it/test_used.shape.yaml").write_text("- {}\n")
    (tmp_path / "test_it.py").write_text(
        "import pytest\n\n"
        "def test_used(chat_completion):\n    pass\n\n"
        "@pytest.mark.chat_cassette('shared.yaml')\n"
        "def test_named():\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", "check", "--orphans"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "orphan: cassettes/test_it/test_gone.yaml",
        "1 orphan of 3 cassette files in cassettes (2 used by the collected tests)",
    ]
    (cassettes / "test_it/test_gone.yaml").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "pytest_chatresp.cli", "check", "--orphans"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_audit_finds_a_url_encoded_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVICE_SECRET", "ab+cd/ef==ghij&k")
    path = write_cassette(tmp_path / "enc.yaml", completion())
    document = json.loads(path.read_text())
    document["interactions"][0]["request"]["uri"] += "?state=ab%2Bcd%2Fef%3D%3Dghij%26k"
    path.write_text(json.dumps(document))
    assert main(["audit", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "enc.yaml: $MY_SERVICE_SECRET in request uri: should not be recorded (chatresp scrub removes it)"
        in out
    )
    assert "ghij" not in out
