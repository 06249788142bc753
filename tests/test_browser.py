"""The rendered book in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright over the built site ``_build/html`` served on 127.0.0.1 (``make test-browser``,
after ``make book``).

Every page is visited once at 1400 px and once at 400 px (a phone). The checks: no console
error, every image loads, MathJax typesets every equation without a TeX error (MathJax comes
from the npm package ``mathjax``, fetched once into ``_build/browser-cache``: the test has no
CDN), nothing but code is wider than the 400 px viewport, every internal link and anchor
resolves, each chapter's Colab button opens that chapter's notebook, and each explorer's slider
changes its figure. Pages that fail a browser check are kept as screenshots (the first
screen) in ``_build/browser-artifacts``, with ``report.json``, the list of every defect found.
"""

from __future__ import annotations

import functools
import html.parser
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "_build" / "browser-artifacts"
CACHE = ROOT / "_build" / "browser-cache"
CHROMIUM = Path(os.environ.get("ORTHOBOOK_CHROMIUM", "/usr/bin/chromium"))
MATHJAX_VERSION = "3.2.2"
MATHJAX_CDN = "https://cdn.jsdelivr.net/npm/mathjax@3/"
WIDTHS = (1400, 400)
PHONE = 400
# Sphinx's own pages, which have no content of the book's to check beyond loading.
GENERATED = {"search.html", "genindex.html", "py-modindex.html"}


# The site --------------------------------------------------------------------------------------


def _pages() -> list[str]:
    """Every HTML page of the built site, as paths relative to its root."""
    return sorted(
        path.relative_to(SITE).as_posix()
        for path in SITE.rglob("*.html")
        if not path.relative_to(SITE).parts[0].startswith("_")
    )


@functools.cache
def _redirect(page: str) -> str | None:
    """The target of a page that is only a ``<meta http-equiv="Refresh">`` (the site's root
    ``index.html``, which Jupyter Book points at the book's first page), else None."""
    match = re.fullmatch(r'\s*<meta http-equiv="Refresh" content="0; url=([^"]+)" />\s*', (SITE / page).read_text())
    return urljoin(page, match[1]) if match else None


