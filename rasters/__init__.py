"""Dated raster series (GeoTIFF, JP2), read by predict.py and tools.prepare.

Modules: dates (a file's acquisition date), radiometry (reflectance <-> the
models' 8-bit values), cloudmasks (cloudy pixels from SCL, masks or
probabilities), reader (a series on one grid, window by window),
reader_flags (the command-line flags of a series), stac (a series of STAC
Items, from a file or an API search), tiling (overlapping tiles and their
blending), geotiff (predict.py's output files), stac_item (the STAC Item of
an output).
"""
