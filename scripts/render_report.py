"""Render a built report in headless Chromium: check it loads cleanly and save a screenshot.

Usage::

    python scripts/render_report.py runs/study/report/report.html --screenshot docs/report.png

Checks, each failing with a one-line message: Chromium exits 0; its log has no console error,
uncaught exception or failed resource load; the DOM it rendered has the report's title and
every ``<img>`` of the HTML file (all embedded, so nothing is fetched); the screenshot is a PNG.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0")
# what Chromium logs for a broken page (JS errors, missing files, blocked loads)
BAD_LOG = re.compile(r"CONSOLE\(\d+\)|Uncaught|net::ERR_|Failed to load resource", re.IGNORECASE)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("render_report: no Chromium found (apt-get install chromium)")


def run(browser: str, html: Path, extra: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *extra, html.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def check(html: Path, screenshot: Path | None, size: str = "1280,900") -> list[str]:
    """Problems found rendering ``html`` (empty = renders cleanly); writes the screenshot if asked."""
    browser = chromium()
    source = html.read_text(encoding="utf-8")
    title = re.search(r"<title>(.*?)</title>", source, re.S)
    n_img = len(re.findall(r"<img\b", source))
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        dom = run(browser, html, ["--dump-dom"], Path(tmp) / "profile-dom")
        if dom.returncode != 0:
            return [f"chromium --dump-dom exited {dom.returncode}: {dom.stderr.strip()[-300:]}"]
        problems += [f"chromium log: {line.strip()}" for line in dom.stderr.splitlines() if BAD_LOG.search(line)]
        if title and title.group(1) not in dom.stdout:
            problems.append(f"rendered DOM lacks the title {title.group(1)!r}")
        n_rendered = len(re.findall(r"<img\b", dom.stdout))
        if n_rendered != n_img:
            problems.append(f"rendered DOM has {n_rendered} images, the file {n_img}")
        if re.search(r'<img[^>]+src="(?!data:)', dom.stdout):
            problems.append("an image is not embedded (src is not a data: URI)")
        if screenshot is not None:
            shot = Path(tmp) / "shot.png"
            res = run(browser, html, [f"--window-size={size}", f"--screenshot={shot}"], Path(tmp) / "profile-shot")
            if res.returncode != 0 or not shot.is_file() or not shot.read_bytes().startswith(PNG_MAGIC):
                problems.append(f"no screenshot written (exit {res.returncode})")
            else:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, screenshot)
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None)
    ap.add_argument("--window-size", default="1280,900")
    args = ap.parse_args()
    if not args.html.is_file():
        raise SystemExit(f"render_report: {args.html}: no such file")
    problems = check(args.html, args.screenshot, args.window_size)
    for p in problems:
        print(f"render_report: {args.html}: {p}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"{args.html}: renders cleanly in headless Chromium" +
          (f"; screenshot {args.screenshot}" if args.screenshot else ""))


if __name__ == "__main__":
    main()
