"""A DetLocalVisualizer whose pictures of small images can be read.

MMDetection's ``DetLocalVisualizer`` draws at the image's own size and puts
each label inside its box's top-left corner: on the 160x160 shapes images a
label covers much of its object and is too small to read. This visualizer
upscales the image and the instances (boxes, masks) by an integer factor,
adds a caption band ('ground truth' / 'prediction (score > thr)') above
each panel and puts each label outside its box, on the class colour, before
MMDetection's ``add_datasample`` stitches the panels and writes the picture.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import get_box_tensor
from mmdet.structures.mask import BitmapMasks, PolygonMasks, bitmap_to_polygon
from mmdet.visualization import DetLocalVisualizer
from mmdet.visualization.palette import get_palette
from mmengine.dist import master_only
from mmengine.structures import InstanceData

# Rough width of a sans-serif character in font sizes (DejaVu Sans averages
# about 0.6 em): enough to keep a label inside the panel's right edge.
_CHAR_WIDTH_EM = 0.62
_TEXT_BOX_PAD_PT = 2.0  # padding of the label backgrounds, in points


def _as_bool_masks(masks) -> np.ndarray:
    """Masks of any MMDetection kind as an (N, H, W) bool array."""
    if isinstance(masks, torch.Tensor):
        masks = masks.numpy()
    elif isinstance(masks, (BitmapMasks, PolygonMasks)):
        masks = masks.to_ndarray()
    return np.asarray(masks).astype(bool)


def _upscale(array: np.ndarray, factor: int, first_axis: int) -> np.ndarray:
    """Nearest-neighbour upscaling of axes ``first_axis`` and the next one:
    every pixel becomes a factor x factor block, so image and masks stay
    aligned exactly."""
    return np.repeat(np.repeat(array, factor, axis=first_axis), factor,
                     axis=first_axis + 1)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two (x1, y1, x2, y2) rectangles intersect."""
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def _text_colour_on(background: Sequence[int]) -> Tuple[int, int, int]:
    """Black or white, whichever reads better on an RGB background."""
    red, green, blue = background[:3]
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


