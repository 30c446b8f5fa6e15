"""The web console (rest/static) in a real browser against a real server.

Debian's Chromium driven by Playwright for Python (no browser download); one browser and one
facesearch-server (gRPC + HTTP, a token set, the real model) for the module. The tests run in file
order on one small gallery: four of the 5-celebrity people enrolled over REST, then the pages
enrol, identify, rename, move, merge and delete; the server keeps strangers (--keep-unknown-days 1)
for the Unknown page. Screenshots go to an artifacts folder, printed at
the start (FACESEARCH_TEST_ARTIFACTS chooses it); FACESEARCH_UPDATE_DOCS_IMG=1 also refreshes
docs/img/console.png from the gallery page.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from facesearch.testing import ServerProcess

from tests.helpers import REPO, encode, unit

CHROMIUM = Path(os.environ.get("FACESEARCH_CHROMIUM", "/usr/bin/chromium"))
TOKEN = "console-test-token"
SEEDED = ["ben_afflek", "elton_john", "jerry_seinfeld", "mindy_kaling"]   # madonna is enrolled through the page
TIMEOUT_MS = 120_000   # model calls on a shared 2-core machine


def title(person: str) -> str:
    return person.replace("_", " ").title()


def photos(samples: Path, person: str, split: str = "train", n: int = 3) -> list[Path]:
    return sorted((samples / split / person).glob("*.jpg"))[:n]


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (.ci/run does) "
                    "or set FACESEARCH_CHROMIUM")
    return CHROMIUM


@pytest.fixture(scope="module")
def artifacts(request, tmp_path_factory) -> Path:
    folder = Path(os.environ.get("FACESEARCH_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"console screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def console(chromium, tmp_path_factory):
    """The server with its HTTP port (an empty gallery until `seeded`), and an httpx client for checks."""
    proc = ServerProcess(tmp_path_factory.mktemp("console"),   # keeps strangers a day: the Unknown page
                         env={"FACESEARCH_AUTH_TOKEN": TOKEN, "FACESEARCH_KEEP_UNKNOWN_DAYS": "1"})
    proc.start()
    base = proc.http_url
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300) as http:
            assert http.get("/readyz").status_code == 200, proc.log()
            http.base = base
            yield http
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def seeded(console, samples):
    """Four people, three train photos each, enrolled over REST."""
    for person in SEEDED:
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos(samples, person)]
        r = console.post(f"/v1/identities/{person}/faces", files=files, data={"display_name": title(person)})
        assert r.status_code == 200, r.text
        assert len(r.json()["face_ids"]) == 3, r.json()
    return console


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        yield b
        b.close()


def open_tab(browser, console, artifacts, request, token: bool):
    """A fresh browser context and tab; with token, the token is already in sessionStorage."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=console.base)
    if token:
        context.add_init_script(f"sessionStorage.setItem('facesearch.token', {TOKEN!r})")
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    requests: list = []
    tab.on("request", lambda r: requests.append(r))
    yield tab, requests
    tab.screenshot(path=str(artifacts / f"{request.node.name}-end.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def page(browser, console, artifacts, request):
    """A tab with the token already entered (as after the first test entered it in the dialog)."""
    yield from (tab for tab, _ in open_tab(browser, console, artifacts, request, token=True))


@pytest.fixture
def tab(browser, console, artifacts, request):
    """(a tab without a token, the requests it made)."""
    yield from open_tab(browser, console, artifacts, request, token=False)


def show(page, hash_: str) -> None:
    page.goto("/" + hash_)
    page.wait_for_selector("#view[data-ready]:not([data-ready=''])")


def drop(page, selector: str, files: list[tuple[str, bytes, str]]) -> None:
    """Drops files on an element as a user's drag and drop does (a DataTransfer with Files)."""
    data = page.evaluate_handle(
        """files => { const dt = new DataTransfer();
           for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.b64), c => c.charCodeAt(0))],
                                                        f.name, {type: f.type}));
           return dt; }""",
        [{"name": n, "b64": base64.b64encode(b).decode(), "type": t} for n, b, t in files])
    page.dispatch_event(selector, "drop", {"dataTransfer": data})


def confirm(page, ok: bool = True) -> None:
    page.wait_for_selector("#confirm[open]")
    page.click("#confirm-ok" if ok else "#confirm-cancel")


# -- the tests, in file order -----------------------------------------------------------------
def test_empty_gallery_asks_for_the_token_once_and_keeps_it_out_of_urls(tab, artifacts):
    from playwright.sync_api import expect

    page, requests = tab
    show(page, "#/")
    expect(page.locator("#token[open]")).to_be_visible()    # the API answered 401
    page.fill("#token-input", TOKEN)
    page.click("#token-save")
    expect(page.locator("#identities .empty")).to_contain_text("The gallery is empty")
    expect(page.locator("#token-button")).to_have_text("Token set")
    page.screenshot(path=str(artifacts / "gallery-empty.png"))

    page.goto("/#/settings")                                  # same tab: no second prompt
    expect(page.locator("#info td[data-key=Identities]")).to_have_text("0")
    assert page.evaluate("sessionStorage.getItem('facesearch.token')") == TOKEN
    assert page.context.cookies() == []
    api_calls = [r for r in requests if "/v1/" in r.url]
    assert api_calls, "the console made no API call"
    assert all(TOKEN not in r.url for r in requests)
    assert all(r.all_headers().get("authorization") == f"Bearer {TOKEN}" for r in api_calls[-2:])


def unknown_clusters(console) -> list[dict]:
    r = console.get("/v1/unknown/clusters")
    assert r.status_code == 200, r.text
    return r.json()["clusters"]


def identify_strangers(console, samples, split: str, n: int) -> dict:
    """Identify n photos of madonna (not enrolled yet) as a camera would; the first cluster of two or more
    of those answered unknown that the server's background clustering (every 2 s) forms."""
    for photo in photos(samples, "madonna", split, n):
        r = console.post("/v1/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
                         data={"source": "front-door"})
        assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if found := [c for c in unknown_clusters(console) if c["size"] >= 2]:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no cluster of unknown faces formed: {console.get('/v1/unknown/clusters').text}")


def test_an_unknown_cluster_is_named_through_the_page(page, seeded, samples, artifacts):
    """The server keeps strangers (--keep-unknown-days); the Unknown page lists their cluster with its
    crops, and naming it enrols its faces as an identity and takes it off the list."""
    from playwright.sync_api import expect

    cluster = identify_strangers(seeded, samples, "val", 5)
    cid = cluster["cluster_id"]
    show(page, "#/unknown")
    expect(page.locator("#unknown-on")).to_contain_text("1 day")
    card = page.locator(f"#clusters [data-cluster='{cid}']")
    expect(card.locator("[data-role=size]")).to_have_text(f"{cluster['size']} faces")
    expect(card).to_contain_text("front-door")
    expect(card.locator(".strip img")).to_have_count(len(cluster["sample_face_ids"]))
    page.wait_for_function("[...document.querySelectorAll('.strip img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(artifacts / "unknown.png"), full_page=True)

    card.locator(f"#name-{cid}").fill("visitor_1")
    card.locator("[data-role=display-name]").fill("Front-door visitor")
    card.locator("[data-role=enrol]").click()
    expect(page.locator(f"[data-enrolled='{cid}']")).to_contain_text("visitor_1")
    try:
        identity = seeded.get("/v1/identities/visitor_1").json()
        assert (identity["display_name"], identity["face_count"]) == ("Front-door visitor", cluster["size"]), identity
        assert cid not in {c["cluster_id"] for c in unknown_clusters(seeded)}
    finally:   # madonna is enrolled through the Enrol page next
        assert seeded.delete("/v1/identities/visitor_1").status_code == 200


def test_forget_every_unknown_face_through_the_page(page, seeded, samples):
    from playwright.sync_api import expect

    identify_strangers(seeded, samples, "val", 5)   # strangers again: their identity was deleted
    show(page, "#/unknown")
    expect(page.locator("#clusters .cluster").first).to_be_visible()
    page.click("#forget-all")
    confirm(page)
    expect(page.locator("#no-clusters")).to_be_visible()
    expect(page.locator("#unknown-summary")).to_have_text("0 kept · 0 in no cluster yet")
    body = seeded.get("/v1/unknown/clusters").json()
    assert (body["clusters"], body["total_faces"]) == ([], 0), body


def test_the_unknown_page_says_plainly_when_the_server_keeps_nothing(page, seeded):
    """Retention off (the default) is a display branch of the page: the server's own /v1/info answer,
    with keep_unknown_days 0 as a server started without --keep-unknown-days gives it."""
    from playwright.sync_api import expect

    def info_without_retention(route):
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "keep_unknown_days": 0.0})

    page.route("**/v1/info", info_without_retention)
    show(page, "#/unknown")
    expect(page.locator("#unknown-off")).to_contain_text("--keep-unknown-days")
    expect(page.locator("#unknown-on")).to_have_count(0)


def test_enrol_through_the_page_shows_each_photo_result(page, seeded, samples, artifacts):
    from playwright.sync_api import expect

    show(page, "#/enrol")
    page.fill("#enrol-id", "madonna")
    expect(page.locator("#enrol-hint")).to_contain_text("New identity")
    page.fill("#enrol-name", "Madonna")
    blank = encode(np.full((240, 240, 3), 128, np.uint8))
    drop(page, ".drop", [(p.name, p.read_bytes(), "image/jpeg") for p in photos(samples, "madonna")]
         + [("blank.png", blank, "image/png")])
    expect(page.locator("#enrol-go")).to_have_text("Enrol 4 photos")
    page.click("#enrol-go")
    expect(page.locator("#enrol-list .result[data-status=ok]")).to_have_count(3)
    rejected = page.locator("#enrol-list .result[data-status=bad]")
    expect(rejected).to_have_count(1)
    expect(rejected).to_have_attribute("data-name", "blank.png")
    expect(rejected.locator(".detail")).not_to_be_empty()    # the server's reason, e.g. no face found
    page.screenshot(path=str(artifacts / "enrol.png"), full_page=True)
    identity = seeded.get("/v1/identities/madonna").json()
    assert (identity["display_name"], identity["face_count"]) == ("Madonna", 3)

    # The gallery: five people, each with a thumbnail of a stored crop.
    show(page, "#/")
    cards = page.locator("#identities .identity")
    expect(cards).to_have_count(5)
    expect(page.locator("#identities .identity img")).to_have_count(5)
    page.wait_for_function("[...document.querySelectorAll('#identities img')].every(i => i.complete && i.naturalWidth > 0)")
    shot = artifacts / "gallery.png"
    page.mouse.move(1270, 850)                                # no card under the pointer (hover lifts it)
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1280, "height": 410})
    if os.environ.get("FACESEARCH_UPDATE_DOCS_IMG") == "1":
        shutil.copyfile(shot, REPO / "docs" / "img" / "console.png")

    page.fill("#gallery-search", "mad")                       # the prefix filter, server side
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Madonna")
    page.wait_for_url(re.compile(r"#/\?q=mad$"))
    listed = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)"
                           ".filter(u => u.includes('/v1/identities?'))")
    assert any(u.endswith("?page_size=24&prefix=mad") for u in listed), listed      # a page, never everything
    assert all("page_size=" in u for u in listed), listed


