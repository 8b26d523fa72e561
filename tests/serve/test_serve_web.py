"""The web page in a real headless browser (Debian's chromium driven by Playwright) against the real server:
attach an image, ask, see the answer stream in, ask a follow-up, start over; drop a video; use an API key."""

import json
import shutil

import pytest
from serve_helpers import start_server
from synthetic_media import make_image, write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs Debian's chromium (apt-get install chromium; scripts/test-system-deps.sh installs it)",
)
ANSWERED = ".message.assistant.done:not(.failed)"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def console_errors():
    return []


@pytest.fixture
def page(browser, console_errors):
    context = browser.new_context(viewport={"width": 900, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    assert console_errors == []  # no script errors and no CSP violations


def start_chat(page, url, max_tokens=6) -> None:
    page.goto(url)
    connected(page)
    page.click(".settings summary")
    page.fill("#max-tokens", str(max_tokens))  # small answers keep the test fast


def connected(page) -> None:
    """Waits for the page to show the served model (no string-eval waits: the page's CSP forbids eval)."""
    from playwright.sync_api import expect

    expect(page.locator("#model-name")).to_have_text("tiny-qwen2-vl")


def chat_bodies(page) -> list:
    """Collects the JSON bodies the page POSTs to /v1/chat/completions."""
    bodies = []
    page.on(
        "request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/chat/completions") else None
    )
    return bodies


def test_ask_about_an_image_follow_up_and_start_over(server, page, tmp_path):
    image = tmp_path / "cat.png"
    make_image(96, 64).save(image)
    bodies = chat_bodies(page)
    start_chat(page, server.url)

    page.set_input_files("#file-input", str(image))
    page.wait_for_selector("#preview img")
    assert page.locator("#remove-media").is_visible()
    page.fill("#question", "What is in the picture?")
    page.click("#send")
    page.wait_for_selector(ANSWERED)
    answer = page.inner_text(".message.assistant .text")
    assert answer.strip() and page.locator(".message.user img").count() == 1
    assert page.locator("#remove-media").is_hidden()  # the image went with the question
    assert page.locator("#auth").is_hidden()  # this server needs no key
    page.screenshot(path=str(tmp_path / "answered.png"))

    page.fill("#question", "Are you sure?")
    page.press("#question", "Enter")
    page.wait_for_selector(f"{ANSWERED} >> nth=1")
    first, second = bodies
    assert first["stream"] is True and first["messages"][0]["content"][0]["type"] == "image_url"
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][1]["content"] == answer  # the streamed answer is kept as the history
    assert second["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")

    page.click("#new-chat")
    assert page.locator(".message").count() == 0 and page.locator("#empty-hint").is_visible()
    page.fill("#question", "Hello?")
    page.click("#send")
    page.wait_for_selector(ANSWERED)
    assert len(bodies[-1]["messages"]) == 1


def test_drop_a_video_and_ask(server, page, tmp_path):
    video = write_video(tmp_path / "clip.mp4", n_frames=4)
    bodies = chat_bodies(page)
    start_chat(page, server.url)
    page.evaluate(
        """([name, bytes]) => {
        const file = new File([new Uint8Array(bytes)], name, {type: "video/mp4"});
        const drop = new DataTransfer();
        drop.items.add(file);
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: drop}));
    }""",
        ["clip.mp4", list(video.read_bytes())],
    )
    page.wait_for_selector("#preview video")
    page.fill("#question", "What happens?")
    page.click("#send")
    page.wait_for_selector(ANSWERED)
    assert bodies[0]["messages"][0]["content"][0]["type"] == "video_url"
    assert page.locator(".message.user video").count() == 1


def test_an_error_is_shown_and_the_page_recovers(server, page, console_errors):
    start_chat(page, server.url)
    page.fill("#max-tokens", "100000")  # over the server's cap: a 400 the page must show
    page.fill("#question", "Hi?")
    page.click("#send")
    page.wait_for_selector(".message.assistant.failed")
    assert "max_tokens" in page.inner_text(".message.assistant.failed")
    assert console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
    console_errors.clear()
    page.fill("#max-tokens", "4")
    page.fill("#question", "Hi again?")
    page.click("#send")
    page.wait_for_selector(ANSWERED)


def test_a_server_with_an_api_key_asks_for_it(engine, page, console_errors):
    srv = start_server(engine, api_key="sesame-123")
    try:
        page.goto(srv.url)
        page.wait_for_selector("#auth:not([hidden])")
        assert page.inner_text("#model-name") == "API key needed"
        assert console_errors == ["Failed to load resource: the server responded with a status of 401 (Unauthorized)"]
        console_errors.clear()
        page.fill("#api-key", "sesame-123")
        page.click("#save-key")
        connected(page)
        page.click(".settings summary")
        page.fill("#max-tokens", "6")
        page.fill("#question", "Hi?")
        page.click("#send")
        page.wait_for_selector(ANSWERED)
    finally:
        srv.__exit__()


def test_the_page_scrolls_to_the_newest_turn(server, browser):
    context = browser.new_context(viewport={"width": 700, "height": 420})  # a few turns overflow it
    page = context.new_page()
    try:
        start_chat(page, server.url, max_tokens=24)
        for k in range(5):
            page.fill("#question", f"Question number {k}: tell me about it in some detail, please.")
            page.click("#send")
            page.wait_for_selector(f"{ANSWERED} >> nth={k}")
            last = page.locator(".message.assistant").nth(k).bounding_box()
            composer = page.locator("#composer").bounding_box()
            # the newest answer is on screen and not under the sticky composer
            assert last["y"] >= 0 and last["y"] + last["height"] <= composer["y"] + 1, (k, last, composer)
        assert page.evaluate("() => window.scrollY") > 0  # the page did scroll
    finally:
        context.close()
