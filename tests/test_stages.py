"""What an upload's ``stages_ms`` says (issue 23): each stage's own time, and the time its
network passes waited behind other workers' batches apart, as ``queue``."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.images import jpeg_bytes, product_rgb
from unet_matting.engine.profile import Profile
from unet_matting.engine.session import EngineSettings, Session
from unet_matting.watcher.processing.manifest import MANIFEST_SUFFIX
from unet_matting.watcher.processing.pipeline import Rendered, render

HELD = 0.4  # seconds another caller's batch holds the network


@pytest.fixture(scope="module")
def session(tiny_model: Path) -> Session:
    return Session.load(EngineSettings(tiny_model, device="cpu", threads=1, input_size=64))


def _behind_a_held_network(session: Session, call) -> object:
    """``call()`` run in a thread while the network is held for ``HELD`` seconds once its input
    has queued, as when another worker's batch is running; returns what it returned."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(call()))
    with session._network:
        worker.start()
        wait_for(lambda: len(session._queue) == 1, timeout=30)
        time.sleep(HELD)
    worker.join(timeout=60)
    assert not worker.is_alive() and result, "the caller hung"
    return result[0]


def test_the_session_reports_how_long_an_input_waited_for_the_network(session: Session) -> None:
    x = session.prepare(product_rgb(80, 60))
    waits: list[float] = []
    alpha = _behind_a_held_network(session, lambda: session.predict_prepared(x, 60, 80, waits=waits))
    assert alpha.shape == (60, 80)
    assert len(waits) == 1 and waits[0] >= HELD
    alone: list[float] = []
    session.predict_prepared(x, 60, 80, waits=alone)
    assert len(alone) == 1 and 0 <= alone[0] < HELD


def test_an_uploads_wait_for_the_network_is_its_own_stage_not_inference(session: Session) -> None:
    data = jpeg_bytes(product_rgb(160, 120, seed=2))
    began = time.perf_counter()
    rendered = _behind_a_held_network(session, lambda: render(data, session, Profile("default"), 10**8, 1))
    elapsed_ms = (time.perf_counter() - began) * 1000
    assert isinstance(rendered, Rendered)
    stages = rendered.timings_ms
    assert stages["queue"] >= HELD * 1000
    assert stages["inference"] < HELD * 1000  # the pass itself: a 64 px input on a tiny network
    assert sum(v for k, v in stages.items() if "." not in k) <= elapsed_ms + 1  # the wait counted once
    assert json.loads(rendered.files[MANIFEST_SUFFIX])["timings_ms"] == stages
