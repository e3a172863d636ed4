"""Names of the cubes in the pipeline's example dicts.

Every cube (`targets`, `image`, `mask`, `targets_slice`) is at full resolution
under its own name; with `config.downsample` it also comes at `h =
config.downsample_res` (`downsampled`) and brought back to full resolution
(`up_back`). Build those names here, never by hand. What the cubes hold:
docs/design.md, Cubes and the value 40.
"""


def downsampled(key, size):
  """`<key>_<size>`: the cube area-resized to (size, size)."""
  return f'{key}_{size}'


def up_back(key, size):
  """`<key>_<size>_up_back`: `downsampled(key, size)` resized back."""
  return f'{key}_{size}_up_back'


def at_side(key, side, config):
  """The name of cube `key` at `side`: full resolution or downsample_res."""
  if side == config.resolution[0]:
    return key
  if config.downsample and side == config.downsample_res:
    return downsampled(key, side)
  raise ValueError(
      f'No {key!r} cube of side {side}: the pipeline makes them at '
      f'config.resolution={tuple(config.resolution)} and, with '
      f'config.downsample, config.downsample_res={config.downsample_res}.')