class _Anchors(html.parser.HTMLParser):
    """The ids and the links (``a href``) of one HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(values[key])  # type: ignore[arg-type]
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])  # type: ignore[arg-type]


@functools.cache
def _anchors(relative: str) -> _Anchors:
    parser = _Anchors()
    parser.feed((SITE / relative).read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built book in {SITE}: run `make book` first")
    return SITE


@pytest.fixture(scope="session")
def server(site: Path) -> Iterator[str]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def mathjax() -> Path:
    """The unpacked npm package ``mathjax`` (fetched with ``npm pack`` once, then cached)."""
    package = CACHE / f"mathjax-{MATHJAX_VERSION}" / "package"
    if (package / "es5" / "tex-mml-chtml.js").exists():
        return package
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("the browser test serves MathJax from the npm package `mathjax`: install npm (apt-get install npm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", str(CACHE), "--silent"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    with tarfile.open(CACHE / f"mathjax-{MATHJAX_VERSION}.tgz") as archive:
        archive.extractall(package.parent, filter="data")
    return package


# The visits ------------------------------------------------------------------------------------


@dataclass
class Report:
    """What the visits found, page by page."""

    console: dict[str, list[str]] = field(default_factory=dict)
    search: dict[str, list[str]] = field(default_factory=dict)
    external: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, list[str]] = field(default_factory=dict)
    math: dict[str, list[str]] = field(default_factory=dict)
    overflow: dict[str, list[str]] = field(default_factory=dict)
    explorers: dict[str, list[str]] = field(default_factory=dict)
    screenshots: list[str] = field(default_factory=list)

    def add(self, kind: str, page: str, problems: list[str]) -> None:
        if problems:
            getattr(self, kind).setdefault(page, []).extend(problems)


_MATH_CHECK = """() => {
  const blocks = [...document.querySelectorAll('article .math')];
  const problems = [];
  blocks.forEach((block, i) => {
    const text = block.textContent.trim().slice(0, 60);
    if (!block.querySelector('mjx-container')) problems.push(`not typeset: ${text}`);
    else if (block.querySelector('mjx-merror, [data-mjx-error]'))
      problems.push(`TeX error: ${block.querySelector('mjx-merror, [data-mjx-error]').textContent.slice(0, 80)}`);
  });
  return {count: blocks.length, problems};
}"""

_IMAGE_CHECK = """() => [...document.images]
  .filter((image) => !(image.complete && image.naturalWidth > 0))
  .map((image) => image.currentSrc || image.src)"""

# The outermost visible elements that reach past the viewport's right edge, except code blocks
# (which scroll by design) and what the theme keeps off-screen (closed sidebars, dialogs).
_OVERFLOW_CHECK = """() => {
  const width = document.documentElement.clientWidth;
  const code = 'pre, div.highlight, .literal-block-wrapper, div[class*="highlight-"]';
  const offscreen = 'dialog, .bd-sidebar-primary, .bd-sidebar-secondary, .search-button__wrapper, .bd-header';
  const offenders = [];
  for (const element of document.querySelectorAll('.bd-article *')) {
    if (element.closest(code) || element.closest(offscreen) || element.closest('mjx-assistive-mml')) continue;
    if (!element.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    // An equation is reported once, as its math block, whatever part of it sticks out.
    const unit = element.closest('div.math, span.math, mjx-container') || element;
    if (offenders.some((outer) => outer === unit || outer.contains(unit))) continue;
    offenders.push(unit);
  }
  const describe = (element) => {
    const name = element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') +
      [...element.classList].slice(0, 2).map((c) => '.' + c).join('');
    const section = element.closest('section[id]');
    const text = element.textContent.replace(/\\s+/g, ' ').trim().slice(0, 50);
    const box = element.getBoundingClientRect();
    const right = Math.max(box.right, box.left + element.scrollWidth);
    return `${name} in #${section ? section.id : '?'} (reaches ${Math.round(right)} px): "${text}"`;
  };
  const page = document.documentElement.scrollWidth > width + 1
    ? [`the page scrolls sideways (${document.documentElement.scrollWidth} px > ${width} px)`] : [];
  return page.concat(offenders.map(describe));
}"""

_EXPLORER_CHECK = """async () => {
  const problems = [];
  for (const explorer of document.querySelectorAll('.orthobook-explorer')) {
    const image = explorer.querySelector('img');
    const slider = explorer.querySelector('input[type=range]');
    if (!image || !slider) { problems.push('explorer without image or slider'); continue; }
    const before = image.src;
    slider.value = String(Number(slider.value) === Number(slider.max) ? 0 : Number(slider.max));
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (image.src === before) problems.push(`${explorer.id}: moving the slider leaves the figure unchanged`);
  }
  return problems;
}"""


def _route(mathjax: Path, server: str, external: list[str]):
    def handle(route) -> None:  # noqa: ANN001 - playwright's Route
        url = route.request.url
        if url.startswith(server) or url.startswith("data:"):
            route.continue_()
        elif url.startswith(MATHJAX_CDN):
            path = mathjax / unquote(urlsplit(url).path.split("/mathjax@3/", 1)[1])
            if path.is_file():
                route.fulfill(path=str(path))
            else:
                external.append(url)
                route.abort()
        else:
            external.append(url)
            route.abort()

    return handle


def _visit(browser, page_path: str, width: int, server: str, mathjax: Path, report: Report) -> None:  # noqa: ANN001
    context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    external: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.route("**/*", _route(mathjax, server, external))
    label = f"{page_path} @ {width} px"
    failed = False
    try:
        page.goto(server + page_path, wait_until="load", timeout=60_000)
        # MathJax (loaded asynchronously) typesets the page once; its startup promise resolves then.
        page.wait_for_function(
            "() => !document.querySelector('.math') || !!(window.MathJax && MathJax.startup && MathJax.startup.promise)",
            timeout=60_000,
        )
        page.evaluate(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
            " ? MathJax.startup.promise.then(() => true) : true"
        )
        page.wait_for_timeout(200)
        report.add("console", label, errors)
        report.add("external", label, sorted(set(external)))
        if width == WIDTHS[0]:
            report.add("images", page_path, page.evaluate(_IMAGE_CHECK))
            math = page.evaluate(_MATH_CHECK)
            report.add("math", page_path, math["problems"])
            report.add("explorers", page_path, page.evaluate(_EXPLORER_CHECK))
            failed = bool(errors or external or math["problems"])
        if width == PHONE and page_path.rsplit("/", 1)[-1] not in GENERATED:
            overflow = page.evaluate(_OVERFLOW_CHECK)
            report.add("overflow", page_path, overflow)
            failed = failed or bool(errors or external or overflow)
    except Exception as error:  # noqa: BLE001 - a page that does not load is a finding
        report.add("console", label, [f"page did not load: {error}"])
        failed = True
    if failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"{page_path.replace('/', '__').removesuffix('.html')}-{width}px.png"
        try:
            page.screenshot(path=str(shot))
            report.screenshots.append(shot.relative_to(ROOT).as_posix())
        except Exception:  # noqa: BLE001 - a screenshot is a courtesy
            pass
    context.close()


# Words a reader looks up, each found in prose of the chapters.
SEARCHES = ("Cayley", "margin", "Fisher memory", "householder")
# Text of the page's chrome (header buttons, the print-only table of contents) that a snippet
# must not show in place of the matching sentence.
CHROME = ("Contents", ".ipynb", "Colab", "Fullscreen", ".pdf")


def _search(browser, query: str, server: str, mathjax: Path, report: Report) -> None:  # noqa: ANN001
    """The search page's result snippets for ``query``: each a sentence of the page, no chrome."""
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    external: list[str] = []
    page.route("**/*", _route(mathjax, server, external))
    page.goto(server + f"search.html?q={query}", wait_until="load", timeout=60_000)
    # Sphinx's searchtools.js fills the summary line only in _finishSearch, after the last
    # result (and its snippet) is shown: an empty summary means the search is still going.
    page.wait_for_function(
        "() => !!document.querySelector('#search-results .search-summary')?.textContent",
        timeout=60_000,
    )
    snippets = page.eval_on_selector_all("#search-results li p.context", "els => els.map(e => e.textContent)")
    problems = ["no result has a snippet"] if not snippets else []
    problems += [f"snippet shows the page's chrome: {text[:80]!r}" for text in snippets if any(c in text for c in CHROME)]
    report.add("external", f"search.html?q={query}", sorted(set(external)))
    report.add("search", query, problems)
    context.close()


@pytest.fixture(scope="session")
def report(site: Path, server: str, mathjax: Path) -> Report:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'orthobook[browser]'")
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ORTHOBOOK_CHROMIUM)")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    result = Report()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            # A redirect is followed in the visit of its target: visited itself, its checks would
            # race the navigation that the refresh starts after the load event.
            for page_path in (page for page in _pages() if _redirect(page) is None):
                for width in WIDTHS:
                    _visit(browser, page_path, width, server, mathjax, result)
            for query in SEARCHES:
                _search(browser, query, server, mathjax, result)
        finally:
            browser.close()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.json").write_text(json.dumps(result.__dict__, indent=2, ensure_ascii=False))
    return result


