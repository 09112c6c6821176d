"""The single-file HTML report: self-contained, and rendered by headless Chromium without console errors.

CI installs Debian's ``chromium`` package (``apt-get install -y chromium``); without ``/usr/bin/chromium``
the rendering test is skipped with that reason.
"""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from evalkit.reports.build import build_report
from evalkit.reports.testing import use_test_metrics, write_example_run

CHROMIUM = Path("/usr/bin/chromium")
# as root in a container: no sandbox, no GPU, nothing that reaches the network
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]


@pytest.fixture
def report(tmp_path, monkeypatch):
    use_test_metrics(monkeypatch)
    write_example_run(tmp_path / "run", steps=(8, 16, 32))
    return build_report([tmp_path / "run"], tmp_path / "out", bootstrap_rounds=20, seed=0, grid_videos=2)


def test_html_is_self_contained(report):
    html_path = next(p for p in report.files if p.suffix == ".html")
    text = html_path.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "the report must not load external resources"
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == len(report.speed_plots) + len(report.breakdown_plots) + len(report.grids) >= 4
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Partial: unet on ucf101-zeroshot/test" in text and "20 of 48 samples" in text
    assert "Snap Video (512x288)" in text and "Table 4" in text
    assert "bootstrap (basic, 20 rounds, seed 0)" in text


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless rendering needs /usr/bin/chromium "
                    "(Debian: apt-get install -y chromium)")
def test_html_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    html_path = next(p for p in report.files if p.suffix == ".html")
    shot = tmp_path / "report.png"
    proc = _chromium(["--window-size=1300,2400", f"--screenshot={shot}", html_path.as_uri()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "console messages while rendering the report:\n" + "\n".join(console)
    with Image.open(shot) as img:
        assert img.size == (1300, 2400)
        colours = img.convert("L").getextrema()
        assert colours[1] - colours[0] > 100, "the screenshot is blank"
    dom = _chromium(["--dump-dom", html_path.as_uri()], tmp_path)
    assert 'data-report-ready="1"' in dom.stdout, "the report's script did not run to its end"
    assert ":CONSOLE" not in dom.stderr


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless rendering needs /usr/bin/chromium")
def test_console_check_catches_a_broken_image(report, tmp_path):
    """The check above can fail: a report whose image does not decode logs a console error."""
    html_path = next(p for p in report.files if p.suffix == ".html")
    broken = tmp_path / "broken.html"
    text = html_path.read_text()
    broken.write_text(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,AAAA", text, count=1))
    proc = _chromium(["--window-size=800,600", f"--screenshot={tmp_path / 'b.png'}", broken.as_uri()], tmp_path)
    assert any(":CONSOLE" in line and "did not decode" in line for line in proc.stderr.splitlines())
