"""The report as a person meets it: rendered by a real browser (headless Chromium), every image
decoded, nothing fetched from outside the file, and the summary's numbers equal metrics.json's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # any host name a page asks for fails to resolve: the file must need none
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
# Runs after load: which images decoded, which resources the page fetched, the summary's cells.
PROBE = """<pre id="lr-probe"></pre><script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0,
                                                w: i.naturalWidth}));
  const fetched = performance.getEntriesByType('resource').map(r => r.name);
  const cells = [...document.querySelectorAll('tr[data-pair] td[data-k]')].map(td => ({
    pair: td.parentElement.dataset.pair, policy: td.parentElement.dataset.policy,
    k: td.dataset.k, v: td.dataset.v, text: td.textContent}));
  document.getElementById('lr-probe').textContent =
    JSON.stringify({imgs, fetched, cells, title: document.title});
});
</script></body>"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    why = "no Chromium on this machine (.ci/run installs the Debian package chromium)"
    if os.environ.get("LOCALROUTE_REQUIRE_BROWSER"):  # CI: a missing browser is a failure
        pytest.fail(why)
    pytest.skip(why)


def _run(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_report_renders_in_a_real_browser(evaluated: Path, tmp_path: Path) -> None:
    browser = _browser()
    html = (evaluated / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((evaluated / "metrics.json").read_text())
    # nothing in the file points outside it
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    probed = tmp_path / "report.html"
    probed.write_text(html.replace("</body>", PROBE, 1), encoding="utf-8")

    dom = _run(browser, tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="lr-probe">(.*?)</pre>', dom.stdout, re.S)
    assert m and m.group(1), "the page's load handler did not run"
    probe = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    assert probe["imgs"], "the report has no images"
    assert all(i["ok"] and i["w"] > 0 for i in probe["imgs"]), probe["imgs"]
    outside = [u for u in probe["fetched"] if not u.startswith(("data:", "file:", "blob:"))]
    assert outside == [], f"the report fetched {outside}"

    # the at-a-glance table shows metrics.json's summary, row by row
    rows = {(r["pair"], r["policy"]): r for r in metrics["summary"]["rows"] if r["reached"]}
    assert rows and probe["cells"]
    seen = set()
    for cell in probe["cells"]:
        row = rows[(cell["pair"], cell["policy"])]
        key = cell["k"]
        saved = key.removeprefix("saved_")
        want = row["savings_vs_cloud_only"].get(saved) if saved != key else row[key]
        got = float(cell["v"]) if cell["v"] else None
        assert got == (None if want is None else float(want)), (cell, want)
        seen.add((cell["pair"], cell["policy"]))
    assert seen == set(rows)

    shot = tmp_path / "report.png"
    _run(browser, tmp_path, "--window-size=1280,1600", f"--screenshot={shot}", probed.as_uri())
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