def _summary(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n  " + "\n  ".join(problems) for page, problems in sorted(found.items()))


# The checks ------------------------------------------------------------------------------------


def test_every_page_loads_without_console_errors(report: Report) -> None:
    assert not report.console, "console errors:\n" + _summary(report.console)


def test_no_page_needs_the_network(report: Report) -> None:
    """Everything a page loads comes from the site (MathJax from its CDN address, served locally)."""
    assert not report.external, "requests that left the site:\n" + _summary(report.external)


def test_search_snippets_show_the_matching_sentence(report: Report) -> None:
    assert not report.search, "search results:\n" + _summary(report.search)


def test_every_image_loads(report: Report) -> None:
    assert not report.images, "images that did not load:\n" + _summary(report.images)


def test_mathjax_typesets_every_equation(report: Report) -> None:
    assert not report.math, "equations MathJax did not typeset:\n" + _summary(report.math)


def test_only_code_is_wider_than_a_phone(report: Report) -> None:
    assert not report.overflow, f"elements wider than a {PHONE} px viewport:\n" + _summary(report.overflow)


def test_explorers_respond_without_a_kernel(report: Report) -> None:
    assert not report.explorers, "explorers:\n" + _summary(report.explorers)


def test_internal_links_and_anchors_resolve(site: Path) -> None:
    broken: dict[str, list[str]] = {}
    checked: set[tuple[str, str]] = set()
    for page in _pages():
        for href in _anchors(page).links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = urlsplit(urljoin("/" + page, parts.path or "/" + page)).path.lstrip("/")
            target = unquote(target) or "index.html"
            if (SITE / target).is_dir():
                target = target.rstrip("/") + "/index.html"
            if (target, parts.fragment) in checked:
                continue
            checked.add((target, parts.fragment))
            if not (SITE / target).is_file():
                broken.setdefault(page, []).append(f"{href}: no file {target}")
            elif parts.fragment and target.endswith(".html") and unquote(parts.fragment) not in _anchors(target).ids:
                broken.setdefault(page, []).append(f"{href}: no anchor #{parts.fragment} in {target}")
    assert not broken, "broken internal links:\n" + _summary(broken)


def test_the_site_root_opens_the_book(site: Path) -> None:
    target = _redirect("index.html")
    assert target is not None, "the site's index.html is not a redirect"
    assert (SITE / target).is_file() and _redirect(target) is None, f"index.html points at {target}"


def test_each_chapter_colab_button_opens_its_notebook(site: Path) -> None:
    chapters = sorted(path.stem for path in (ROOT / "book").glob("*.ipynb"))
    assert chapters, "no chapter notebooks in book/"
    wrong: dict[str, list[str]] = {}
    for name in chapters:
        page = f"book/{name}.html"
        assert (SITE / page).is_file(), f"chapter {name} was not rendered"
        colab = [href for href in _anchors(page).links if "colab.research.google.com" in href]
        if not colab:
            wrong[page] = ["no Colab button"]
        elif not all(urlsplit(href).path.endswith(f"/book/{name}.ipynb") for href in colab):
            wrong[page] = colab
    assert not wrong, "Colab buttons:\n" + _summary(wrong)
