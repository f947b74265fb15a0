"""The documentation cannot drift from the code: README.md, docs/en/ and the
config folders' READMEs are built, read and checked against the checkout.

- the Sphinx build passes with warnings as errors (cross-references and
  heading anchors included);
- every repository path they name exists, every relative link and anchor
  resolves, every picture is small;
- every option shown for one of our Python tools is accepted by that
  tool's own argument parser (the parser is captured, not grepped);
- every ``python`` config snippet builds through MMEngine and the
  registries;
- every config is in a metafile, every metafile entry is a config, the
  model index passes OpenMMLab's schema check, and the model-zoo tables are
  the ones rendered from the data;
- the README stays the front door (at most 150 lines).
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / 'docs' / 'en'
PAGES = sorted([REPO / 'README.md', *DOCS.rglob('*.md'),
                *(REPO / 'configs').rglob('README.md'),
                REPO / 'tools' / 'deployment' / 'README.md'])
PAGES = [p for p in PAGES if '_build' not in p.parts]
PAGE_IDS = [str(p.relative_to(REPO)) for p in PAGES]
MAX_README_LINES = 150
MAX_IMAGE_BYTES = 200 * 1024


def fenced_blocks(text: str, language: str) -> list[str]:
    """The bodies of the Markdown code fences of ``language``."""
    pattern = re.compile(rf'^```{re.escape(language)}[ \t]*\n(.*?)^```',
                         re.M | re.S)
    return pattern.findall(text)


def test_fenced_blocks_finds_only_its_language() -> None:
    text = '```bash\nls\n```\n```python\nx = 1\n```\n```py\ny = 2\n```\n'
    assert fenced_blocks(text, 'bash') == ['ls\n']
    assert fenced_blocks(text, 'python') == ['x = 1\n']
    assert fenced_blocks(text, 'py') == ['y = 2\n']


# ------------------------------------------------------------ Sphinx build
def test_sphinx_build_passes_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip('sphinx')
    pytest.importorskip('myst_parser')
    done = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b',
         'html', '-d', str(tmp_path / 'doctrees'), str(DOCS),
         str(tmp_path / 'html')],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert done.returncode == 0, done.stderr[-6000:]
    assert (tmp_path / 'html' / 'model_zoo.html').is_file()
    # The model zoo page is rendered from the data, and so holds it.
    page = (tmp_path / 'html' / 'model_zoo.html').read_text(encoding='utf-8')
    assert 'mask_rcnn_ce_r50_fpn.py' in page and '38.2 / 34.7' in page


def test_readme_is_the_front_door() -> None:
    lines = (REPO / 'README.md').read_text(encoding='utf-8').splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f'README.md has {len(lines)} lines: at most {MAX_README_LINES}; '
        'details go to docs/en/')


# ------------------------------------------------------- paths and links
REPO_PATH = re.compile(
    r'((?:\.ci|ce_mmdet|configs|docs|tests|tools)/[\w./-]*\w/?)')
BUILD_OUTPUTS = ('docs/en/_build', 'docs/en/_generated')


def _is_placeholder(word: str) -> bool:
    """``configs/shapes/mask_rcnn_<variant>_...``, ``WORK_DIR/x``,
    ``configs/x_X_y.py``: a pattern, not a path."""
    return bool(re.search(r'[<{*]|/X_|_X_', word)) or any(
        re.fullmatch(r'[A-Z][A-Z0-9_]*', part) for part in word.split('/'))


def named_repo_paths(text: str) -> set[str]:
    """Repository paths in inline code and code blocks: every word that
    starts with one of the repository's top-level folders."""
    spans = re.findall(r'`([^`\n]+)`', text) + fenced_blocks(text, 'bash')
    found = set()
    for span in spans:
        for word in re.split(r'[\s,;:()\[\]"\'=]+', span):
            match = REPO_PATH.match(word)
            if match and not (_is_placeholder(word)
                              or word.startswith(BUILD_OUTPUTS)):
                found.add(match.group(1).rstrip('/.'))
    return found


