"""Sphinx extension of the book: what the API pages and the chapters need beyond Sphinx.

- ``orthobook-notes`` (directive): the named notes of a module's source (``# Note [title]``
  comment blocks, STYLE.md) as readable text on the module's API page, each with the label
  ``note-<slug>`` (``{ref}`note-cayley-in-increment-form```).
- Links from text: on every page, ``Note [title]`` in running text links to the note; on the
  API pages, a docstring's ``Eq. (label)`` becomes the equation's number as the reader sees it
  (a link, or the bare number inside a code block). A label or note that does not exist is a
  warning, so the warnings-as-errors build catches a docstring that names a missing equation.
- ``literalinclude`` from the package gets a caption naming the included object and its
  module file, linked to the object's API entry when it is public.
- ``orthobook_author_year``: a pybtex style for the bibliography (authors last name first,
  sorted by author and year) whose labels are the author–year form the text cites
  ("Le et al., 2015") instead of ``[ASB16]``-like ones.
- A script that keeps the article header's buttons out of the search result snippets, and a
  style sheet that keeps wide equations, signatures and table cells within a phone's width.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from collections import Counter
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralInclude
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PACKAGE = "orthobook"
API_PAGE_PREFIX = "book/api"
STATIC = Path(__file__).parent / "static"

_NOTE_START = re.compile(r"^\s*# Note \[(?P<title>[^\]]+)\]\s*$")
_NOTE_UNDERLINE = re.compile(r"^\s*#\s*~+\s*$")
_NOTE_REFERENCE = re.compile(r"Note \[(?P<title>[^\]]+)\]")
_EQUATION_REFERENCE = re.compile(r"Eq\.\s+\((?P<label>[A-Za-z][A-Za-z0-9_:.-]*)\)")


def note_label(title: str) -> str:
    """The cross-reference label of a note: ``note-`` and its title in lower case, dashed."""
    return "note-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def read_notes(source: str) -> list[tuple[str, int, list[str]]]:
    """The named notes of a module's source: ``(title, line, paragraphs)`` in order.

    A note is a ``# Note [title]`` line followed by comment lines; it ends at the first line
    that is not a comment. A bare ``#`` line separates paragraphs. The title's underline (a
    ``# ~~~~`` line right after it) is layout of the source, not text: it is left out (kept, it
    was one unbreakable word that widened a phone's page).
    """
    notes: list[tuple[str, int, list[str]]] = []
    lines = source.splitlines()
    index = 0
    while index < len(lines):
        match = _NOTE_START.match(lines[index])
        index += 1
        if not match:
            continue
        start = index
        if index < len(lines) and _NOTE_UNDERLINE.match(lines[index]):
            index += 1
        paragraphs: list[list[str]] = [[]]
        while index < len(lines) and lines[index].lstrip().startswith("#"):
            text = lines[index].lstrip()[1:].strip()
            if text:
                paragraphs[-1].append(text)
            elif paragraphs[-1]:
                paragraphs.append([])
            index += 1
        text = [" ".join(p) for p in paragraphs if p]
        if text:  # a bare ``# Note [title]`` line in code refers to the note, it is not one
            notes.append((match["title"], start, text))
    return notes


def _module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"module {module!r} not found")
    return Path(spec.origin)


class NotesDirective(SphinxDirective):
    """``orthobook-notes MODULE``: the module's named notes, each a labelled rubric and text."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        path = _module_file(module)
        self.env.note_dependency(str(path))
        notes = read_notes(path.read_text(encoding="utf-8"))
        if not notes:
            return []
        std = self.env.get_domain("std")
        relative = path.relative_to(_module_file(PACKAGE).parent.parent).as_posix()
        container = nodes.container(classes=["orthobook-notes"])
        container += nodes.rubric(text=f"Notes in the source of {module}")
        for title, line, paragraphs in notes:
            label = note_label(title)
            if label in std.labels and std.labels[label][0] != self.env.docname:
                logger.warning("note %r is defined twice", title, location=(self.env.docname, self.lineno))
            section = nodes.container(ids=[label], classes=["orthobook-note"])
            heading = nodes.paragraph(classes=["orthobook-note-title"])
            heading += nodes.strong(text=f"Note [{title}]")
            heading += nodes.Text(" — ")
            heading += nodes.literal(text=f"{relative}, line {line}")
            section += heading
            for text in paragraphs:
                section += nodes.paragraph(text=text)
            container += section
            std.anonlabels[label] = (self.env.docname, label)
            std.labels[label] = (self.env.docname, label, f"Note [{title}]")
        return [container]


