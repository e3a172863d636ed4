r"""Contact sheets: one PNG per example showing the whole method at a glance.

  python -m tools.contact_sheet --config configs/upsampler_test.py:tiny \
      --core runs/demo/core/samples_core_valid \
      --upsampled runs/demo/upsampler/samples_sup_valid --out runs/demo/sheets

Top row: the cloudy input dates (slots 1..T-1); below each, its cloud mask
(white = clear). Bottom row: the map of clear dates per pixel, the core's
output, the upsampled output and the truth. Everything is shown at the full
resolution (low-resolution images enlarged by nearest neighbour).
"""

import os

from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw

from datasets import pipeline
from datasets import subsets
from datasets import tfrecords
from utils import cli
from utils import images

LABEL_HEIGHT = 12
GAP = 4
# Panels are enlarged (integer factor) to at least this side for viewing.
MIN_PANEL = 128


def tile_image(array, side):
  """(s, s, C) values -> PIL RGB image of side `side` (nearest enlarge)."""
  array = np.asarray(array)
  if array.shape[-1] == 1:
    array = np.repeat(array, 3, axis=-1)
  factor = side // array.shape[0]
  return images.to_pil(images.enlarge(array[..., :3], factor)).convert('RGB')


def sheet(panels_top, panels_bottom, side):
  """Lays out the rows `panels_top` (a list of rows) and the row
  `panels_bottom` of (label, image) panels, labels above each."""
  columns = max(len(row) for row in panels_top + [panels_bottom])
  cell_h = side + LABEL_HEIGHT
  canvas = Image.new('RGB', (columns * (side + GAP) + GAP,
                             3 * (cell_h + GAP) + GAP), 'white')
  draw = ImageDraw.Draw(canvas)
  for row, panels in enumerate(panels_top + [panels_bottom]):
    for col, (label, image) in enumerate(panels):
      x, y = GAP + col * (side + GAP), GAP + row * (cell_h + GAP)
      draw.text((x, y), label, fill='black')
      canvas.paste(image, (x, y + LABEL_HEIGHT))
      draw.rectangle([x - 1, y + LABEL_HEIGHT - 1, x + side,
                      y + LABEL_HEIGHT + side], outline='grey')
  return canvas


def make_sheets(config, core_dir, upsampled_dir, out_dir, subset='valid',
                count=None):
  """Writes `NNNNN_sheet.png` for the first outputs of both sample dirs.

  Args:
    config: a test config of the dataset (full resolution, n_channels).
    core_dir, upsampled_dir: sample directories of the core and upsampler
      jobs on the same subset (both started at output 0).
    out_dir: where the sheets go.
    subset: the subset both jobs sampled.
    count: at most this many sheets (default: as many as both have).

  Returns:
    The paths written.
  """
  c, h, side = config.n_channels, config.downsample_res, config.resolution[0]
  panel = side * max(1, -(-MIN_PANEL // side))
  core = tfrecords.read_images(core_dir, (h, h, c), '--core')
  upsampled = tfrecords.read_images(upsampled_dir, (side, side, c),
                                    '--upsampled')
  data = pipeline.get_dataset(config, 1, subset).unbatch()
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for index, (example, low, high) in enumerate(zip(
      data.as_numpy_iterator(), core.as_numpy_iterator(),
      upsampled.as_numpy_iterator())):
    if count is not None and index == count:
      break
    slots = config.timeline
    targets = example['targets'].reshape(side, side, slots, c)
    masks = example['mask']
    dates = [(f'input date {t}', tile_image(targets[:, :, t], panel))
             for t in range(1, slots)]
    mask_row = [(f'mask {t}', tile_image(masks[..., t:t + 1] * 255, panel))
                for t in range(1, slots)]
    bottom = [('clear dates', tile_image(
        images.coverage_image(masks[..., 1:]), panel)),
              (f'core {h}px', tile_image(low, panel)),
              (f'upsampled {side}px', tile_image(high, panel)),
              ('truth', tile_image(targets[:, :, 0], panel))]
    path = os.path.join(out_dir, f'{index:05d}_sheet.png')
    images.save(path, sheet([dates, mask_row], bottom, panel))
    paths.append(path)
  if not paths:
    raise ValueError(f'No outputs to show: {core_dir} or {upsampled_dir} '
                     'holds no records.')
  return paths


def define_flags():
  """The command-line flags (defined only when run as a program, so that
  importing this module never clashes with another module's `--config`)."""
  cli.define_config('Test config of the dataset (upsampler_test.py works).')
  flags.DEFINE_string('core', None, 'Sample dir of the core job.')
  flags.DEFINE_string('upsampled', None, 'Sample dir of the upsampler job.')
  flags.DEFINE_string('out', None, 'Directory for the sheets.')
  flags.DEFINE_enum('subset', 'valid',
                    [s.name for s in subsets.EVALUATED.values()],
                    'Subset both jobs sampled.')
  flags.DEFINE_integer('count', None, 'At most this many sheets.')
  flags.mark_flags_as_required(['core', 'upsampled', 'out'])


def main(_):
  f = flags.FLAGS
  paths = make_sheets(f.config, f.core, f.upsampled, f.out, f.subset, f.count)
  print(f'{len(paths)} contact sheets in {f.out}, e.g. {paths[0]}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
