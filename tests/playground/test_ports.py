"""Playground ports stay taken from the moment they are chosen until their process starts, so
another program cannot take one in between (the backend used to die "address in use")."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from _playground_helpers import assert_gone

from meshlab.playground import process as _proc
from meshlab.playground.playground import Playground

pytestmark = pytest.mark.timeout(60)


def test_another_program_cannot_take_a_chosen_port_before_its_process_binds_it(
        state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the first process of a start-up is launched (certificates issued, earlier
    processes starting), another program tries to bind every port chosen for the others."""
    taken: list[socket.socket] = []
    tried: list[int] = []
    launch = Playground._launch

    def racing_launch(self: Playground, proc: _proc.ManagedProcess) -> None:
        if not self.processes:           # the first process of this start-up attempt
            ports = {a.port for a in self.plan.apps}
            ports |= {lst.port for px in self.plan.proxies for lst in px.listeners}
            ports |= {px.admin_port for px in self.plan.proxies}
            for port in sorted(ports - set(proc.ports.values())):
                tried.append(port)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    s.close()
                else:
                    taken.append(s)
        launch(self, proc)

    monkeypatch.setattr(Playground, "_launch", racing_launch)
    pg = Playground(mesh="envoy+mtls", state_dir=state_dir)
    pids: list[int] = []
    try:
        pg.start()
        pids = [p.pid for p in pg.processes]
        assert tried and not taken, "a chosen port was free for another program to take"
        assert httpx.get(pg.url).status_code == 200
        assert pg.dead() == []
    finally:
        pg.stop()
        for s in taken:
            s.close()
    assert_gone(pids)
