r"""Contact sheets: one PNG per example showing the whole method at a glance.

  python -m tools.contact_sheet --config configs/upsampler_test.py:tiny \
      --core runs/demo/core/samples_core_valid \
      --upsampled runs/demo/upsampler/samples_sup_valid --out runs/demo/sheets

Top row: the cloudy input dates (slots 1..T-1); below each, its cloud mask
(white = clear). Bottom row: the map of clear dates per pixel, the core's
output, the upsampled output, a classical fill (`--classical`, by default
the similar-pixel corrected mosaic, the best classical fill of the
benchmark's tables; from the inputs as they are) and the truth.
Everything is shown at the full resolution (low-resolution images enlarged
by nearest neighbour); the labels give each output's PSNR on the target's
cloudy pixels.

`scores.csv` lists per sheet the cloudy pixels' PSNR of the upsampled output
and of the classical fill at full resolution, and their difference;
`most_gain.png` and `most_loss.png` are copies of the sheets where the model
beats the classical fill most and where it loses most.
"""

import csv
import os
import shutil

from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw

from datasets import pipeline
from datasets import subsets
from datasets import tfrecords
from evaluation import baselines
from evaluation import metrics
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


def cloudy_psnr(output, truth, mask):
  """PSNR (dB, values / 255) of one image on the target's cloudy pixels
  whose truth is known (`mask`: (H, W, T) clear-mask cube); NaN if none."""
  cloudy = metrics.split_masks(mask[..., -1], mask[..., 0])[metrics.CLOUDY]
  return float(metrics.psnr01(metrics.to_unit(output), metrics.to_unit(truth),
                              cloudy))


def write_scores(out_dir, rows):
  """scores.csv, and most_gain.png / most_loss.png: copies of the sheets of
  the highest and lowest `gain` (rows without cloudy pixels left out)."""
  with open(os.path.join(out_dir, 'scores.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  scored = [row for row in rows if row['gain'] == row['gain']]
  if scored:
    ranked = sorted(scored, key=lambda row: row['gain'])
    for name, row in (('most_gain.png', ranked[-1]),
                      ('most_loss.png', ranked[0])):
      shutil.copyfile(os.path.join(out_dir, row['sheet']),
                      os.path.join(out_dir, name))


def make_sheets(config, core_dir, upsampled_dir, out_dir, subset='valid',
                count=None, classical=baselines.SIMILAR_FILL):
  """Writes `NNNNN_sheet.png` for the first outputs of both sample dirs, and
  `scores.csv`, `most_gain.png`, `most_loss.png` (module docstring).

  Args:
    config: a test config of the dataset (full resolution, n_channels).
    core_dir, upsampled_dir: sample directories of the core and upsampler
      jobs on the same subset (both started at output 0).
    out_dir: where the sheets go.
    subset: the subset both jobs sampled.
    count: at most this many sheets (default: as many as both have).
    classical: the name of the classical fill shown (`baselines.FILLS`).

  Returns:
    The paths written.
  """
  c, h, side = config.n_channels, config.downsample_res, config.resolution[0]
  panel = side * max(1, -(-MIN_PANEL // side))
  core = tfrecords.read_images(core_dir, (h, h, c), '--core')
  upsampled = tfrecords.read_images(upsampled_dir, (side, side, c),
                                    '--upsampled')
  data = pipeline.get_dataset(pipeline.uncorrected(config), 1,
                              subset).unbatch()
  os.makedirs(out_dir, exist_ok=True)
  paths, rows = [], []
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
    classical_fill = baselines.fill_8bit(classical, example['targets'], masks,
                                         c)
    truth = targets[:, :, 0]
    model_db, classical_db = (cloudy_psnr(x, truth, masks)
                              for x in (high, classical_fill))
    low_db = cloudy_psnr(low, example[f'targets_{h}'][..., :c],
                         example[f'mask_{h}'])
    bottom = [('clear dates', tile_image(
        images.coverage_image(masks[..., 1:]), panel)),
              (f'core {h}px {low_db:.1f} dB', tile_image(low, panel)),
              (f'upsampled {model_db:.1f} dB', tile_image(high, panel)),
              (f'classical {classical_db:.1f} dB',
               tile_image(classical_fill, panel)),
              ('truth', tile_image(truth, panel))]
    path = os.path.join(out_dir, f'{index:05d}_sheet.png')
    images.save(path, sheet([dates, mask_row], bottom, panel))
    paths.append(path)
    rows.append({'sheet': os.path.basename(path),
                 'tile': int(example['tile']),
                 'cloudy_percent': round(float(example['coverage']), 2),
                 'upsampled_psnr': round(model_db, 3),
                 f'{classical.replace(" ", "_")}_psnr': round(classical_db, 3),
                 'gain': round(model_db - classical_db, 3)})
  if not paths:
    raise ValueError(f'No outputs to show: {core_dir} or {upsampled_dir} '
                     'holds no records.')
  write_scores(out_dir, rows)
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
  flags.DEFINE_enum('classical', baselines.SIMILAR_FILL,
                    list(baselines.FILLS), 'The classical fill shown and '
                    'scored beside the model.')
  flags.mark_flags_as_required(['core', 'upsampled', 'out'])


def main(_):
  f = flags.FLAGS
  paths = make_sheets(f.config, f.core, f.upsampled, f.out, f.subset, f.count,
                      f.classical)
  print(f'{len(paths)} contact sheets in {f.out}, e.g. {paths[0]}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