def test_gallery_pages_through_identities(page, seeded):
    from playwright.sync_api import expect

    show(page, "#/?page_size=2")
    cards = page.locator("#identities .identity")
    expect(cards).to_have_count(2)
    first = cards.evaluate_all("cs => cs.map(c => c.dataset.id)")
    expect(page.locator("#prev")).to_be_disabled()
    page.click("#next")
    expect(page.locator("#page-label")).to_have_text("Page 2")
    second = cards.evaluate_all("cs => cs.map(c => c.dataset.id)")
    assert len(second) == 2 and not set(first) & set(second)
    page.click("#prev")
    expect(page.locator("#page-label")).to_have_text("Page 1")
    assert cards.evaluate_all("cs => cs.map(c => c.dataset.id)") == first


def test_identify_through_the_page_draws_boxes_and_names(page, seeded, samples, artifacts):
    from playwright.sync_api import expect

    photo = photos(samples, "ben_afflek", "val", 1)[0]
    show(page, "#/try")
    drop(page, ".drop", [(photo.name, photo.read_bytes(), "image/jpeg")])
    boxes = page.locator("#stage .box")
    expect(boxes).to_have_count(1)
    expect(boxes.first).to_have_class("box known")
    expect(boxes.first.locator(".label")).to_contain_text("Ben Afflek")
    expect(page.locator("#try-faces .matches")).to_contain_text("ben_afflek")
    expect(page.locator("#try-faces .decided")).to_contain_text("default cutoff 3.50")
    page.screenshot(path=str(artifacts / "try-it.png"), full_page=True)

    # The box is drawn where the server found the face, in the photo's displayed scale.
    answer = seeded.post("/v1/identify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}).json()
    x, y, w, h = (answer["faces"][0]["box"][k] for k in ("x", "y", "width", "height"))
    assert boxes.first.get_attribute("data-box") == f"{x},{y},{w},{h}"
    img = page.locator("#try-photo").bounding_box()
    natural = page.locator("#try-photo").evaluate("i => i.naturalWidth")
    drawn = boxes.first.bounding_box()
    scale = img["width"] / natural
    for got, want in [(drawn["x"] - img["x"], x * scale), (drawn["y"] - img["y"], y * scale),
                      (drawn["width"], w * scale), (drawn["height"], h * scale)]:
        assert abs(got - want) <= 2, (drawn, img, (x, y, w, h), scale)

    # A cutoff in the form decides instead: at 0.01 nobody is that close.
    page.fill("#try-cutoff", "0.01")
    drop(page, ".drop", [(photo.name, photo.read_bytes(), "image/jpeg")])
    expect(page.locator("#stage .box.unknown")).to_have_count(1)
    expect(page.locator("#stage .box .label")).to_have_text("unknown")
    expect(page.locator("#try-faces .decided")).to_contain_text("request cutoff 0.01")
    expect(page.locator("#try-faces .nearest")).to_contain_text("Nearest: Ben Afflek at")


def test_rename_and_edit_metadata(page, seeded):
    from playwright.sync_api import expect

    show(page, "#/identity/mindy_kaling")
    page.fill("#display-name", "Mindy K.")
    page.click("#rename-form button[type=submit]")
    expect(page.locator("#identity-title")).to_have_text("Mindy K.")
    page.click("#metadata-form >> text=+ Field")
    page.locator("#metadata-rows .key").last.fill("team")
    page.locator("#metadata-rows .value").last.fill("comedy")
    page.click("#metadata-form button[type=submit]")
    page.wait_for_selector(".toast.ok >> text=Metadata saved")
    identity = seeded.get("/v1/identities/mindy_kaling").json()
    assert (identity["display_name"], identity["metadata"]) == ("Mindy K.", {"team": "comedy"})


def test_move_a_face_then_merge_it_back(page, seeded):
    from playwright.sync_api import expect

    show(page, "#/identity/jerry_seinfeld")
    faces = page.locator("#faces .face")
    expect(faces).to_have_count(3)
    moved = faces.first.get_attribute("data-face-id")
    faces.first.locator("input.pick").check()
    page.fill("#move-target", "jerry_extra")
    page.check("#move-create")
    page.click("#move-faces")
    confirm(page)
    expect(faces).to_have_count(2)
    expect(page.locator("#face-count")).to_have_text("2 faces")
    assert seeded.get("/v1/identities/jerry_extra").json()["face_ids"] == [moved]

    page.fill("#merge-source", "jerry_extra")
    page.click("#merge-form button[type=submit]")
    confirm(page, ok=False)                                   # asked first: cancel changes nothing
    assert seeded.get("/v1/identities/jerry_extra").status_code == 200
    page.click("#merge-form button[type=submit]")
    confirm(page)
    expect(faces).to_have_count(3)
    expect(page.locator("#face-count")).to_have_text("3 faces")
    assert seeded.get("/v1/identities/jerry_extra").status_code == 404
    assert moved in seeded.get("/v1/identities/jerry_seinfeld").json()["face_ids"]


def test_delete_a_face_then_the_identity(page, seeded):
    from playwright.sync_api import expect

    show(page, "#/identity/elton_john")
    faces = page.locator("#faces .face")
    expect(faces).to_have_count(3)
    gone = faces.first.get_attribute("data-face-id")
    faces.first.locator(".delete-face").click()
    confirm(page)
    expect(faces).to_have_count(2)
    assert gone not in seeded.get("/v1/identities/elton_john").json()["face_ids"]
    assert seeded.get(f"/v1/faces/{gone}").status_code == 404

    page.click("#delete-identity")
    confirm(page, ok=False)
    assert seeded.get("/v1/identities/elton_john").status_code == 200
    page.click("#delete-identity")
    confirm(page)
    page.wait_for_url(re.compile(r"#/$"))
    expect(page.locator("#identities .identity")).to_have_count(4)
    assert seeded.get("/v1/identities/elton_john").status_code == 404


def test_settings_show_the_cutoff_and_calibrate_before_applying(page, seeded, artifacts):
    from playwright.sync_api import expect

    # Calibrating needs more comparisons than a dozen photos give (10 / target): 40 more people,
    # enrolled as embeddings, three near copies of each.
    rng = np.random.default_rng(20)
    for n, center in enumerate(unit(rng, 40)):
        faces = center + 0.03 * rng.normal(size=(3, 128))
        r = seeded.post("/v1/identities", json={"identity_id": f"synthetic_{n:02d}", "embeddings": [
            {"values": (f / np.linalg.norm(f)).tolist(), "model_id": "facenet-128"} for f in faces]})
        assert r.status_code == 200, r.text
    show(page, "#/settings")
    expect(page.locator("#info td[data-key='Cutoff source']")).to_contain_text("default")
    expect(page.locator("#info td[data-key=Model]")).to_have_text("facenet-128")
    page.select_option("#cal-target", "fpir")
    page.fill("#cal-rate", "0.1")
    page.click("#cal-preview")
    result = page.locator("#cal-result")
    expect(result.locator("td[data-key=Applied]")).to_have_text("no, preview only")
    cutoff = result.locator("td[data-key=Cutoff]").inner_text()
    assert 0 < float(cutoff) <= 12
    assert seeded.get("/v1/info").json()["default_max_distance_source"] == "CUTOFF_SOURCE_DEFAULT"
    page.screenshot(path=str(artifacts / "settings.png"), full_page=True)

    page.click("#cal-apply")
    confirm(page)
    expect(result.locator("td[data-key=Applied]")).to_have_text("yes")
    expect(page.locator("#info td[data-key='Cutoff source']")).to_contain_text("calibrated")
    expect(page.locator("#info td[data-key=Cutoff]")).to_have_text(cutoff)
    assert seeded.get("/v1/info").json()["default_max_distance_source"] == "CUTOFF_SOURCE_CALIBRATED"
