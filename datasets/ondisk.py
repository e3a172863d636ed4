"""The upstream on-disk layout: tiles, dates, namings, image/mask pairing.

    videos_final_<split>/NNNNN/<date files>   (PNG or JPEG, RGB)
    masks_final_<split>/NNNNN/<date masks>    (single-channel PNG, same stems)

The three upstream namings are read the same way: the dates of a tile are
ordered by file name and a date's index is its position, except for the L1C
naming `<patch>_rgb_<t>.png`, whose dates are ordered by `t` and indexed by it.

    L2A      TILE_YYYYMMDD_IDX.png
    in-house YYYYMMDD_IDX.jpeg
    L1C      <patch>_rgb_<t>.png
"""

import dataclasses
import os
import re

from utils.errors import DataError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
L1C_STEM = re.compile(r'^(?P<patch>.+)_rgb_(?P<t>\d+)$')


@dataclasses.dataclass(frozen=True)
class Date:
  index: int
  image: str
  mask: str

  @property
  def stem(self):
    return os.path.splitext(os.path.basename(self.image))[0]


@dataclasses.dataclass(frozen=True)
class Tile:
  """One tile folder; `number` is the folder name as an int (00017 -> 17)."""
  number: int
  folder: str
  dates: tuple

  def date(self, index):
    """The date with `index`, or None."""
    for date in self.dates:
      if date.index == index:
        return date
    return None

  @property
  def name(self):
    """The tile name of the JSON: the file name's part before the first `_`."""
    names = {date.stem.split('_')[0] for date in self.dates}
    if len(names) != 1:
      raise DataError(
          f'Tile folder {self.folder}: the file names do not share one tile '
          f'name before the first "_" (found {sorted(names)[:3]}...), so '
          'config.jsonf cannot index it (in-house naming has no tile name); '
          'unset config.jsonf and set config.ref_index instead.')
    return names.pop()


def _image_files(folder):
  """{stem: path} of the image files of `folder`; dotfiles are ignored."""
  files = {}
  for entry in sorted(os.listdir(folder)):
    if entry.startswith('.'):
      continue
    path = os.path.join(folder, entry)
    stem, ext = os.path.splitext(entry)
    if ext.lower() not in IMAGE_EXTENSIONS or not os.path.isfile(path):
      raise DataError(
          f'Unexpected entry {path}: tile folders hold only '
          f'{"/".join(IMAGE_EXTENSIONS)} files; move it elsewhere.')
    if stem in files:
      raise DataError(
          f'{path} and {files[stem]} share the stem {stem!r}; images and '
          'masks are paired by stem, so keep one file per stem.')
    files[stem] = path
  return files


def _date_order(stems, folder):
  """[(index, stem)] in date order: L1C by `t`, otherwise by file name."""
  matches = [L1C_STEM.match(stem) for stem in stems]
  if not any(matches):
    return list(enumerate(sorted(stems)))
  if not all(matches):
    raise DataError(
        f'Tile folder {folder} mixes L1C names (<patch>_rgb_<t>) with other '
        'names; use one naming per tile.')
  order = sorted((int(m['t']), m.string) for m in matches)
  times = [t for t, _ in order]
  if len(set(times)) != len(times):
    raise DataError(f'Tile folder {folder} has two L1C files with the same '
                    'time index t; keep one per t.')
  return order


def read_tile(image_folder, mask_folder):
  """Pairs the images and masks of one tile folder by stem.

  Raises:
    DataError: a folder name that is not a number, or an image without its
      mask or a mask without its image (naming the tile and the file).
  """
  folder = os.path.basename(image_folder)
  if not folder.isdigit():
    raise DataError(
        f'Tile folder {image_folder} is not numbered (expected NNNNN like '
        '00017); rename it.')
  if not os.path.isdir(mask_folder):
    raise DataError(f'Tile {folder}: mask folder {mask_folder} is missing; '
                    'add the masks of this tile or remove the tile.')
  images, masks = _image_files(image_folder), _image_files(mask_folder)
  if not images:
    raise DataError(f'Tile folder {image_folder} holds no image; remove it.')
  for stem in sorted(images.keys() - masks.keys()):
    raise DataError(f'Tile {folder}: image {images[stem]} has no mask '
                    f'{stem}.png in {mask_folder}; add it or remove the image.')
  for stem in sorted(masks.keys() - images.keys()):
    raise DataError(f'Tile {folder}: mask {masks[stem]} has no image with '
                    f'the stem {stem!r} in {image_folder}; add it or remove '
                    'the mask.')
  dates = tuple(Date(index, images[stem], masks[stem])
                for index, stem in _date_order(images, folder))
  return Tile(int(folder), folder, dates)


def _subfolders(path):
  return sorted(e for e in os.listdir(path) if not e.startswith('.')
                and os.path.isdir(os.path.join(path, e)))


def list_tiles(data_dir, mask_dir):
  """All tiles of a split, in folder order.

  Args:
    data_dir: the `videos_final_<split>` directory.
    mask_dir: the matching `masks_final_<split>` directory.

  Returns:
    A list of `Tile`.
  """
  for key, path in (('data_dir', data_dir), ('mask_dir', mask_dir)):
    if not path or not os.path.isdir(path):
      raise DataError(f'config.{key}={path!r} is not a directory; point it at '
                      'the videos_final_<split> / masks_final_<split> folder '
                      '(python -m tools.synthetic OUT makes a demo one).')
  folders = _subfolders(data_dir)
  extra = sorted(set(_subfolders(mask_dir)) - set(folders))
  if extra:
    raise DataError(f'Mask folder {os.path.join(mask_dir, extra[0])} has no '
                    f'image folder in {data_dir}; remove it or add the tile.')
  return [read_tile(os.path.join(data_dir, f), os.path.join(mask_dir, f))
          for f in folders]
