"""Commands run as `python -m tools.<name>`: synthetic and synthetic_geotiff
(demo data, with scenes), prepare (dated rasters -> the on-disk layout),
summary (a pipeline's first examples), contact_sheet (one PNG per example),
import_original (a checkpoint of the original CloudTran), selfcheck
(how well the models fill the user's own scene).

Importing the package loads no TensorFlow, so the dataset maker
(`python -m tools.synthetic`) runs without it.
"""