def public_names(module: str) -> list[str]:
    """The names a module documents: its ``__all__``, else its own public functions and classes."""
    imported = importlib.import_module(module)
    if hasattr(imported, "__all__"):
        return list(imported.__all__)
    return [
        name
        for name, value in vars(imported).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module
    ]


class SummaryDirective(SphinxDirective):
    """``orthobook-summary MODULE``: an autosummary table of the module's public functions and
    classes (its constants are documented below the table, where their values show)."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        lines = [f".. currentmodule:: {module}", "", ".. autosummary::", "   :nosignatures:", ""]
        imported = importlib.import_module(module)
        names = [n for n in public_names(module) if inspect.isroutine(getattr(imported, n)) or inspect.isclass(getattr(imported, n))]
        lines += [f"   {name}" for name in names]
        container = nodes.container(classes=["orthobook-summary"])
        self.state.nested_parse(StringList(lines, source=f"<summary of {module}>"), self.content_offset, container)
        return container.children


class ConstantsDirective(SphinxDirective):
    """``orthobook-constants MODULE``: the public constants that ``automodule`` leaves out.

    autodoc documents a module's data only when its source has a ``#:`` comment for it; a
    constant that is public (in ``__all__``) and that docstrings name (``:data:`MNIST_MD5```)
    is documented here with its value, so the references resolve.
    """

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        imported = importlib.import_module(module)
        documented = {name for (_, name) in ModuleAnalyzer.for_module(module).find_attr_docs()}
        lines: list[str] = []
        for name in public_names(module):
            value = getattr(imported, name)
            if inspect.isroutine(value) or inspect.isclass(value) or inspect.ismodule(value) or name in documented:
                continue
            lines += [f".. autodata:: {module}.{name}"]
            if " at 0x" in repr(value):
                lines += ["   :no-value:"]
            lines += [""]
        if not lines:
            return []
        container = nodes.container(classes=["orthobook-constants"])
        self.state.nested_parse(StringList(lines, source=f"<constants of {module}>"), self.content_offset, container)
        return container.children


class SourceLiteralInclude(LiteralInclude):
    """``literalinclude`` that captions a piece of the package with its object and module."""

    def run(self) -> list[nodes.Node]:
        if "caption" not in self.options:
            caption = self._package_caption()
            if caption:
                self.options["caption"] = caption
        return super().run()

    def _package_caption(self) -> str | None:
        _, filename = self.env.relfn2path(self.arguments[0])
        path = Path(filename).resolve()
        root = _module_file(PACKAGE).parent.parent
        try:
            relative = path.relative_to(root)
        except ValueError:
            return None
        if relative.parts[0] != PACKAGE or path.suffix != ".py":
            return None
        module = ".".join(relative.with_suffix("").parts)
        myst = Path(self.env.doc2path(self.env.docname)).suffix in (".md", ".ipynb")
        code = (lambda text: f"`{text}`") if myst else (lambda text: f"``{text}``")
        obj = self.options.get("pyobject")
        if obj and _is_public(module, obj):
            target = f"{module}.{obj}"
            named = f"{{py:obj}}`{target}`" if myst else f":py:obj:`{target}`"
        elif obj:
            named = code(f"{module}.{obj}")
        else:
            named = f"{{py:mod}}`{module}`" if myst else f":py:mod:`{module}`"
        return f"{named} in {code(relative.as_posix())}"


def _is_public(module: str, obj: str) -> bool:
    """Whether ``obj`` (``name`` or ``Class.method``) is in the module's ``__all__``."""
    head, _, rest = obj.partition(".")
    imported = importlib.import_module(module)
    if head not in getattr(imported, "__all__", ()):
        return False
    return not rest or not rest.startswith("_") and hasattr(getattr(imported, head), rest)


