"""The shapes configs draw readable pictures: UpscaledDetVisualizer.

One 160x160 sample (a square in the middle, a circle touching the top edge;
a confident square prediction and a circle one below the threshold) goes
through the visualizer of the shapes configs; the written picture must be
upscaled, captioned, and carry each label outside its box.
"""
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.structures import InstanceData

REPO_ROOT = Path(__file__).resolve().parents[1]
SHAPES_CONFIGS = sorted((REPO_ROOT / 'configs' / 'shapes').glob('*.py'))
BASE_CONFIG = REPO_ROOT / 'configs' / 'shapes' / 'mask_rcnn_r18_fpn_shapes.py'

IMAGE_SIDE = 160  # the demo's images
MIN_PANEL_WIDTH = 480
SCORE_THR = 0.3
BACKGROUND = (128, 128, 128)
# (x1, y1, x2, y2) in the 160 px image
SQUARE_BOX = (50, 70, 110, 130)
CIRCLE_BOX = (100, 0, 140, 40)  # touches the top edge: no room above


@pytest.fixture(scope='module')
def base_config() -> Config:
    return Config.fromfile(str(BASE_CONFIG))


@pytest.mark.parametrize('config', SHAPES_CONFIGS, ids=lambda p: p.stem)
def test_shapes_configs_use_upscaled_visualizer(config: Path) -> None:
    assert Config.fromfile(str(config)).visualizer.type == \
        'UpscaledDetVisualizer'


def _sample() -> tuple[np.ndarray, DetDataSample]:
    """The image and a data sample with GT and predictions, in the 160 px
    coordinates that MMDetection's visualization hook passes."""
    image = np.empty((IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8)
    image[...] = BACKGROUND
    boxes = torch.tensor([SQUARE_BOX, CIRCLE_BOX], dtype=torch.float32)
    masks = np.zeros((2, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, (SQUARE_BOX, CIRCLE_BOX)):
        mask[y1:y2, x1:x2] = 1
        image[y1:y2, x1:x2] = (230, 230, 230)
    labels = torch.tensor([1, 0])  # square, circle
    sample = DetDataSample(metainfo=dict(img_shape=image.shape[:2]))
    sample.gt_instances = InstanceData(
        bboxes=boxes, labels=labels,
        masks=BitmapMasks(masks, IMAGE_SIDE, IMAGE_SIDE))
    sample.pred_instances = InstanceData(
        bboxes=boxes.clone(), labels=labels.clone(),
        scores=torch.tensor([0.9, SCORE_THR / 3]),
        masks=torch.from_numpy(masks).bool())
    return image, sample


def _draw(visualizer_cfg: dict, metainfo: dict, out_file: Path) -> np.ndarray:
    visualizer = VISUALIZERS.build(
        dict(visualizer_cfg, vis_backends=None,
             name=f'test_visualizer_{out_file.stem}'))
    visualizer.dataset_meta = metainfo
    image, sample = _sample()
    visualizer.add_datasample('sample', image, sample,
                              out_file=str(out_file),
                              pred_score_thr=SCORE_THR)
    return mmcv.imread(str(out_file), channel_order='rgb')


def _share_near(region: np.ndarray, colour, tolerance: float = 40) -> float:
    """Share of the region's pixels within ``tolerance`` of an RGB colour."""
    distance = np.abs(region.astype(float) - np.array(colour)).max(axis=-1)
    return float((distance <= tolerance).mean())


def test_picture_is_upscaled_captioned_and_labelled_outside_boxes(
        base_config: Config, tmp_path: Path) -> None:
    visualizer_cfg = base_config.visualizer.to_dict()
    metainfo = base_config.metainfo
    picture = _draw(visualizer_cfg, metainfo, tmp_path / 'sample.png')

    # GT | prediction, each panel a strip + the image upscaled by an integer
    height, width, _ = picture.shape
    panel_width = width // 2
    assert panel_width >= MIN_PANEL_WIDTH, picture.shape
    scale = visualizer_cfg.get('scale', 3)
    border = panel_width - scale * IMAGE_SIDE
    caption_height = height - scale * IMAGE_SIDE
    assert 0 <= border < 10 and 10 < caption_height < 60, picture.shape

    def to_picture(x: float, y: float, panel: int) -> tuple[int, int]:
        return (int(panel * panel_width + border + scale * x),
                int(caption_height + scale * y))

    # The image itself, upscaled: a background pixel far from the objects
    x, y = to_picture(10, 150, panel=0)
    assert _share_near(picture[y:y + 3, x:x + 3], BACKGROUND, 0) == 1
    # Captions: light text on the dark band above each panel
    for panel in (0, 1):
        band = picture[:caption_height, panel * panel_width:][:, :200]
        assert (band.min(axis=-1) > 200).sum() > 50, panel  # text pixels
        assert _share_near(band, (40, 40, 40)) > 0.5, panel

    square_colour, circle_colour = (metainfo['palette'][1],
                                    metainfo['palette'][0])
    for panel in (0, 1):
        # The square's label sits on its class colour just above the box
        x1, y1 = to_picture(SQUARE_BOX[0], SQUARE_BOX[1], panel)
        above = picture[y1 - 20:y1 - 8, x1 + 2:x1 + 40]
        assert _share_near(above, square_colour) > 0.3, panel
        # ... and not inside the box's top-left corner, where MMDetection
        # puts it (on black): there is only the mask, one colour over the
        # object's
        inside = picture[y1 + 6:y1 + 30, x1 + 6:x1 + 40].reshape(-1, 3)
        assert len(np.unique(inside, axis=0)) == 1, panel
        assert _share_near(inside, (230, 230, 230), 10) == 0, panel
    # The circle touches the top edge: its GT label goes below its box
    x1, _ = to_picture(CIRCLE_BOX[0], CIRCLE_BOX[1], 0)
    _, y2 = to_picture(CIRCLE_BOX[2], CIRCLE_BOX[3], 0)
    assert _share_near(picture[y2 + 8:y2 + 20, x1 + 2:x1 + 40],
                       circle_colour) > 0.3
    # ... and its prediction, below the threshold, is not drawn at all
    x1, _ = to_picture(CIRCLE_BOX[0], CIRCLE_BOX[1], 1)
    assert _share_near(picture[y2 + 8:y2 + 20, x1 + 2:x1 + 40],
                       BACKGROUND, 0) == 1


def test_visualizer_refuses_a_non_integer_scale(base_config: Config) -> None:
    with pytest.raises(ValueError, match='scale'):
        VISUALIZERS.build(dict(base_config.visualizer.to_dict(),
                               vis_backends=None, scale=2.5,
                               name='test_visualizer_bad_scale'))