def test_named_repo_paths_finds_paths_and_skips_placeholders() -> None:
    text = ('Run `python tools/train.py CONFIG` on `configs/x_X_y.py`, '
            '`configs/a_<b>.py` or `configs/README.md`, see '
            '`ce_mmdet/layers/`.\n```bash\nbash tools/run_demo.sh\n```')
    assert named_repo_paths(text) == {'tools/train.py', 'ce_mmdet/layers',
                                      'configs/README.md',
                                      'tools/run_demo.sh'}


@pytest.mark.parametrize('page', PAGES, ids=PAGE_IDS)
def test_every_named_repository_path_exists(page: Path) -> None:
    missing = sorted(p for p in named_repo_paths(page.read_text('utf-8'))
                     if not (REPO / p).exists())
    assert not missing, f'{page.relative_to(REPO)} names {missing}'


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style slugs of a page's headings (what MyST's
    ``myst_heading_anchors`` and GitHub both generate)."""
    anchors = set()
    in_fence = False
    for line in markdown.splitlines():
        if line.startswith('```'):
            in_fence = not in_fence
        match = None if in_fence else re.match(r'#{1,6} (.+)', line)
        if match:
            title = re.sub(r'[`*]', '', match.group(1)).strip().lower()
            anchors.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return anchors


LINK = re.compile(r'\]\(([^)\s]+)\)')


@pytest.mark.parametrize('page', PAGES, ids=PAGE_IDS)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    text = page.read_text(encoding='utf-8')
    text = re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):
            continue  # http(s), mailto
        path, _, anchor = target.partition('#')
        resolved = (page.parent / path) if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == '.md' and anchor not in \
                heading_anchors(resolved.read_text(encoding='utf-8')):
            broken.append(target)
    assert not broken, f'{page.relative_to(REPO)}: broken links {broken}'


def test_pictures_are_small() -> None:
    images = sorted((DOCS / '_static' / 'images').glob('*.png'))
    assert images
    large = [f'{p.name}: {p.stat().st_size // 1024} KB' for p in images
             if p.stat().st_size > MAX_IMAGE_BYTES]
    assert not large, large


BANNED = ('of this kind', 'quiet', 'not in our materials', 'the issue')


@pytest.mark.parametrize('page', PAGES, ids=PAGE_IDS)
def test_no_words_only_the_authors_understand(page: Path) -> None:
    text = page.read_text(encoding='utf-8').lower()
    found = [word for word in BANNED if word in text]
    assert not found, f'{page.relative_to(REPO)} says {found}'


# --------------------------------------------------- our tools' options
class _ParserCaptured(Exception):

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def tool_parser(script: str) -> argparse.ArgumentParser:
    """The ArgumentParser that ``script`` builds, captured when it parses
    (the script runs as ``__main__`` until then, with no arguments)."""

    def capture(self, *args, **kwargs):
        raise _ParserCaptured(self)

    saved = (argparse.ArgumentParser.parse_args,
             argparse.ArgumentParser.parse_known_args, sys.argv)
    argparse.ArgumentParser.parse_args = capture
    argparse.ArgumentParser.parse_known_args = capture
    sys.argv = [script]
    try:
        runpy.run_path(str(REPO / script), run_name='__main__')
    except _ParserCaptured as captured:
        return captured.parser
    finally:
        (argparse.ArgumentParser.parse_args,
         argparse.ArgumentParser.parse_known_args, sys.argv) = saved
    raise AssertionError(f'{script} parsed no arguments')


LAUNCHERS = {
    # shell launchers: the options after their own arguments go to
    'tools/dist_train.sh': 'tools/train.py',
    'tools/slurm_train.sh': 'tools/train.py',
    'tools/dist_test.sh': 'tools/test.py',
    'tools/slurm_test.sh': 'tools/test.py',
    'tools/pretrain/dist_train.sh': 'tools/pretrain/train.py',
}


def shown_tool_options() -> dict[str, set[str]]:
    """``{tools/....py: {--option, ...}}`` over every ``bash`` block of the
    README and the docs (backslash continuations joined)."""
    shown: dict[str, set[str]] = {}
    for page in PAGES:
        for block in fenced_blocks(page.read_text('utf-8'), 'bash'):
            for line in block.replace('\\\n', ' ').splitlines():
                line = line.split('  #')[0].split(' # ')[0]
                for command in re.split(r'&&|\|\||;|\|', line):
                    command = command.replace('[', ' ').replace(']', ' ')
                    try:
                        words = shlex.split(command, comments=True)
                    except ValueError:  # an apostrophe in a comment
                        words = command.split()
                    tool = next((w for w in words if w.startswith('tools/')
                                 and w.endswith(('.py', '.sh'))), None)
                    if tool is None:
                        continue
                    tool = LAUNCHERS.get(tool, tool)
                    if tool == 'tools/run_demo.sh' and 'compare' in words:
                        tool = 'tools/analysis_tools/compare_blocks.py'
                    options = {w.split('=')[0] for w in words
                               if w.startswith('--')}
                    shown.setdefault(tool, set()).update(options)
    return shown


def test_every_shown_tool_option_is_accepted() -> None:
    pytest.importorskip('mmdet')
    shown = shown_tool_options()
    assert 'tools/train.py' in shown and 'tools/test.py' in shown
    refused = []
    for tool, options in sorted(shown.items()):
        assert (REPO / tool).is_file(), f'the docs run {tool}: no such file'
        if not tool.endswith('.py'):
            assert not options, f'{tool}: options shown for a shell script'
            continue
        parser = tool_parser(tool)
        accepted = set(parser._option_string_actions)
        refused += [f'{tool} {o}' for o in sorted(options - accepted)]
    assert not refused, f'options the tools do not accept: {refused}'


def test_tool_parser_capture_sees_a_refused_option(tmp_path: Path) -> None:
    parser = tool_parser('tools/analysis_tools/collect_results.py')
    assert '--baselines' in parser._option_string_actions
    assert '--readme' not in parser._option_string_actions


# --------------------------------------------------------- config snippets
def _build_assignment(name: str, value, registries) -> None:
    from mmcv.cnn import build_conv_layer, build_norm_layer
    from mmengine.utils import import_modules_from_strings

    MODELS, HOOKS = registries
    if name in ('backbone', 'neck', 'model'):
        MODELS.build(value)
    elif name == 'norm_cfg':
        build_norm_layer(value, 64)
    elif name == 'conv_cfg':
        build_conv_layer(value, 64, 64, 3, padding=1)
    elif name == 'plugins':
        MODELS.build(dict(type='ResNet', depth=50, plugins=value))
    elif name == 'custom_imports':
        import_modules_from_strings(**value)
    elif name == 'custom_hooks':
        for hook in value:
            HOOKS.build(hook)
    else:
        raise AssertionError(
            f'a config snippet assigns {name!r}, which tests/test_docs.py '
            'does not know how to build: add it there')


def config_snippets() -> list[tuple[str, str]]:
    return [(str(page.relative_to(REPO)), block) for page in PAGES
            for block in fenced_blocks(page.read_text('utf-8'), 'python')]


def test_every_config_snippet_builds() -> None:
    pytest.importorskip('mmdet')
    from mmdet.registry import HOOKS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import ce_mmdet  # noqa: F401

    register_all_modules()
    snippets = config_snippets()
    assert snippets
    for where, block in snippets:
        tree = ast.parse(block)
        assigns = [s for s in tree.body if isinstance(s, ast.Assign)]
        assert len(assigns) == len(tree.body), (
            f'{where}: a python block is a config (assignments only); '
            f'use a py fence for other Python:\n{block}')
        if any(t.id == '_base_' for s in assigns for t in s.targets):
            cfg = Config.fromstring(block, '.py')
            if 'model' in cfg:
                MODELS.build(cfg.model)
            continue
        for statement in assigns:
            value = eval(compile(ast.Expression(statement.value), where,
                                 'eval'), {'dict': dict})
            for target in statement.targets:
                try:
                    _build_assignment(target.id, value, (MODELS, HOOKS))
                except Exception as error:
                    raise AssertionError(
                        f'{where}: {target.id} = ... does not build: '
                        f'{error}\n{block}') from error


# ------------------------------------------------------ metafiles, zoo
def _metafiles() -> list[Path]:
    from ce_mmdet.analysis.model_zoo import metafile_paths
    return [Path(p) for p in metafile_paths(str(REPO))]


def test_every_config_is_in_a_metafile_and_every_entry_is_a_config() -> None:
    import yaml

    listed = {}
    for path in _metafiles():
        for model in yaml.safe_load(path.read_text('utf-8'))['Models']:
            assert model['Config'] not in listed, model['Config']
            listed[model['Config']] = model['Name']
            assert Path(model['Config']).stem == model['Name'], model
    configs = {str(p.relative_to(REPO)) for p in (REPO / 'configs').rglob(
        '*.py') if '_base_' not in p.parts}
    assert set(listed) <= configs, set(listed) - configs
    assert configs <= set(listed), (
        f'configs in no metafile: {sorted(configs - set(listed))}')


def test_model_index_passes_openmmlab_schema_check() -> None:
    modelindex = pytest.importorskip('modelindex')
    index = modelindex.load(str(REPO / 'model-index.yml'))
    errors = [e for e in index.collect_check_errors() if e['errors']]
    assert not errors, errors
    assert len(index.models) == len(list((REPO / 'configs').rglob('*.py'))
                                    ) - len(list((REPO / 'configs').rglob(
                                        '_base_/*.py')))


def test_model_zoo_tables_are_rendered_from_the_data() -> None:
    from ce_mmdet.analysis.model_zoo import stale_readmes
    stale = stale_readmes(str(REPO))
    assert not stale, (f'{stale}: run python tools/misc/render_model_zoo.py '
                       '(edit the metafiles / published_results.yml)')


def test_measured_results_say_how_they_were_measured() -> None:
    import yaml

    for path in _metafiles():
        for model in yaml.safe_load(path.read_text('utf-8'))['Models']:
            for result in model.get('Results') or []:
                how = result.get('Measured', {})
                assert {'Command', 'CPU', 'Date', 'Commit'} <= set(how), (
                    f'{path.name}: {model["Name"]} has a result without '
                    'its command, CPU, date and commit')
                assert re.fullmatch(r'\d{4}-\d{2}-\d{2}', str(how['Date']))


@pytest.mark.parametrize('name', ['ce-resnet18_8xb32_in1k',
                                  'resnet18_8xb32_in1k'])
def test_listed_parameter_counts_are_the_built_models(name: str) -> None:
    """The metafiles' Parameters are the classifiers the configs build
    (``tools/misc/classifier_complexity.py`` wrote them)."""
    pytest.importorskip('mmpretrain')
    import yaml
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    import ce_mmdet  # noqa: F401
    metafile = yaml.safe_load(
        (REPO / 'configs' / 'pretrain' / 'metafile.yml').read_text('utf-8'))
    listed = next(m for m in metafile['Models'] if m['Name'] == name)
    from mmengine.registry import DefaultScope
    cfg = Config.fromfile(str(REPO / listed['Config']))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == \
        listed['Metadata']['Parameters']


def test_docs_figures_are_drawn_small_from_the_data(tmp_path: Path) -> None:
    """tools/misc/draw_docs_figures.py's pieces: the three drawn pictures
    come out as PNGs under the size limit, and a large picture is shrunk
    until it fits."""
    import cv2
    import numpy as np

    from ce_mmdet.analysis.docs_figures import (
        draw_ce_block,
        draw_fig1_bars,
        draw_table3_layout,
        shrink_png,
    )
    from ce_mmdet.analysis.model_zoo import load_metafile

    drawn = [
        draw_ce_block(str(tmp_path / 'ce_block.png')),
        draw_fig1_bars(load_metafile(str(REPO / 'configs/fig1/metafile.yml')),
                       str(tmp_path / 'fig1.png')),
        draw_table3_layout(load_metafile(str(REPO / 'configs/metafile.yml')),
                           str(tmp_path / 'table3.png'))]
    for path in drawn:
        assert Path(path).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert Path(path).stat().st_size <= MAX_IMAGE_BYTES
    noise = np.random.default_rng(0).integers(0, 255, (800, 800, 3),
                                              dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'big.png'), noise)  # about 1.9 MB
    small = shrink_png(str(tmp_path / 'big.png'), str(tmp_path / 'small.png'),
                       max_kb=190)
    assert Path(small).stat().st_size <= 190 * 1024
    assert cv2.imread(small).shape[0] < 800
    with pytest.raises(FileNotFoundError, match='not a readable image'):
        shrink_png(str(tmp_path / 'missing.png'), str(tmp_path / 'x.png'), 9)
