"""The session-store commands through the real ``mirrorband`` CLI entry point."""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from mirrorband.cli.core import main
from mirrorband.sessions.edf import write_edf
from mirrorband.sessions.store import ENV_DATA_DIR, SCHEMA_VERSION
from mirrorband.sim.simulate import simulate


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def edf(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "mod.edf"
    write_edf(simulate("moderate-R", seed=5), p)
    return p


@pytest.fixture
def dd(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "env-data"))
    return str(tmp_path / "data")


def test_import_list_report_export(capsys, edf, dd, tmp_path):
    code, out, err = run(capsys, "import", str(edf), "--patient", "P01", "--date", "2025-01-10", "--data-dir", dd)
    assert code == 0 and out.strip() == "1" and "session 1" in err
    code, out, _ = run(capsys, "sessions", "--data-dir", dd, "--json", "--grades")
    doc = json.loads(out)
    assert [(s["id"], s["patient_id"], s["started"], s["source"]) for s in doc["sessions"]] == [
        (1, "P01", "2025-01-10T00:00:00", "edf")]
    assert doc["sessions"][0]["grade"] >= 2
    code, out, _ = run(capsys, "sessions", "--data-dir", dd, "--patient", "nobody", "--json")
    assert json.loads(out)["sessions"] == []
    code, out, _ = run(capsys, "sessions", "--data-dir", dd)
    assert code == 0 and "P01" in out and "mod.edf" in out
    code, out, _ = run(capsys, "report", "1", "--data-dir", dd)
    assert code == 0 and "mirror bursts per minute of writing" in out and re.search(r"grade \d", out)
    assert "R |" in out and "M" in out.split("R |")[1]  # timeline shows mirror bursts of R
    code, out, _ = run(capsys, "report", "1", "--data-dir", dd, "--json")
    assert json.loads(out)["metrics"]["grade_hand"] == "R"
    for fmt in ("edf", "csv", "json"):
        target = tmp_path / f"s.{fmt}"
        code, out, err = run(capsys, "export", "1", "--format", fmt, "-o", str(target), "--data-dir", dd)
        assert code == 0 and target.exists() and f"wrote {target}" in err and out == ""


def test_env_var_selects_the_store(capsys, edf, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "via-env"))
    assert run(capsys, "import", str(edf))[0] == 0
    assert (tmp_path / "via-env" / "mirrorband.sqlite").exists()
    assert list((tmp_path / "via-env" / "raw" / "imports").glob("*.edf"))


def test_html_report_is_standalone_with_plots(capsys, edf, dd, tmp_path):
    run(capsys, "import", str(edf), "--patient", "P01", "--data-dir", dd)
    run(capsys, "treatment", "add", "--patient", "P01", "--date", "2025-02-01", "--kind", "botox",
        "--data-dir", dd)
    html_path = tmp_path / "r.html"
    code, out, err = run(capsys, "report", "1", "--html", str(html_path), "--data-dir", dd)
    assert code == 0 and f"wrote {html_path}" in err
    text = html_path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    svgs = re.findall(r"<svg.*?</svg>", text, flags=re.S)
    assert len(svgs) == 2  # timeline and per-step bars
    for svg in svgs:
        ET.fromstring(svg)  # well-formed, renderable by any browser
        assert "<path" in svg
    # nothing fetched from anywhere: no scripts, no external references
    assert "<script" not in text and "src=" not in text
    assert not re.search(r"(href|src)=[\"']https?:", text)
    assert "botox" in text and "Grade" in text


def test_treatments_and_trends(capsys, edf, dd):
    run(capsys, "import", str(edf), "--patient", "P02", "--date", "2025-01-01", "--data-dir", dd)
    run(capsys, "import", str(edf), "--patient", "P02", "--date", "2025-03-01", "--data-dir", dd)
    code, out, _ = run(capsys, "treatment", "add", "--patient", "P02", "--date", "2025-02-01", "--kind", "botox",
                       "--note", "FDS 20 U", "--data-dir", dd)
    assert code == 0 and out.strip() == "1"
    code, out, _ = run(capsys, "treatment", "list", "--json", "--data-dir", dd)
    assert json.loads(out)["treatments"][0]["note"] == "FDS 20 U"
    code, out, _ = run(capsys, "trends", "--patient", "P02", "--json", "--data-dir", dd)
    t = json.loads(out)
    assert t["hand"] == "R" and [s["change"]["mirror_per_min"]["delta"] for s in t["sessions"]] == [0.0, 0.0]
    code, out, _ = run(capsys, "trends", "--patient", "P02", "--data-dir", dd)
    assert code == 0 and "botox" in out


def test_bad_input_is_one_line_exit_2(capsys, edf, dd, tmp_path):
    run(capsys, "import", str(edf), "--data-dir", dd)
    assert "no session 42" in one_line_error(*run(capsys, "report", "42", "--data-dir", dd)[::2])
    assert "no session 42" in one_line_error(*run(capsys, "export", "42", "--format", "csv", "-o",
                                                  str(tmp_path / "x.csv"), "--data-dir", dd)[::2])
    assert "bad session id" in one_line_error(*run(capsys, "report", "abc", "--data-dir", dd)[::2])
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"not an edf at all" * 30)
    assert "not an EDF" in one_line_error(*run(capsys, "import", str(junk), "--data-dir", dd)[::2])
    assert "file not found" in one_line_error(*run(capsys, "import", str(tmp_path / "nope.edf"),
                                                   "--data-dir", dd)[::2])
    assert "cannot write" in one_line_error(*run(capsys, "export", "1", "--format", "json", "-o",
                                                 "/proc/mb.json", "--data-dir", dd)[::2])
    assert "does not exist" in one_line_error(*run(capsys, "report", "1", "--html", str(tmp_path / "d" / "r.html"),
                                                   "--data-dir", dd)[::2])
    assert "bad date" in one_line_error(*run(capsys, "treatment", "add", "--patient", "P1", "--date", "2025-13-01",
                                             "--kind", "botox", "--data-dir", dd)[::2])
    assert "bad patient id" in one_line_error(*run(capsys, "import", str(edf), "--patient", "Jane Doe",
                                                   "--data-dir", dd)[::2])
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert "cannot create data directory" in one_line_error(*run(capsys, "sessions", "--data-dir",
                                                                 str(blocker / "d"))[::2])


def test_newer_store_is_refused(capsys, dd):
    assert run(capsys, "sessions", "--data-dir", dd)[0] == 0
    with sqlite3.connect(f"{dd}/mirrorband.sqlite") as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 3,))
    for argv in (["sessions"], ["report", "1"], ["treatment", "list"]):
        line = one_line_error(*run(capsys, *argv, "--data-dir", dd)[::2])
        assert "newer Mirrorband" in line


@pytest.mark.parametrize("argv", [["sessions"], ["report"], ["export"], ["import"], ["treatment"],
                                  ["treatment", "add"], ["treatment", "list"], ["trends"]])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mirrorband" in out and "--data-dir" in out or argv == ["treatment"]
