"""Sphinx configuration of ce_mmdet's documentation (MyST Markdown).

Build: ``python -m sphinx -W -b html docs/en docs/en/_build/html`` (the test
suite runs the same build, so a broken cross-reference fails it).
"""
import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(DOCS))
sys.path.insert(0, REPO)

project = 'ce_mmdet'
author = 'ce_mmdet contributors'
copyright = '2026, ce_mmdet contributors'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', '_generated']

# Links to headings (``page.md#a-heading``) are checked like page links.
myst_heading_anchors = 4
myst_enable_extensions = ['colon_fence', 'deflist']

autodoc_member_order = 'bysource'
autodoc_default_options = {'members': True, 'show-inheritance': True}
napoleon_google_docstring = True

html_theme = 'furo'
html_title = 'ce_mmdet'
html_static_path = ['_static']


def render_model_zoo(app) -> None:
    """Write ``_generated/model_zoo_tables.md`` (included by model_zoo.md)
    from the metafiles and ``configs/published_results.yml``: the docs
    render the same data as the config READMEs, never a copy of it."""
    from ce_mmdet.analysis.model_zoo import metafile_paths, metafile_tables

    sections = []
    for metafile in metafile_paths(REPO):
        readme = os.path.join(os.path.dirname(metafile), 'README.md')
        with open(readme, encoding='utf-8') as f:
            title = f.readline().lstrip('# ').strip()
        folder = os.path.relpath(os.path.dirname(metafile), REPO)
        sections.append(f'## {title}\n\n`{folder}/`\n\n' + metafile_tables(
            metafile, REPO, link_configs=False))
    os.makedirs(os.path.join(DOCS, '_generated'), exist_ok=True)
    with open(os.path.join(DOCS, '_generated', 'model_zoo_tables.md'), 'w',
              encoding='utf-8') as f:
        f.write('\n\n'.join(sections) + '\n')


def setup(app) -> None:
    app.connect('builder-inited', render_model_zoo)
