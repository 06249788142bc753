// Search result snippets come from the text of each page's main element (Sphinx's
// searchtools.js, Search.htmlToText), which in this theme also holds the article header's
// buttons (download, Colab, full screen), the page's navigation and the print-only title and
// table of contents (Jupyter Book's #jb-print-docs-body). Those are removed before
// the text is taken, so a snippet shows the sentence that matched.
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || typeof Search.htmlToText !== "function") return;
  const htmlToText = Search.htmlToText;
  const chrome = [
    ".bd-header-article",
    "#jb-print-docs-body",
    ".header-article",
    ".bd-sidebar-secondary",
    ".prev-next-area",
    ".bd-footer-article",
    ".bd-footer-content",
    "button",
  ].join(", ");
  Search.htmlToText = (htmlString, anchor) => {
    const page = new DOMParser().parseFromString(htmlString, "text/html");
    page.querySelectorAll(chrome).forEach((element) => element.remove());
    return htmlToText(page.documentElement.outerHTML, anchor);
  };
});
