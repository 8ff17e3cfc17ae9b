"""mirrorband task list / task run: the protocol table, name lookup, task points, one-line errors."""

from __future__ import annotations

import json

import pytest

from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.cli.core import main
from mirrorband.cli.task import find_protocol, protocols
from mirrorband.control.task import protocol_points as task_points
from mirrorband.errors import CliError


def test_task_list_text_and_json(capsys) -> None:  # noqa: ANN001
    assert main(["task", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(protocols())
    short = next(line for line in lines if line.startswith("Short check"))
    assert "(60 s)" in short and "WRITE L 20 s" in short
    assert main(["task", "list", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert set(table) == set(protocols())
    assert table["Short check (1 min)"][1] == {"kind": "WRITE L", "seconds": 20.0}


def test_find_protocol_by_prefix() -> None:
    assert find_protocol("short")[0] == "Short check (1 min)"
    assert find_protocol("Standard, left")[0] == "Standard, left hand affected"
    with pytest.raises(CliError, match="ambiguous"):
        find_protocol("Standard")
    with pytest.raises(CliError, match="unknown task"):
        find_protocol("nope")


def test_task_points_end_with_step_none() -> None:
    _name, steps = find_protocol("short")
    assert task_points(steps) == [(0, STEP_REST), (10_000, STEP_WRITE_L), (30_000, STEP_REST),
                                  (35_000, STEP_WRITE_R), (55_000, STEP_REST), (60_000, STEP_NONE)]


def test_task_run_errors_are_one_line(monkeypatch, capsys, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("MIRRORBAND_HOST_HCI", raising=False)
    monkeypatch.setenv("MIRRORBAND_DATA_DIR", str(tmp_path))
    assert main(["task", "run", "nope", "--sim"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown task" in err[0]
    assert main(["task", "run", "short", "--sim"]) == 2  # no virtual radio running
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "virtual radio" in err[0]
    with pytest.raises(SystemExit):
        main(["task", "--help"])
    assert "run" in capsys.readouterr().out
