"""HTML reports (issue 21): what each command's report holds, that it is self-contained, and that it
works in a real browser (headless Chromium driven by Playwright)."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import one_line_error, run_cli
from vidrestore.io import EncodeSettings
from vidrestore.report import deblur_record, load_record, save_record, write_report
from vidrestore.selfhvd import analyze_video
from vidrestore.selfhvd.deblur import deblur
from vidrestore.selfhvd.train import Budget, TrainSettings
from vidrestore.synth.handheld import synth_handheld
from vidrestore.synth.shake import ShakeSettings

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _images(html: str) -> list[str]:
    return re.findall(r'<img[^>]* src="([^"]*)"', html)


def _self_contained(html: str) -> None:
    assert all(src.startswith("data:image/") for src in _images(html))
    assert not re.search(r"(src|href)=\"(?!data:)", html)  # nothing loaded from anywhere
    assert "default-src 'none'" in html


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def deblurred(sharp_video, work, tmp_path_factory):
    """A short handheld clip deblurred by a network trained 4 steps on it, and the report of that job."""
    folder = tmp_path_factory.mktemp("deblur")
    clip = synth_handheld(sharp_video, folder / "clip", ShakeSettings(seed=4, blur_strength=2.0), frames=24, progress=False)
    report = deblur(clip.blurry, folder / "out.mkv", model=None, budget=Budget(steps=4), settings=TrainSettings(crop=64, batch=2),
                    encode=EncodeSettings("ffv1"), work_dir=work, progress=False)
    record = deblur_record(clip.blurry, report, {"budget": "4"}, analyze_video(clip.blurry, work_dir=work, progress=False).dir,
                           ground_truth=clip.gt)
    save_record(record, work)
    return record, write_report(record, folder / "report.html")


def test_deblur_report_shows_selection_supervision_masks_training_drift_and_quality(deblurred):
    record, path = deblurred
    html = path.read_text()
    _self_contained(html)
    for heading in ("Input and output", "Before / after", "SelfHVD: sharp frames and supervision", "masks of frame",
                    "Training", "Drift", "Against the ground truth", "Time per phase", "Settings", "Versions"):
        assert heading in html, heading
    assert 'type="range"' in html and "torch" in html and "training" in record.phases
    assert path.stat().st_size < 10e6


def test_report_is_made_again_from_the_work_directory(deblurred, work, tmp_path):
    record, _ = deblurred
    again = load_record(record.output, work)
    assert again == record
    r = run_cli("report", record.output, "-o", tmp_path / "again.html", "--frame", "3", "--work-dir", work, "-q")
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "again.html").read_text()
    assert "<h3>frame 3</h3>" in html and "SelfHVD" in html
    one_line_error(run_cli("report", tmp_path / "never.mkv", "-o", tmp_path / "x.html", "--work-dir", work),
                   "never.mkv", "no finished job")
    one_line_error(run_cli("report", record.output, "-o", tmp_path / "x.pdf", "--work-dir", work), "x.pdf", ".html")


def test_stabilize_deflicker_and_metrics_reports(sharp_video, tmp_path):
    steady, html_path = tmp_path / "steady.mkv", tmp_path / "steady.html"
    r = run_cli("stabilize", sharp_video, "-o", steady, "--codec", "ffv1", "--report", html_path, "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    html = html_path.read_text()
    _self_contained(html)
    assert "Camera path" in html and "Flicker" not in html
    even, flicker_path = tmp_path / "even.mkv", tmp_path / "even.html"
    r = run_cli("deflicker", sharp_video, "-o", even, "--codec", "ffv1", "--report", flicker_path, "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    assert "Flicker" in flicker_path.read_text()
    r = run_cli("metrics", even, sharp_video, "--report", tmp_path / "m.html", "-q")
    assert r.returncode == 0, r.stderr
    metrics_html = (tmp_path / "m.html").read_text()
    assert "Against the ground truth" in metrics_html and "<th>reference</th><th>judged</th>" in metrics_html


def test_denoise_report_plots_the_measured_noise(sharp_video, tmp_path):
    from vidrestore.synth.noise import synth_noise

    noisy = synth_noise(sharp_video, tmp_path / "noisy", sigma=12.0, frames=8, progress=False)
    out, path = tmp_path / "clean.mkv", tmp_path / "clean.html"
    r = run_cli("denoise", noisy.degraded, "-o", out, "--codec", "ffv1", "--report", path, "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    html = path.read_text()
    _self_contained(html)
    assert "<h2>Noise</h2>" in html and 'alt="noise level against intensity"' in html
    mid = float(re.search(r"50%: ([0-9.]+) / ([0-9.]+) / ([0-9.]+)", html)[2])
    assert 8 < mid < 16  # the synthesized sigma 12 on the 8-bit scale, measured on the green channel


def test_upscale_fidelity_report_marks_the_mode_and_lists_each_frames_sources(tmp_path):
    import subprocess

    src, out, path = tmp_path / "small.mkv", tmp_path / "big.mkv", tmp_path / "big.html"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=25:duration=0.4", "-c:v", "ffv1",
                    str(src)], check=True)
    r = run_cli("upscale", src, "-o", out, "--scale", "2", "--radius", "1", "--fidelity", "--report", path,
                "--work-dir", tmp_path / "w", "-q")
    assert r.returncode == 0, r.stderr
    html = path.read_text()
    _self_contained(html)
    assert "(fidelity mode)" in html and "upscale used observed samples only" in html
    for row in ("<td>0</td><td>0-1</td>", "<td>5</td><td>4-6</td>", "<td>9</td><td>8-9</td>"):
        assert row in html, row


def test_a_bad_report_path_fails_before_any_work(sharp_video, tmp_path):
    out = tmp_path / "out.mkv"
    one_line_error(run_cli("restore", sharp_video, "-o", out, "--report", tmp_path / "no" / "r.html"), "r.html", "does not exist")
    one_line_error(run_cli("stabilize", sharp_video, "-o", out, "--report", tmp_path / "r.txt"), "r.txt", ".html")
    assert not out.exists()


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium; .ci/run "
                                             "installs it)")
def test_report_in_headless_chromium(deblurred, tmp_path):
    """Opened offline in Chromium: no console error, no request, every image decodes, the slider moves the picture."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    _, path = deblurred
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors, requests = [], []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("data:", "file:")) else None)
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            decoded = page.evaluate("""() => Promise.all([...document.images].map(
                img => img.decode().then(() => img.naturalWidth > 0 && img.naturalHeight > 0, () => false)))""")
            assert len(decoded) >= 10 and all(decoded)
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            viewer = page.locator(".ba").first
            viewer.scroll_into_view_if_needed()
            before = viewer.screenshot()
            slider = viewer.locator("input[type=range]")
            slider.fill("5")
            assert page.evaluate("() => document.querySelector('.ba .after').style.clipPath") == "inset(0px 0px 0px 5%)"
            after = viewer.screenshot()
            assert before != after
            assert errors == [] and requests == []
        finally:
            browser.close()
