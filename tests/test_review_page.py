"""The review page in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), and its API with a real HTTP client, against a real daemon on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DaemonProcess, free_port, wait_for
from tests.images import jpeg_bytes, product_rgb, write
from tests.test_http import request

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOKEN = "s3cret-review"


@pytest.fixture
def held(daemon, tmp_path: Path):
    """A daemon with the HTTP side and four doubtful uploads held (the tiny model's grey matte)."""
    port = free_port()
    token = write(tmp_path / "token", TOKEN.encode() + b"\n")
    token.chmod(0o600)
    d: DaemonProcess = daemon(profile="ecom_product", http={"listen": f"127.0.0.1:{port}", "token_file": str(token)})
    for i, name in enumerate(("a", "b", "c", "d")):
        (d.path("incoming") / f"{name}.jpg").write_bytes(jpeg_bytes(product_rgb(seed=i)))
    wait_for(lambda: len(d.finished("done")) == 4)
    assert all(line["held"] for line in d.finished("done"))
    return d, f"http://127.0.0.1:{port}"


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_the_review_api_needs_the_token_and_refuses_ids_outside_the_folder(held) -> None:
    d, url = held
    assert request(f"{url}/api/review/items/a/approve", b"{}", {"Content-Type": "application/json"})[0] == 401
    status, body, headers = request(f"{url}/api/review/cards")
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert not (d.path("output") / "a.png").exists()
    for bad in ("%2E%2E/%2E%2E/etc/passwd", "..%2Fa", ".hidden"):
        status, body, _ = request(f"{url}/api/review/items/{bad}/approve", b"{}", auth())
        assert status in (400, 404), (bad, status)
        assert "error" in json.loads(body)
    (d.path("review") / "link").symlink_to(d.path("review"))
    status, body, _ = request(f"{url}/api/review/items/link/a/approve", b"{}", auth())
    assert status == 400 and "symbolic link" in json.loads(body)["error"]
    assert not (d.path("output") / "a.png").exists()
    status, body, headers = request(f"{url}/api/review/cards", headers=auth())
    assert status == 200 and headers["x-total"] == "4" and body.count(b'class="card"') == 4


def test_two_reviewers_approving_the_same_item_at_once_publish_it_once(held) -> None:
    d, url = held
    answers: list[int] = []
    barrier = threading.Barrier(6)

    def approve() -> None:
        barrier.wait()
        answers.append(request(f"{url}/api/review/items/b/approve", b"{}", auth())[0])

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] + [409] * 5
    assert len(d.events("review_decision", item="b", decision="approve")) == 1
    with Image.open(d.path("output") / "b.png") as im:
        im.load()  # whole
    status, body, _ = request(f"{url}/metrics", headers=auth())
    text = body.decode()
    assert 'unet_matting_review_decisions_total{decision="approve"} 1.0' in text
    assert "unet_matting_review_held 3.0" in text
    assert "unet_matting_confidence_count 4.0" in text


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_a_reviewer_approves_rejects_and_retries_in_the_browser(held, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    d, url = held
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(f"{url}/review")
        wait.until(lambda drv: "token" in drv.find_element(By.ID, "message").text)  # asks for one
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, ".card")) == 4)
        card = {c.get_attribute("data-item"): c for c in driver.find_elements(By.CSS_SELECTOR, ".card")}
        assert "held" in driver.find_element(By.ID, "where").text
        # every thumbnail loads through the API with the token
        wait.until(
            lambda drv: drv.execute_script(
                "return [...document.querySelectorAll('img[data-thumb]')].every(i => i.complete && i.naturalWidth > 0)"
            )
        )

        card["a"].find_element(By.CSS_SELECTOR, "button.approve").click()  # a click
        wait_for(lambda: (d.path("output") / "a.png").exists())
        wait.until(lambda drv: "approved" in card["a"].text)

        driver.execute_script("arguments[0].focus()", card["b"])  # the keyboard
        card["b"].send_keys("a")
        wait_for(lambda: (d.path("output") / "b.png").exists())

        card["c"].find_element(By.CSS_SELECTOR, "button.reject").click()
        wait_for(lambda: (d.path("failed") / "c.png").exists())
        wait.until(lambda drv: "rejected" in card["c"].text)

        Select(card["d"].find_element(By.CSS_SELECTOR, "select.profile")).select_by_value("default")
        card["d"].find_element(By.CSS_SELECTOR, "button.retry").click()
        # the retried item's card is drawn again from the server, with its new record
        wait.until(lambda drv: "retried with default" in drv.find_element(By.CSS_SELECTOR, '[data-item="d"]').text)
        assert "default ·" in driver.find_element(By.CSS_SELECTOR, '[data-item="d"] .meta').text
        shot = driver.get_screenshot_as_png()
    finally:
        driver.quit()

    for name in ("a", "b"):
        with Image.open(d.path("output") / f"{name}.png") as im:
            im.load()  # published whole
        assert (d.path("output") / f"{name}.jpg").exists()
        assert not (d.path("review") / f"{name}.review.json").exists()
    assert not (d.path("output") / "c.png").exists()
    record = json.loads((d.path("review") / "d.review.json").read_text())
    assert record["profile"] == "default"
    decisions = {(e["item"], e["decision"], e["by"]) for e in d.events("review_decision")}
    assert decisions == {
        ("a", "approve", "api"),
        ("b", "approve", "api"),
        ("c", "reject", "api"),
        ("d", "retry", "api"),
    }
    screenshot = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), np.float32)
    assert screenshot.std() > 20  # not blank: cards, thumbnails and text on the page
    (tmp_path / "review-page.png").write_bytes(shot)


def test_the_reviewer_token_reaches_the_review_api_and_nothing_else(daemon, tmp_path: Path) -> None:
    port = free_port()
    api_token, reviewer_token = write(tmp_path / "token", b"api-token\n"), write(tmp_path / "rtoken", b"rev-token\n")
    api_token.chmod(0o600)
    reviewer_token.chmod(0o600)
    d: DaemonProcess = daemon(
        profile="ecom_product",
        http={"listen": f"127.0.0.1:{port}", "token_file": str(api_token), "reviewer_token_file": str(reviewer_token)},
    )
    url = f"http://127.0.0.1:{port}"
    (d.path("incoming") / "a.jpg").write_bytes(jpeg_bytes())
    wait_for(lambda: d.finished("done"))
    status, _, headers = request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "Bearer rev-token"})
    assert status == 401
    assert request(f"{url}/metrics", headers={"Authorization": "Bearer rev-token"})[0] == 401
    status, body, headers = request(f"{url}/api/matting/single", jpeg_bytes(), {"Authorization": "Bearer api-token"})
    assert status == 200 and 0 <= float(headers["x-confidence"]) <= 1
    assert "large unsure region" in headers["x-review-reasons"]
    status, body, _ = request(f"{url}/api/review/items/a/approve", b"{}", auth("rev-token"))
    assert status == 200 and json.loads(body)["by"] == "reviewer"
    assert (d.path("output") / "a.png").exists()
    wait_for(lambda: d.events("review_decision", item="a", by="reviewer"))
