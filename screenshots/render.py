"""Render the README screenshots: the dashboard during a failover (wide and at 80x24), the request detail, the
provider detail, the sessions view, the key modal, help.

Run from the repository root: `.venv/bin/python screenshots/render.py`. Uses the deterministic demo-like
scene of tests/tui_snapshot_app.py (pinned clock and URL, no network), saves each screen as SVG with
Textual's `save_screenshot`, then converts it with `rsvg-convert` (Debian: `apt-get install librsvg2-bin`)
into screenshots/*.png.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
WIDE, NARROW = (160, 48), (80, 24)
# (file name, terminal size, keys pressed after the scene, the screen to wait for by class name)
SHOTS = (
    ("dashboard", WIDE, (), None),
    ("narrow", NARROW, (), None),
    ("detail", WIDE, ("up", "enter"), "RequestDetail"),  # the failover is one line above the newest request
    ("provider", WIDE, ("tab", "enter"), "ProviderDetail"),  # swiftai, cooling, is the first row
    ("sessions", WIDE, ("v",), "SessionsScreen"),
    ("keys", WIDE, ("k",), "KeyEntry"),
    ("help", WIDE, ("question_mark",), "HelpScreen"),
)


async def render_svg(size: tuple[int, int], keys: tuple[str, ...], screen: str | None, target: Path) -> None:
    from textual.events import Paste
    from textual.widgets import Input

    from tests.tui_snapshot_app import build_app, play_failover_scene, wait_until

    scenic = build_app()
    app = scenic.app
    async with app.run_test(size=size) as pilot:
        await play_failover_scene(scenic, pilot)
        await pilot.press(*keys)
        if screen is not None:
            await wait_until(pilot, lambda: type(app.screen).__name__ == screen)
        if screen == "KeyEntry":
            field = app.screen.query_one(Input)
            field.cursor_blink = False
            field.post_message(Paste("sk-ant-api03-pasted-and-masked"))
            await wait_until(pilot, lambda: field.value)
        await pilot.pause()
        app.save_screenshot(filename=target.name, path=str(target.parent))


def to_png(svg: Path, png: Path) -> None:
    # Textual writes spaces as &#160; in <text> runs; librsvg drops leading and trailing ones unless told to
    # preserve whitespace, which glues words together.
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    svg.write_text(text, encoding="utf-8")
    subprocess.run(["rsvg-convert", "--format", "png", "--output", str(png), str(svg)], check=True)


def main() -> int:
    if shutil.which("rsvg-convert") is None:
        print("render.py: rsvg-convert not found (apt-get install librsvg2-bin)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    os.environ["TZ"] = "UTC"  # the stream prints local clock times; the scene is pinned in UTC
    time.tzset()
    with tempfile.TemporaryDirectory() as scratch:
        # Isolated from the host: no user config, history or keyring lookups reach the real home.
        for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            os.environ[name] = str(Path(scratch) / name.lower())
        for name, size, keys, screen in SHOTS:
            svg = Path(scratch) / f"{name}.svg"
            asyncio.run(render_svg(size, keys, screen, svg))
            to_png(svg, OUT / f"{name}.png")
            print(f"wrote {OUT / name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