@VISUALIZERS.register_module()
class UpscaledDetVisualizer(DetLocalVisualizer):
    """Detection pictures of small images for people to read.

    Each panel (GT left, prediction right, as in ``DetLocalVisualizer``) is
    the image upscaled ``scale`` times (nearest neighbour) under a caption
    band of ``caption_height`` pixels, with a ``border``-pixel strip of the
    band's colour on its left that separates the panels; boxes and mask
    outlines are drawn on the upscaled image, masks at ``alpha``, and each
    label ('class' or 'class score') on the class colour above its box, or
    below it, or inside its top: the first place in the panel that no
    earlier label takes (predictions come sorted by score, so the surest get
    the best places). Only instances are drawn (boxes, masks); semantic and
    panoptic segmentation are refused.

    Args:
        name: the instance's name (MMEngine's managed instances need one).
        scale: integer upscaling factor of the image and the instances.
        font_size: label and caption font size, in points (100 dpi: 13 pt is
            about 18 px).
        caption_height: height of the caption band above each panel, px.
        border: width of the strip left of each panel, px.
        caption_colour: RGB colour of the caption band and the strip.
        line_width: box line width on the upscaled image, px.
        alpha: opacity of the masks.
        **kwargs: the other arguments of ``DetLocalVisualizer``
            (``vis_backends``, ``save_dir``, ``bbox_color``, ``mask_color``).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 scale: int = 3,
                 font_size: int = 13,
                 caption_height: int = 30,
                 border: int = 4,
                 caption_colour: Tuple[int, int, int] = (40, 40, 40),
                 line_width: int = 2,
                 alpha: float = 0.5,
                 **kwargs) -> None:
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f'scale must be an integer >= 1, got {scale!r}')
        super().__init__(
            name=name, line_width=line_width, alpha=alpha, **kwargs)
        self.scale = scale
        self.font_size = font_size
        self.caption_height = caption_height
        self.border = border
        self.caption_colour = tuple(caption_colour)
        self._pred_score_thr = 0.3  # for the caption; set by add_datasample

    @property
    def _font_px(self) -> float:
        """The font size in pixels of the drawn picture."""
        return self.font_size * self.dpi / 72

    def _upscaled_instances(self, instances: InstanceData) -> InstanceData:
        """The instances in the coordinates of the upscaled, captioned
        panel."""
        scaled = instances.clone()
        # All-zero boxes mark a model without a box branch: kept as they are.
        if ('bboxes' in instances
                and get_box_tensor(instances.bboxes).sum() > 0):
            bboxes = get_box_tensor(instances.bboxes).float() * self.scale
            bboxes[:, 0::2] += self.border
            bboxes[:, 1::2] += self.caption_height
            scaled.bboxes = bboxes
        if 'masks' in instances:
            masks = _upscale(_as_bool_masks(instances.masks), self.scale, 1)
            scaled.masks = np.pad(
                masks, ((0, 0), (self.caption_height, 0), (self.border, 0)))
        return scaled

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[DetDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """``DetLocalVisualizer.add_datasample`` on the upscaled image and
        instances, each panel under a caption band (same arguments)."""
        image = image.clip(0, 255).astype(np.uint8)
        image = _upscale(image, self.scale, 0)
        height, width, channels = image.shape
        panel = np.empty((self.caption_height + height, self.border + width,
                          channels), np.uint8)
        panel[...] = np.array(self.caption_colour[:channels], np.uint8)
        panel[self.caption_height:, self.border:] = image
        self._pred_score_thr = pred_score_thr

        if data_sample is not None:
            for field in ('gt_sem_seg', 'pred_sem_seg', 'gt_panoptic_seg',
                          'pred_panoptic_seg'):
                if field in data_sample:
                    raise NotImplementedError(
                        f'UpscaledDetVisualizer draws instances only, the '
                        f'data sample has {field}')
            data_sample = data_sample.cpu()  # a new sample: the caller's stays
            if 'gt_instances' in data_sample:
                data_sample.gt_instances = self._upscaled_instances(
                    data_sample.gt_instances)
            if 'pred_instances' in data_sample:
                # Filtered here too so that only the masks drawn are scaled.
                kept = data_sample.pred_instances
                kept = kept[kept.scores > pred_score_thr]
                data_sample.pred_instances = self._upscaled_instances(kept)
        super().add_datasample(name, panel, data_sample, draw_gt, draw_pred,
                               show, wait_time, out_file, pred_score_thr,
                               step)

    def _draw_instances(self, image: np.ndarray, instances: InstanceData,
                        classes: Optional[List[str]],
                        palette: Optional[List[tuple]]) -> np.ndarray:
        """Draw one panel: caption, masks, boxes, then the labels outside
        the boxes. Predictions are told from GT by their scores."""
        self.set_image(image)
        is_prediction = 'scores' in instances
        caption = (f'prediction (score > {self._pred_score_thr:g})'
                   if is_prediction else 'ground truth')
        self.draw_texts(
            caption, np.array([self.border + self.caption_height / 3,
                               self.caption_height / 2]),
            colors=(255, 255, 255), font_sizes=self.font_size,
            vertical_alignments='center')
        if len(instances) == 0:
            return self.get_image()

        labels = instances.labels.tolist()
        num_colours = max(labels) + 1
        box_palette = get_palette(
            palette if self.bbox_color is None else self.bbox_color,
            num_colours)
        mask_palette = get_palette(
            palette if self.mask_color is None else self.mask_color,
            num_colours)

        masks = None
        if 'masks' in instances:
            masks = _as_bool_masks(instances.masks)
            outlines = [contour for mask in masks
                        for contour in bitmap_to_polygon(mask)[0]]
            self.draw_polygons(outlines, edge_colors='w', alpha=0.8)
            self.draw_binary_masks(
                masks, colors=[mask_palette[label] for label in labels],
                alphas=self.alpha)

        if 'bboxes' in instances and instances.bboxes.sum() > 0:
            bboxes = get_box_tensor(instances.bboxes).numpy()
            self.draw_bboxes(
                bboxes, edge_colors=[box_palette[label] for label in labels],
                line_widths=self.line_width)
        elif masks is not None:  # no box branch: label the masks' extents
            bboxes = np.array([self._mask_extent(mask) for mask in masks])
        else:
            return self.get_image()

        taken: List[np.ndarray] = []  # (x1, y1, x2, y2) of the labels drawn
        for i, (box, label) in enumerate(zip(bboxes, labels)):
            text = (instances.label_names[i] if 'label_names' in instances
                    else classes[label] if classes is not None
                    else f'class {label}')
            if is_prediction:
                text += f' {float(instances.scores[i]):.2f}'
            taken.append(
                self._draw_label(text, box, box_palette[label], taken))
        return self.get_image()

    @staticmethod
    def _mask_extent(mask: np.ndarray) -> List[float]:
        """The (x1, y1, x2, y2) box around a mask's pixels."""
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return [0.0, 0.0, 0.0, 0.0]
        return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]

    def _draw_label(self, text: str, box: np.ndarray, colour: Sequence[int],
                    taken: List[np.ndarray]) -> np.ndarray:
        """Draw one label on the class colour at the first place (above the
        box, below it, inside its top) that lies in the panel under the
        caption band and overlaps no label in ``taken``; the first place in
        the panel if every place is taken. Returns the label's extent."""
        x1, y1, _, y2 = (float(v) for v in box[:4])
        pad_px = _TEXT_BOX_PAD_PT * self.dpi / 72
        text_height = self._font_px * 1.2 + 2 * pad_px
        text_width = self._font_px * _CHAR_WIDTH_EM * len(text) + 2 * pad_px
        gap = self.line_width / 2 + pad_px
        left = min(max(x1, self.border + pad_px), self.width - text_width)
        above = y1 - gap - text_height
        below = y2 + gap
        inside = y1 + gap
        places = [np.array([left, top, left + text_width, top + text_height])
                  for top in (above, below, inside)]
        in_panel = [place for place in places
                    if place[1] >= self.caption_height
                    and place[3] <= self.height] or places[2:]
        free = [place for place in in_panel
                if not any(_overlap(place, other) for other in taken)]
        place = (free or in_panel)[0]
        background = tuple(c / 255 for c in colour[:3])
        self.draw_texts(
            text, np.array([place[0], place[1] + pad_px]),
            colors=_text_colour_on(colour), font_sizes=self.font_size,
            vertical_alignments='top',
            bboxes=[dict(facecolor=background, alpha=0.9,
                         pad=_TEXT_BOX_PAD_PT, edgecolor='none')])
        return place
