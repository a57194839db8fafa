"""Sphinx configuration of the snetx documentation (built by ``nox -s docs``)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # for sphinx_gallery's scrapers, if any

project = "snetx"
author = "the snetx developers"
copyright = "2023-2026, the snetx developers"
release = version = (ROOT / "VERSION").read_text().strip()

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: math renders offline
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# _generated/ holds pages included elsewhere, not pages of their own (no title of theirs)
exclude_patterns = ["_build", "tutorials_src/README.txt", "_generated"]

autodoc_member_order = "bysource"
# torch.autograd.Function's own methods (forward, backward, ...) are torch's to document
autodoc_default_options = {
    "exclude-members": "forward, backward, jvp, vjp, vmap, setup_context, apply, mark_dirty",
}
autodoc_typehints = "description"
# defaults as written in the source (sg="arctan"), not the repr of the objects they are
autodoc_preserve_defaults = True
# a neuron's docstring is its own: torch's inherited ones (extra_repr, ...) stay torch's
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Tutorials are Python scripts executed at every build: one that breaks fails the build.
sphinx_gallery_conf = {
    "examples_dirs": "tutorials_src",
    "gallery_dirs": "tutorials",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
}
os.environ.setdefault("SNETX_DOCS_BUILD", "1")

html_theme = "furo"
html_title = f"snetx {release}"
# the site works offline: MathJax comes from the sphinx-mathjax-offline package (it sets
# mathjax_path to its copy in _static); no external fonts or scripts
nitpicky = False


def _recipes_table():
    """docs/_generated/recipes.md from snetx.train.recipes: the table cannot drift from
    what ``snetx-train --recipe`` does."""
    from snetx.train import recipes

    rows = [
        "| recipe | paper | settings | reported | measured by snetx |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in recipes.RECIPES.values():
        flags = " ".join(recipes.flag(k, v) for k, v in r.settings.items())
        rows.append(f"| `{r.name}` | {r.paper} | `{flags}` | {r.reported} | {r.measured} |")
    notes = [f"- `{r.name}`: {r.notes} (source: {r.source})" for r in recipes.RECIPES.values()]
    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    (out / "recipes.md").write_text("\n".join(rows) + "\n\n" + "\n".join(notes) + "\n")


def _datasets_page():
    """docs/_generated/datasets.md from snetx.dataset.registry: a dataset added to the
    registry appears here (and in snetx-train) with no other edit."""
    from snetx.dataset import registry

    parts = []
    for spec in registry.DATASETS.values():
        if spec.kind == "image":
            continue
        shape = (f"{spec.channels} x {spec.size[0]} x {spec.size[1]}" if spec.kind == "events"
                 else f"{spec.channels}")  # fmt: skip
        size = f", frames resized to {spec.default_size} x {spec.default_size}" if (
            spec.default_size and spec.default_size != max(spec.size)) else ""  # fmt: skip
        parts += [
            f"({spec.name})=",
            f"### `{spec.name}`: `neuromorphic.{spec.loader}`",
            "",
            spec.doc.replace(":func:`~snetx.dataset.readers.fixed_split`",
                             "`snetx.dataset.readers.fixed_split`"),  # fmt: skip
            "",
            f"- batches `N x T x {shape}`, {spec.classes} classes, splits: "
            f"{', '.join(spec.splits)}",
            f"- snetx-train: `--dataset {spec.name}`, default `T = {spec.default_T}`{size}, "
            f"model `{spec.default_model}` ({spec.source})",
            "",
        ]
    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    (out / "datasets.md").write_text("\n".join(parts))


_recipes_table()
_datasets_page()
