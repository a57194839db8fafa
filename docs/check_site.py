"""Check a built documentation site: no broken internal links or anchors, and the pages
render in a headless browser (Chromium).

    python docs/check_site.py docs/_build/html

Chromium is required when CI is set (``.ci/run`` installs Debian's package); elsewhere a
missing browser skips that part with a notice. Exit code 1 lists every problem.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "name" in attrs:
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])


class VisibleText(HTMLParser):
    """The text a reader sees: no scripts, styles or MathJax's hidden assistive copies."""

    HIDDEN = {"script", "style", "mjx-assistive-mml", "noscript", "template"}

    def __init__(self):
        super().__init__()
        self.depth, self.parts = 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


#: what raw TeX looks like when math did not render
RAW_TEX = ("\\[", "\\(", "\\begin")


def raw_tex(dom: str):
    """The raw-TeX markers left in the visible text of a rendered DOM."""
    parser = VisibleText()
    parser.feed(dom)
    text = "".join(parser.parts)
    return [m for m in RAW_TEX if m in text]


def parse(path):
    page = Page()
    page.feed(path.read_text(errors="replace"))
    return page


def broken_links(site: Path):
    pages = {p: parse(p) for p in site.rglob("*.html")}
    problems = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue  # external: not checked offline
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{path.relative_to(site)}: broken link {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{path.relative_to(site)}: missing anchor {link}")
    return len(pages), problems


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def render(chrome, page: Path, shot: Path):
    """The DOM Chromium builds for ``page`` (scripts run), and a screenshot of it."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chrome, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
        dom = subprocess.run(
            [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
        ).stdout
        subprocess.run(
            [*common, f"--screenshot={shot}", "--window-size=1280,900", page.as_uri()],
            capture_output=True,
            timeout=120,
        )
    return dom


# page -> texts its rendered DOM must contain
EXPECT = {
    "index.html": ["snetx", "Equations and gradients", "API reference"],
    "api/snn.html": ["snetx.snn.neuron.LIF", "SpikingNeuron", "TETLoss", "mjx-container"],
    "specification.html": ["mjx-container"],
    "tutorials/plot_3_training_command.html": ["exit code 0", "test acc"],
}


def main(site):
    site = Path(site).resolve()
    problems = []
    count, links = broken_links(site)
    problems += links
    print(f"check_site: {count} pages, {len(links)} broken internal links or anchors")
    chrome = browser()
    if chrome is None:
        if os.environ.get("CI"):
            problems.append("Chromium not found (CI needs it: apt-get install chromium)")
        else:
            print("check_site: no Chromium here; skipping the browser check")
    else:
        shots = site / "_check"
        shots.mkdir(exist_ok=True)
        for rel, texts in EXPECT.items():
            dom = render(chrome, site / rel, shots / (rel.replace("/", "_") + ".png"))
            missing = [t for t in texts if t not in dom]
            if not dom.strip() or missing:
                problems.append(f"{rel}: rendered page lacks {missing or 'everything'}")
            elif raw_tex(dom):  # MathJax did not run (e.g. loaded from a network not there)
                problems.append(f"{rel}: math shows as raw TeX ({', '.join(raw_tex(dom))})")
            elif not (shots / (rel.replace("/", "_") + ".png")).is_file():
                problems.append(f"{rel}: no screenshot")
        print(f"check_site: rendered {len(EXPECT)} pages in {chrome}; screenshots in {shots}")
    for p in problems:
        print("check_site:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html"))
