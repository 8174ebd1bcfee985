"""The page as a person uses it: a real headless Chromium against a real ``speechlib serve`` on 127.0.0.1.

The server is the command itself (``python -m speechlib serve --port 0``,
the tiny trained bundle of the test session); the browser is Debian's
``chromium`` driven by Playwright, with a fake microphone that plays a WAV of
a clip the model classifies right (``--use-file-for-fake-audio-capture``,
looped). The page records, uploads and streams live; what it shows must be
the clip's word. ``.ci/run`` installs chromium when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_serve import resampled, word_clip  # noqa: F401 (word_clip is a fixture)

from speechlib import config, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a browser and a server per module: about half a minute

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own browser builds are never downloaded
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]  # fmt: skip
WAIT_MS = 30_000  # the longest the page may take to show a result


@pytest.fixture(scope="module")
def server(tiny_bundle):
    launched = serve.launch(tiny_bundle)
    yield launched.url
    assert launched.stop() == 0


@pytest.fixture(scope="module")
def mic_wav(word_clip, tmp_path_factory) -> Path:  # noqa: F811
    """What the fake microphone plays, looped: the clip and half a second of silence."""
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    silence = np.zeros(config.SAMPLE_RATE // 2, np.float32)
    sf.write(path, np.concatenate([word_clip[1], silence]), config.SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def page(server, mic_wav):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                     args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic_wav}"])  # fmt: skip
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server)
        page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
        yield page
        browser.close()
        assert errors == [], errors  # no script error on the page


def predictions(page) -> int:
    return int(page.get_attribute("body", "data-predictions") or 0)


def wait_for_prediction(page, before: int) -> str:
    """The label shown once the page has rendered one more prediction (selectors only: the page's CSP has no eval)."""
    page.wait_for_selector(f"body[data-predictions='{before + 1}']", timeout=WAIT_MS)
    return page.inner_text("#prediction")


def test_page_shows_the_model(page):
    text = page.inner_text("#model")
    assert "12 classes" in text and "yes, no, up" in text


def test_record_from_the_microphone(page, word_clip):  # noqa: F811
    before = predictions(page)
    page.click("#record")
    assert wait_for_prediction(page, before) == word_clip[0]
    details = page.inner_text("#details")
    assert "2.00 s at" in details and "classified" in details
    bars = page.locator("#bars .bar")
    assert bars.count() == 5 and bars.first.inner_text().startswith(word_clip[0])
    drawn = page.evaluate("""() => {
        const c = document.getElementById('spectrogram');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const values = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) values.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
        return values.size;
    }""")
    assert drawn > 20  # a spectrogram, not an empty canvas


def test_upload_a_wav_of_another_rate(page, word_clip, tmp_path):  # noqa: F811
    path = tmp_path / "clip_44k_stereo.wav"
    wave = resampled(word_clip[1], 44_100)
    sf.write(path, np.stack([wave, wave], axis=1), 44_100, subtype="PCM_24")
    before = predictions(page)
    page.set_input_files("#file", str(path))
    page.click("#upload")
    assert wait_for_prediction(page, before) == word_clip[0]
    assert "44100 Hz, 2 channel(s), PCM_24" in page.inner_text("#details")


def test_upload_of_a_bad_file_shows_the_reason(page, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all, just some text\n" * 5)
    page.set_input_files("#file", str(path))
    page.click("#upload")
    page.wait_for_selector("#status.error", timeout=WAIT_MS)
    assert "Error 422" in page.inner_text("#status") and "not a RIFF/WAV file" in page.inner_text("#status")


def test_live_mode_lists_detections(page, word_clip):  # noqa: F811
    page.click("#live")
    page.wait_for_selector("#detections li:nth-child(2)", timeout=WAIT_MS)  # the looped clip, twice
    page.click("#live")  # stop
    page.wait_for_selector("#status:has-text('ended')", timeout=WAIT_MS)
    labels = page.eval_on_selector_all("#detections li", "items => items.map(li => li.dataset.label)")
    # both words heard while streaming; a word cut by the stop may be flushed as something else
    assert labels[:2] == [word_clip[0]] * 2, labels
    assert page.inner_text("#live").startswith("Start")