_LITERAL_SPAN = re.compile(r"(``.*?``|`[^`]*`)")


def _prepare_docstring(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Make two plain-text habits of the docstrings read as meant in reStructuredText.

    - ``|x|`` is an absolute value, not a substitution reference: its bars are escaped
      (outside code, doctest lines and literal blocks).
    - An ``Args:`` entry that names several parameters over more than one line
      (``a, b, c,`` / ``d: as for ...``) is joined into one line, which Napoleon needs.

    A constant without a ``#:`` comment would show its type's docstring (``dict``'s, ``str``'s):
    it shows none.
    """
    own = type(obj).__doc__
    if what == "data" and lines and own and lines[0].strip() == own.strip().splitlines()[0].strip():
        lines[:] = []
        return
    headed: list[str] = []
    for line in lines:
        # "Attributes (what they decide):" is no Napoleon section: the remark goes before it.
        section = re.fullmatch(r"(\s*)(Args|Attributes|Returns|Raises|Yields) \(([^)]*)\):", line)
        if section:
            indent, name, remark = section.groups()
            headed += [f"{indent}({name}: {remark}.)", "", f"{indent}{name}:"]
        else:
            headed.append(line)
    joined: list[str] = []
    for line in headed:
        if joined and re.fullmatch(r"\s+\w+(, \w+)*,", joined[-1]) and ":" in line:
            joined[-1] = joined[-1] + " " + line.strip()
        else:
            joined.append(line)
    literal_indent: int | None = None
    for index, line in enumerate(joined):
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and (not line.strip() or indent > literal_indent):
            continue
        literal_indent = None
        if line.rstrip().endswith("::"):
            literal_indent = indent
        stripped = line.lstrip()
        if stripped.startswith((">>>", "...")) or "|" not in line:
            continue
        parts = _LITERAL_SPAN.split(line)
        joined[index] = "".join(part if k % 2 else re.sub(r"(?<!\\)\|", r"\\|", part) for k, part in enumerate(parts))
    lines[:] = joined


def _link_notes(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``Note [title]`` in running text → a link to the note (outside code)."""
    std = app.env.get_domain("std")
    on_api_page = docname.startswith(API_PAGE_PREFIX)
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or isinstance(parent, (nodes.literal_block, nodes.literal, nodes.reference, nodes.strong)):
            continue
        pieces: list[nodes.Node] = []
        last = 0
        value = str(text)
        for match in _NOTE_REFERENCE.finditer(value):
            label = note_label(match["title"])
            if label not in std.labels:
                if on_api_page:
                    logger.warning("text names %s, which no module defines", match[0], location=parent)
                continue
            target_doc, target_id, _ = std.labels[label]
            pieces.append(nodes.Text(value[last : match.start()]))
            uri = app.builder.get_relative_uri(docname, target_doc) + "#" + target_id
            pieces.append(nodes.reference("", match[0], internal=True, refuri=uri))
            last = match.end()
        if pieces:
            pieces.append(nodes.Text(value[last:]))
            parent.replace(text, pieces)


def _link_equations(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """On the API pages, a docstring's ``Eq. (label)`` → the equation's number (a link)."""
    if not docname.startswith(API_PAGE_PREFIX):
        return
    math = app.env.get_domain("math")
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or isinstance(parent, nodes.reference):
            continue
        value = str(text)
        pieces: list[nodes.Node] = []
        last = 0
        for match in _EQUATION_REFERENCE.finditer(value):
            label = match["label"]
            reference = None
            if label in math.equations:
                contnode = nodes.Text(match[0])
                reference = math.resolve_xref(app.env, docname, app.builder, "eq", label, nodes.Element(), contnode)
            if reference is None:
                logger.warning("docstring names Eq. (%s), which no page defines", label, location=parent)
                continue
            pieces.append(nodes.Text(value[last : match.start()]))
            pieces.append(nodes.Text(reference.astext()) if isinstance(parent, nodes.literal_block) else reference)
            last = match.end()
        if not pieces:
            continue
        pieces.append(nodes.Text(value[last:]))
        if isinstance(parent, nodes.literal_block):
            replaced = "".join(str(p) for p in pieces)
            parent.rawsource = parent.rawsource.replace(value, replaced) if parent.rawsource else replaced
            parent.replace(text, nodes.Text(replaced))
        else:
            parent.replace(text, pieces)


def _resolve_links(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    _link_equations(app, doctree, docname)
    _link_notes(app, doctree, docname)


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels as the text cites: "Le et al., 2015", "Hochreiter & Schmidhuber, 1997".

    Two entries that would share a label get "a", "b", ... after the year.
    """

    def format_labels(self, sorted_entries: Any) -> Any:
        labels = [self._label(entry) for entry in sorted_entries]
        counts = Counter(labels)
        seen: Counter[str] = Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            else:
                yield label

    @staticmethod
    def _label(entry: Any) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [Text.from_latex(" ".join(p.prelast_names + p.last_names)).render_as("text") for p in persons]
        if not last:
            names = entry.fields.get("key", entry.key)
        elif len(last) == 1:
            names = last[0]
        elif len(last) == 2:
            names = f"{last[0]} & {last[1]}"
        else:
            names = f"{last[0]} et al."
        return f"{names}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """Bibliography entries with the authors last name first (initials), sorted by author–year,
    labelled as the text cites them (:class:`AuthorYearLabelStyle`)."""

    default_name_style = "lastfirst"
    default_sorting_style = "author_year_title"
    default_label_style = "orthobook_author_year"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("abbreviate_names", True)
        super().__init__(**kwargs)


def _default_theme_mode(app: Sphinx, config: Any) -> None:
    """A first visit has no stored light/dark mode: without a default (the template variable
    ``default_mode`` of the pydata theme's layout) the theme logs a console error on every page
    ("Got invalid theme mode"); "auto" follows the reader's system."""
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")
    config.html_context = context


def _unique_scripts(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Each script once: an inline script added twice (sphinx-thebe's ``const THEBE_JS_URL``,
    when its setup event runs again in an incremental build) is a SyntaxError in the page."""
    for key in ("script_files", "css_files"):
        seen: set[tuple[str, str]] = set()
        unique = []
        for item in context.get(key, []):
            filename = getattr(item, "filename", item) or ""
            identity = (str(filename), str(getattr(item, "attributes", {}).get("body", "")))
            if identity not in seen:
                seen.add(identity)
                unique.append(item)
        if key in context:
            context[key] = unique


def _add_static(app: Sphinx) -> None:
    if app.builder.format == "html":
        app.config.html_static_path.append(str(STATIC))
        app.add_js_file("search-snippets.js")
        app.add_css_file("narrow-screens.css")


def setup(app: Sphinx) -> dict[str, Any]:
    register_plugin("pybtex.style.labels", "orthobook_author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "orthobook_author_year", AuthorYearStyle)
    app.add_directive("orthobook-notes", NotesDirective)
    app.add_directive("orthobook-summary", SummaryDirective)
    app.add_directive("orthobook-constants", ConstantsDirective)
    app.connect("autodoc-process-docstring", _prepare_docstring, priority=400)
    app.add_directive("literalinclude", SourceLiteralInclude, override=True)
    app.connect("builder-inited", _add_static)
    app.connect("config-inited", _default_theme_mode)
    app.connect("html-page-context", _unique_scripts, priority=999)
    app.connect("doctree-resolved", _resolve_links)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
