"""Hardware-in-the-loop suite (pytest-embedded, serial service).

Without ``--port`` it starts ``mirrorband sim`` and runs against virtual band R's pty
console, as CI does; with ``--port=/dev/ttyACM0`` it runs against a real band running
the Mirrorband firmware. Tests marked ``hil`` need a real band (USB modem lines,
radio) and are collected and skipped with a reason on a virtual band.

Against a real band the suite provisions it with a throw-away key (erasing its log):
use a test band, not a patient's.
"""

from __future__ import annotations

import pytest

from ..virtual.test_sim_cli import Sim


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: needs a real band on --port (USB modem lines, radio)")


@pytest.fixture(scope="session")
def hil_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """(port, is_real): the --port given, or a virtual band's pty from `mirrorband sim`."""
    given = request.config.getoption("port", None)
    if given:
        yield given, True
        return
    sim = Sim(tmp_path_factory.mktemp("hil") / "data")
    try:
        yield sim.ports["R"], False
    finally:
        sim.kill()


@pytest.fixture
def port(hil_target):
    return hil_target[0]


@pytest.fixture
def embedded_services():
    return "serial"


@pytest.fixture(autouse=True)
def _needs_real_band(request: pytest.FixtureRequest, hil_target):
    if request.node.get_closest_marker("hil") and not hil_target[1]:
        pytest.skip("needs a real band: run with --port=/dev/ttyACM0 (the virtual band has no "
                    "USB modem lines or radio)")
