"""Dated raster series (GeoTIFF, JP2, STAC Items), read on one grid window by
window by predict.py and tools.prepare; their cloud masks and radiometry;
overlapping tiles; predict.py's output files and their STAC Item.
"""
