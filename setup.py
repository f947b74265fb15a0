"""ce_mmdet: Channel Equilibrium (ICML 2020) for MMDetection 3.x."""
import os
import shutil
from importlib.metadata import PackageNotFoundError, version

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

MMCV_REQUIREMENT = 'mmcv>=2.0.0,<2.2.0'


def runtime_requirements() -> list[str]:
    """The runtime requirements, leaving an installed mmcv alone.

    mmcv is compiled against the local torch/CUDA and a source build takes
    minutes, so ``pip install -e .`` must never rebuild or replace one that is
    already there (the reason MMDetection keeps mmcv out of its own
    ``install_requires``). A present mmcv of an unsupported version is reported
    at import time by mmdet and ce_mmdet with the supported range instead.
    """
    requirements = [
        'torch>=1.8',
        'torchvision',
        'mmengine>=0.7.1,<1.0',
        'mmdet>=3.0.0,<3.4',
        'mmpretrain>=1.0.0,<1.3',
        'pycocotools',
    ]
    try:
        version('mmcv')
    except PackageNotFoundError:
        requirements.append(MMCV_REQUIREMENT)
    return requirements


SHIPPED_FOLDERS = ('configs', 'tools')
"""Copied into wheels as ``ce_mmdet/.mim/<folder>``, where OpenMMLab
packages keep theirs (``mim``, and ``ce_mmdet.utils.package_resource``,
find them there); an editable install reads them from the checkout."""


class BuildPyShippingConfigsAndTools(build_py):
    """``build_py`` that also puts :data:`SHIPPED_FOLDERS` into the build
    (not into the source tree, so a checkout never holds stale copies)."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        for folder in SHIPPED_FOLDERS:
            target = os.path.join(self.build_lib, 'ce_mmdet', '.mim', folder)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))


setup(
    name='ce_mmdet',
    version='0.1.0',
    description='Channel Equilibrium (CE) layers, CE-ResNet backbones and '
    'configs for MMDetection 3.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['ce_mmdet', 'ce_mmdet.*']),
    cmdclass=dict(build_py=BuildPyShippingConfigsAndTools),
    install_requires=runtime_requirements(),
    extras_require={
        # pytest-xdist: the suite on every core; onnx/onnxruntime/
        # onnxscript: the ONNX export checks (torch's default exporter needs
        # onnxscript); atheris: the checkpoint-loading fuzzer; pinned in
        # tools/constraints.txt
        # model-index: OpenMMLab's metafile schema check
        'tests': [
            'pytest', 'pytest-xdist', 'ruff', 'onnx', 'onnxruntime',
            'onnxscript', 'atheris', 'model-index'
        ],
        # the documentation (docs/en/, built by the suite with -W)
        'docs': ['sphinx', 'myst-parser', 'furo'],
        'mim': [MMCV_REQUIREMENT],
    },
    license='Apache-2.0',
    zip_safe=False,
)
